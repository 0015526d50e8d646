"""Build the book (quick mode) and check what a reader gets.

The build uses the same command as `make book` (-W -n --keep-going, with
nb_execution_raise_on_error in _config.yml), so every chapter is executed and a
notebook that raises fails it. A second, tiny book proves that last claim.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
JUPYTER_BOOK = str(Path(sys.executable).with_name("jupyter-book"))


def build(source: Path, output: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, COURSE_QUICK=os.environ.get("COURSE_QUICK", "1"),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    return subprocess.run([JUPYTER_BOOK, "build", str(source), "--path-output", str(output), "-W", "-n",
                           "--keep-going"], capture_output=True, text=True, env=env, timeout=2400)


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    out = tmp_path_factory.mktemp("book")
    result = build(ROOT, out)
    assert result.returncode == 0, f"book build failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    return out / "_build" / "html"


def chapters():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [c["file"] for part in toc["parts"] for c in part["chapters"] if c["file"].startswith("book/")]


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
    (book / "_toc.yml").write_text("format: jb-book\nroot: index\nchapters:\n  - file: broken\n")
    (book / "index.md").write_text("# Mini book\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("raise RuntimeError('this chapter is broken')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, book / "broken.ipynb")
    result = build(book, tmp_path / "out")
    assert result.returncode != 0, "a notebook that raises must fail the build"
    assert "this chapter is broken" in result.stdout + result.stderr
