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


def find_cell(nb, grade_id: str):
    """The cell with nbgrader id ``grade_id`` (KeyError if there is none)."""
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return cell
    raise KeyError(grade_id)


def replace_in_cell(nb, grade_id: str, old: str, new: str):
    """Replace ``old`` by ``new`` in the cell with nbgrader id ``grade_id``."""
    cell = find_cell(nb, grade_id)
    assert old in cell.source, f"mutation target {old!r} not in cell {grade_id}"
    cell.source = cell.source.replace(old, new)
    return nb


def delete_cell(nb, grade_id: str):
    """Remove the cell with nbgrader id ``grade_id``, as a careless student might."""
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != grade_id]
    return nb




def set_cell(nb, grade_id: str, source: str):
    """Replace the whole source of the cell with nbgrader id ``grade_id``."""
    find_cell(nb, grade_id).source = source
    return nb


def edit_first_free_cell(nb, edit):
    """Apply ``edit`` (str -> str) to the first code cell without nbgrader metadata (the imports)."""
    cell = next(c for c in nb.cells if c.cell_type == "code" and "nbgrader" not in c.metadata)
    cell.source = edit(cell.source)
    return nb


def move_cell(nb, grade_id: str, before: str):
    """Move the cell ``grade_id`` just above the cell ``before``."""
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    cell = nb.cells.pop(ids.index(grade_id))
    ids.remove(grade_id)
    nb.cells.insert(ids.index(before), cell)
    return nb


# Each chapter's module may also list HOSTILE: (assignment, name, submission, score, feedback): a hostile or broken submission for the
# battery in tests/test_grading.py. `submission` takes the solution notebook and returns the
# submitted notebook, or the raw bytes of a file that is not one; `score` is the exact score it
# must get and `feedback` a regular expression its feedback must match.
WRONG, BROKEN, HOSTILE = [], [], []
for _path in sorted(Path(__file__).parent.glob("mistakes_*.py")):
    _module = importlib.import_module(_path.stem)
    WRONG += getattr(_module, "WRONG", [])
    BROKEN += getattr(_module, "BROKEN", [])
    HOSTILE += getattr(_module, "HOSTILE", [])
