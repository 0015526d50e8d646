"""Submissions that the grading round trip (tests/test_exercises.py) must grade correctly.

Each chapter lists its own in tests/mistakes_<assignment>.py:

- WRONG: (assignment, name, mutation, points): a plausible mistake, made by editing the
  solution notebook; it must score above 0 and lose at least `points`;
- BROKEN: (assignment, name, mutation): a submission that must still be graded (above 0,
  below full marks) and get feedback, never crash the grading run.

A mutation takes the solution notebook (nbformat) and returns the edited one.
"""
import importlib
from pathlib import Path


def replace_in_cell(nb, grade_id: str, old: str, new: str):
    """Replace ``old`` by ``new`` in the cell with nbgrader id ``grade_id``."""
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            assert old in cell.source, f"mutation target {old!r} not in cell {grade_id}"
            cell.source = cell.source.replace(old, new)
            return nb
    raise KeyError(grade_id)


def delete_cell(nb, grade_id: str):
    """Remove the cell with nbgrader id ``grade_id``, as a careless student might."""
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != grade_id]
    return nb


WRONG, BROKEN = [], []
for _path in sorted(Path(__file__).parent.glob("mistakes_*.py")):
    _module = importlib.import_module(_path.stem)
    WRONG += getattr(_module, "WRONG", [])
    BROKEN += getattr(_module, "BROKEN", [])
