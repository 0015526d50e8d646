"""Record each graded cell's time budget: run the instructor's notebooks and time every cell.

    python tools/time_budgets.py [ASSIGNMENT ...]   (default: every assignment in the source folder)

Writes grading/time_budgets.json: for each assignment and notebook, the seconds each cell with an
nbgrader grade id took in the solution, the size mode it ran in (COURSE_QUICK) and a digest of
the notebook's code. At grading time (tools/secure_grading.py) a cell's budget is a multiple of
its time, with a floor; a budget whose notebook has changed since is not used. `make release`
runs this for the notebooks whose code changed. Needs no course package: only nbclient.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from secure_grading import notebook_digest  # noqa: E402


class TimedClient(NotebookClient):
    """Executes a notebook and records each cell's wall-clock seconds, by grade id."""

    def __init__(self, nb, **kw):
        super().__init__(nb, **kw)
        self.seconds = {}

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        start = time.perf_counter()
        result = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id and cell.cell_type == "code":
            self.seconds[grade_id] = round(time.perf_counter() - start, 3)
        return result


def measure(path: Path) -> dict:
    nb = nbformat.read(path, as_version=4)
    client = TimedClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return {"digest": notebook_digest(path), "quick": bool(os.environ.get("COURSE_QUICK")), "seconds": client.seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assignments", nargs="*")
    parser.add_argument("--source", default="solutions", help="the course's source folder")
    parser.add_argument("--out", default="grading/time_budgets.json")
    parser.add_argument("--changed-only", action="store_true", help="skip notebooks whose digest is recorded")
    args = parser.parse_args(argv)
    out = Path(args.out)
    table = json.loads(out.read_text()) if out.exists() else {}
    quick = bool(os.environ.get("COURSE_QUICK"))
    assignments = args.assignments or sorted(p.name for p in Path(args.source).iterdir() if p.is_dir())
    for assignment in assignments:
        for path in sorted((Path(args.source) / assignment).glob("*.ipynb")):
            recorded = table.get(assignment, {}).get(path.stem)
            if args.changed_only and recorded and recorded["digest"] == notebook_digest(path) \
                    and recorded["quick"] == quick:
                continue
            start = time.perf_counter()
            table.setdefault(assignment, {})[path.stem] = measure(path)
            print(f"{assignment}/{path.name}: {time.perf_counter() - start:.1f} s")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
