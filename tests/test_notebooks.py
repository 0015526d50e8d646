"""House rules for every notebook in the repository."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for folder in ("book", "solutions", "notebooks") for p in (ROOT / folder).rglob("*.ipynb")
                   if ".ipynb_checkpoints" not in p.parts)


def test_there_are_notebooks():
    assert any(p.parts[-2] == "book" for p in NOTEBOOKS) and any("solutions" in p.parts for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[str(p.relative_to(ROOT)) for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, \
                f"{path.name} has stored outputs: the book executes notebooks, git keeps them clean"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[str(p.relative_to(ROOT)) for p in NOTEBOOKS])
def test_notebook_opens_with_title_then_colab_badge_and_setup_cell(path):
    nb = json.loads(path.read_text())
    title, badge, setup = nb["cells"][:3]
    assert title["cell_type"] == "markdown" and "".join(title["source"]).startswith("# "), \
        f"{path.name} must open with its title"
    assert "colab.research.google.com/github/" in "".join(badge["source"])
    assert "import course_lib" in "".join(setup["source"]) and "%pip install" in "".join(setup["source"])


def test_headers_match_the_repository_address_in_config():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "notebook_header.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_toc_lists_every_chapter_and_exercise():
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = {c["file"] for part in toc["parts"] for c in part["chapters"]}
    for path in (ROOT / "book").glob("*.ipynb"):
        assert f"book/{path.stem}" in files, f"{path.name} is missing from _toc.yml"
    for path in (ROOT / "notebooks").glob("*/*.ipynb"):
        assert f"notebooks/{path.parent.name}/{path.stem}" in files, f"{path} is missing from _toc.yml"
    assert not any(f.startswith("solutions") for f in files), "solutions must never be rendered"


def test_readme_colab_links_use_the_configured_repository():
    import re

    import yaml

    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].rstrip("/")
    github = url.removeprefix("https://github.com/")
    links = re.findall(r"colab\.research\.google\.com/github/([^)\s]+)", (ROOT / "README.md").read_text())
    assert links, "the README's course table has no Colab links"
    for link in links:
        assert link.startswith(f"{github}/blob/"), f"README link {link} does not use {url} from _config.yml"
        assert (ROOT / link.split("/blob/", 1)[1].split("/", 1)[1]).exists(), f"README links a missing file: {link}"
