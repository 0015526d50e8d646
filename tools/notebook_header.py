"""Stamp every notebook's header (Open-in-Colab badge and set-up cell) from _config.yml.

The repository's address lives in one place, `repository.url` in `_config.yml`.
This script writes it into each chapter (book/*.ipynb) and each exercise source
(solutions/*/*.ipynb), right after the notebook's title cell (the first Markdown cell,
which starts with "# "): a notebook opens with its title, then the badge and the
set-up cell. `make release` then carries the header into the student versions in
notebooks/.

    python tools/notebook_header.py          # rewrite the headers
    python tools/notebook_header.py --check  # exit 1 if any header is stale
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
HEADER_TAG = "course-header"


def repository() -> tuple[str, str]:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]
    return repo["url"].rstrip("/"), repo.get("branch", "main")


def colab_path(notebook: Path) -> str:
    """Where the student opens this notebook: exercise sources map to their release copy."""
    rel = notebook.resolve().relative_to(ROOT)
    if rel.parts[0] == "solutions":
        rel = Path("notebooks", *rel.parts[1:])
    return rel.as_posix()


def header_cells(notebook: Path, graded: bool) -> list:
    url, branch = repository()
    github = url.removeprefix("https://github.com/")
    colab = f"https://colab.research.google.com/github/{github}/blob/{branch}/{colab_path(notebook)}"
    badge = nbformat.v4.new_markdown_cell(
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab})"
    )
    setup = nbformat.v4.new_code_cell(
        "# Set-up: use the course library, installing it from the course repository when it is\n"
        "# missing (on Colab, say). Its requirements are loose, so Colab's own torch is kept.\n"
        "try:\n"
        "    import course_lib\n"
        "except ImportError:\n"
        f'    %pip install --quiet "course_lib @ git+{url}@{branch}"\n'
        "    import course_lib\n"
        "print('course_lib', course_lib.__version__, 'on', course_lib.get_device())"
    )
    badge.id, setup.id = "course-header-badge", "course-header-setup"
    for cell in (badge, setup):
        cell.metadata["tags"] = [HEADER_TAG]
    if graded:
        # Read-only for students: nbgrader restores it if it is edited.
        for cell, grade_id in ((badge, "header_badge"), (setup, "header_setup")):
            cell.metadata["nbgrader"] = {
                "grade": False, "solution": False, "locked": True, "task": False,
                "grade_id": grade_id, "schema_version": 3,
            }
        setup.metadata["deletable"] = False
        setup.metadata["editable"] = False
    return [badge, setup]


def notebooks() -> list:
    return sorted((ROOT / "book").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*/*.ipynb"))


def title_index(cells: list, path: Path) -> int:
    """Index of the title cell: the first Markdown cell, which must start with a level-1 heading."""
    for i, cell in enumerate(cells):
        if cell.cell_type == "markdown":
            if not cell.source.lstrip().startswith("# "):
                raise ValueError(f"{path.name}: the first Markdown cell must start with the title ('# ...')")
            return i
    raise ValueError(f"{path.name} has no title cell")


def with_header(nb, path: Path) -> list:
    """The notebook's cells with a fresh header right after the title (and any older header removed)."""
    body = [c for c in nb.cells if HEADER_TAG not in c.metadata.get("tags", [])]
    title = title_index(body, path)
    header = header_cells(path, graded=path.resolve().is_relative_to(ROOT / "solutions"))
    return body[:title + 1] + header + body[title + 1:]


def stamp(path: Path) -> bool:
    """Rewrite the header of ``path`` in place; return True if it changed."""
    nb = nbformat.read(path, as_version=4)
    new_cells = with_header(nb, path)
    changed = [dict(c) for c in new_cells] != [dict(c) for c in nb.cells]
    nb.cells = new_cells
    if changed:
        nbformat.write(nb, path)
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale headers, change nothing")
    args = parser.parse_args(argv)
    stale = []
    for path in notebooks():
        if args.check:
            nb = nbformat.read(path, as_version=4)
            if [dict(c) for c in nb.cells] != [dict(c) for c in with_header(nb, path)]:
                stale.append(path)
        elif stamp(path):
            print(f"updated {path.relative_to(ROOT)}")
    for path in stale:
        print(f"stale header: {path.relative_to(ROOT)} (run python tools/notebook_header.py)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
