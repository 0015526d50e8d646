"""Build the book (quick mode) and check what a reader gets, in files and in a real browser.

The build uses the same command as `make book` (-W -n --keep-going, with nb_execution_raise_on_error
in _config.yml), so every chapter is executed and a notebook that raises fails it; a second, tiny book
proves that last claim. The quick build lives in _build/quick/ with its own execution cache, so it
never shares one with `make book` (full size, _build/), and a rerun re-executes only the chapters that
changed; the cache is emptied whenever course_lib's source changes, since it only sees the notebooks.

The browser tests open every page of that same build in headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium) and save a full-page screenshot of each under
_build/screenshots/.
"""
import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
JUPYTER_BOOK = str(Path(sys.executable).with_name("jupyter-book"))
QUICK_BUILD = ROOT / "_build" / "quick"
SCREENSHOTS = ROOT / "_build" / "screenshots"


def build(source: Path, output: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, COURSE_QUICK=os.environ.get("COURSE_QUICK", "1"),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    return subprocess.run([JUPYTER_BOOK, "build", str(source), "--path-output", str(output), "-W", "-n",
                           "--keep-going"], capture_output=True, text=True, env=env, timeout=2400)


def course_lib_hash() -> str:
    sources = [ROOT / "pyproject.toml"] + sorted((ROOT / "course_lib").glob("*.py"))
    return hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]


@pytest.fixture(scope="module")
def html():
    stamp = QUICK_BUILD / "_build" / ".course_lib_hash"
    if not stamp.exists() or stamp.read_text() != course_lib_hash():
        shutil.rmtree(QUICK_BUILD / "_build" / ".jupyter_cache", ignore_errors=True)
    result = build(ROOT, QUICK_BUILD)
    assert result.returncode == 0, f"book build failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    stamp.write_text(course_lib_hash())
    return QUICK_BUILD / "_build" / "html"


def chapters():
    """The chapters (book/chNN_*), not the book's other pages (references, execution times)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [c["file"] for part in toc["parts"] for c in part["chapters"] if c["file"].startswith("book/ch")]


@pytest.mark.parametrize("page", chapters())
def test_chapter_is_executed_with_figures_and_math(html, page):
    text = (html / f"{page}.html").read_text()
    assert "data:image/png" in text or ".png" in text, f"{page}: no figure rendered"
    assert "math notranslate" in text, f"{page}: no math rendered"
    assert "Traceback (most recent call last)" not in text, f"{page}: a cell raised"
    assert "colab.research.google.com" in text, f"{page}: no Colab launch button"


def test_exercise_pages_are_release_versions_with_colab_button(html):
    pages = list((html / "notebooks").rglob("*.html"))
    assert pages, "no exercise page was rendered"
    for page in pages:
        text = page.read_text()
        assert "YOUR CODE HERE" in text and "NotImplementedError" in text, f"{page} is not the student version"
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
        assert "colab.research.google.com/github/" in text


def test_solutions_are_never_rendered(html):
    assert not (html / "solutions").exists()
    for page in html.rglob("*.html"):
        assert "BEGIN SOLUTION" not in page.read_text(), page


def test_a_notebook_that_raises_fails_the_build(tmp_path):
    import nbformat

    book = tmp_path / "mini"
    book.mkdir()
    shutil.copy(ROOT / "_config.yml", book)
    shutil.copy(ROOT / "references.bib", book)
    (book / "_vendor").mkdir()
    (book / "_toc.yml").write_text("format: jb-book\nroot: index\nchapters:\n  - file: broken\n")
    (book / "index.md").write_text("# Mini book\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("raise RuntimeError('this chapter is broken')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, book / "broken.ipynb")
    result = build(book, tmp_path / "out")
    assert result.returncode != 0, "a notebook that raises must fail the build"
    assert "this chapter is broken" in result.stdout + result.stderr


# ------------------------------------------------------------------ the book in a real browser

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SKIP_PAGES = {"genindex.html", "search.html"}      # Sphinx's generated index and search pages


def pages(html_dir: Path) -> list:
    return sorted(p for p in html_dir.rglob("*.html") if not {"_static", "_sources", "_images"} & set(p.parts)
                  and p.name not in SKIP_PAGES)


class Anchors(HTMLParser):
    """The ids and the links (href) of one HTML page."""

    def __init__(self):
        super().__init__()
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])


def parse(page: Path) -> Anchors:
    parser = Anchors()
    parser.feed(page.read_text())
    return parser


@pytest.fixture(scope="module")
def server(html):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("Debian's chromium and chromium-driver are required (make setup installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,900", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]:
        options.add_argument(argument)    # the last: no network, as for an offline reader
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


WAIT_FOR_MATH = """
const done = arguments[arguments.length - 1];
if (!window.MathJax || !MathJax.startup) { done(-1); return; }
MathJax.startup.promise.then(() => done(document.querySelectorAll('mjx-container').length), () => done(-2));
"""
PROSE_TEXT = """
const body = document.querySelector('main') || document.body;
const copy = body.cloneNode(true);
copy.querySelectorAll('pre, code, .highlight, script, style, mjx-container').forEach(e => e.remove());
return copy.innerText;
"""
BROKEN_IMAGES = """
return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0 && i.naturalHeight > 0))
            .map(i => i.src);
"""
# The browser is offline, as a reader without network is: the one remote resource a page may name is
# the Colab badge (the same image GitHub and Colab show); everything else must come from the book.
REMOTE_ALLOWED = "https://colab.research.google.com/assets/colab-badge.svg"
# Console messages that are not the book's: the browser's own favicon request, and sphinx-thebe's
# configuration script, which Jupyter Book 1 writes into every page twice (an upstream defect: the
# second copy raises a SyntaxError that breaks nothing, since thebe is off).
NOT_THE_BOOKS = ("/favicon.ico - Failed to load resource", "Identifier 'THEBE_JS_URL' has already been declared")


def test_every_page_renders_in_a_browser_without_errors_and_with_its_math(html, server, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    math_counts, problems = {}, []
    for page in pages(html):
        rel = page.relative_to(html).as_posix()
        browser.get(server + rel)
        browser.set_script_timeout(120)
        math_counts[rel] = count = browser.execute_async_script(WAIT_FOR_MATH)
        errors = [e["message"] for e in browser.get_log("browser")
                  if e["level"] == "SEVERE" and not e["message"].startswith(REMOTE_ALLOWED)
                  and not any(known in e["message"] for known in NOT_THE_BOOKS)]
        prose = browser.execute_script(PROSE_TEXT)
        raw = [token for token in ("$$", "\\(", "\\[", "\\begin{") if token in prose]
        broken = [src for src in browser.execute_script(BROKEN_IMAGES) if src != REMOTE_ALLOWED]
        problems += [f"{rel}: console error {e}" for e in errors]
        has_math = 'class="math' in page.read_text()          # Sphinx loads MathJax only where there is math
        problems += [f"{rel}: MathJax did not load ({count})"] if count < 0 and has_math else []
        problems += [f"{rel}: raw LaTeX {raw} left in the text"] if raw else []
        problems += [f"{rel}: image not loaded: {src}" for src in broken]
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1280, min(max(height, 900), 16000))
        browser.save_screenshot(str(SCREENSHOTS / (rel.replace("/", "__").removesuffix(".html") + ".png")))
        browser.set_window_size(1280, 900)
    (SCREENSHOTS / "math_per_page.json").write_text(json.dumps(math_counts, indent=1))
    assert not problems, "\n".join(problems)
    for page in chapters():
        assert math_counts[f"{page}.html"] > 10, f"{page}: only {math_counts[f'{page}.html']} typeset expressions"


def test_mathjax_is_served_by_the_book_itself(html):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    assert not urlparse(config["mathjax_path"]).scheme, "MathJax must not come from the network"
    assert (html / "_static" / config["mathjax_path"]).is_file()
    assert f'src="_static/{config["mathjax_path"]}' in (html / "book" / "intro.html").read_text().replace("../", "")


def test_every_internal_link_and_anchor_resolves(html):
    anchors = {page: parse(page) for page in html.rglob("*.html") if "_static" not in page.parts}
    broken = []
    for page, parsed in anchors.items():
        for href in parsed.links:
            url = urlparse(href)
            if url.scheme or href.startswith(("mailto:", "//")):
                continue
            target = (page.parent / unquote(url.path)).resolve() if url.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(html)}: {href} (no such file)")
            elif url.fragment and target.suffix == ".html" and url.fragment not in anchors[target].ids:
                broken.append(f"{page.relative_to(html)}: {href} (no such anchor)")
    assert not broken, "\n".join(broken)


def test_colab_button_and_badge_open_this_notebook_from_the_configured_repository(html):
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    github = repo["url"].rstrip("/").removeprefix("https://github.com/")
    prefix = repo.get("path_to_book", "").strip("/")
    notebooks = [p for p in pages(html) if (ROOT / p.relative_to(html).with_suffix(".ipynb")).exists()]
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    in_toc = [c["file"] for part in toc["parts"] for c in part["chapters"] if (ROOT / f"{c['file']}.ipynb").exists()]
    assert len(notebooks) == len(in_toc), f"{len(notebooks)} notebook pages for {len(in_toc)} notebooks in _toc.yml"
    for page in notebooks:
        path = "/".join(filter(None, [prefix, page.relative_to(html).with_suffix(".ipynb").as_posix()]))
        expected = f"https://colab.research.google.com/github/{github}/blob/{repo['branch']}/{path}"
        colab = [link for link in parse(page).links if "colab.research.google.com/github/" in link]
        assert len(colab) >= 2, f"{page.name}: expected the launch button and the badge, found {colab}"
        assert all(link == expected for link in colab), f"{page.name}: {set(colab)} != {expected}"


def test_search_finds_a_chapter_3_term(html, server, browser):
    browser.get(server + "search.html?q=perplexity")
    deadline = time.time() + 60
    while time.time() < deadline:
        hits = [a.get_attribute("href") for a in browser.find_elements("css selector", "#search-results a, ul.search a")]
        if any("ch03_tsne" in (h or "") for h in hits):
            return
        time.sleep(0.5)
    pytest.fail(f"searching 'perplexity' did not find chapter 3; results: {hits}")
