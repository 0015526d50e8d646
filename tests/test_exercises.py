"""The exercises, checked both ways through nbgrader itself.

- notebooks/ is exactly what `nbgrader generate_assignment` makes from solutions/;
- no solution and no hidden test reaches notebooks/;
- a round trip through `nbgrader autograde` in a temporary course: the solution
  gets full marks, the untouched release gets zero, plausible wrong submissions
  get partial marks, and broken submissions still get a grade and feedback.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NBGRADER = str(Path(sys.executable).with_name("nbgrader"))
ASSIGNMENTS = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir())
SOLUTION_BLOCK = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)
HIDDEN_BLOCK = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)


def run_nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([NBGRADER, *args], cwd=course, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def make_course(tmp: Path) -> Path:
    course = tmp / "course"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions", course / "solutions")
    return course


def notebook_json(path: Path) -> dict:
    return json.loads(path.read_text())


# ------------------------------------------------------------------ the release

@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("release"))
    for assignment in ASSIGNMENTS:
        run_nbgrader(course, "generate_assignment", assignment, "--force")
    return course


def test_every_assignment_has_a_release():
    assert ASSIGNMENTS, "solutions/ holds no assignment"
    for assignment in ASSIGNMENTS:
        for source in (ROOT / "solutions" / assignment).glob("*.ipynb"):
            assert (ROOT / "notebooks" / assignment / source.name).exists(), f"no release of {source}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_is_what_nbgrader_makes(generated, assignment):
    for fresh in sorted((generated / "notebooks" / assignment).glob("*.ipynb")):
        committed = ROOT / "notebooks" / assignment / fresh.name
        assert notebook_json(committed) == notebook_json(fresh), (
            f"{committed.relative_to(ROOT)} is stale: run `make release` to regenerate notebooks/")


def test_no_solution_or_hidden_test_in_the_release():
    secrets = []
    for source in (ROOT / "solutions").glob("*/*.ipynb"):
        cells = nbformat.read(source, as_version=4).cells
        # what students may see: everything outside the solution and hidden-test blocks
        public = "\n".join(HIDDEN_BLOCK.sub("", SOLUTION_BLOCK.sub("", c.source)) for c in cells)
        for cell in cells:
            for block in SOLUTION_BLOCK.findall(cell.source) + HIDDEN_BLOCK.findall(cell.source):
                secrets += [line.strip() for line in block.splitlines()
                            if len(line.strip()) > 25 and line.strip() not in public]
    assert secrets, "found no solution code to look for: the check would be vacuous"
    for release in (ROOT / "notebooks").rglob("*.ipynb"):
        text = release.read_text()
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
            assert marker not in text, f"{release} contains '{marker}'"
        for cell in nbformat.read(release, as_version=4).cells:
            for line in secrets:
                assert line not in cell.source, f"{release} leaks solution or hidden-test line: {line!r}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_validator_accepts_the_solution_and_rejects_the_stub(assignment):
    from nbgrader.validator import Validator

    validator = Validator()
    for source in (ROOT / "solutions" / assignment).glob("*.ipynb"):
        result = validator.validate(str(source))
        assert not result.get("failed") and not result.get("type_changed"), f"{source} fails: {result}"
        stub = ROOT / "notebooks" / assignment / source.name
        assert validator.validate(str(stub)).get("failed"), f"the untouched {stub} should fail validation"


# ------------------------------------------------------------------ autograding

def _replace_in_cell(nb, grade_id: str, old: str, new: str):
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            assert old in cell.source, f"mutation target {old!r} not in cell {grade_id}"
            cell.source = cell.source.replace(old, new)
            return nb
    raise KeyError(grade_id)


def _delete_cell(nb, grade_id: str):
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != grade_id]
    return nb


# Plausible wrong submissions: (assignment, name, mutation, points the mistake must lose).
WRONG = [
    ("ch01", "pca_without_centring",
     lambda nb: _replace_in_cell(nb, "pca_svd", "Xc = X - mu", "Xc = X"), 4),
    ("ch01", "mds_in_increasing_order",
     lambda nb: _replace_in_cell(nb, "mds_embedding", "[::-1][:k]", "[:k]"), 3),
    ("ch01", "eigenmap_keeps_the_constant",
     lambda nb: _replace_in_cell(nb, "eigenmap_embedding", "F[:, 1:k + 1]", "F[:, :k]"), 5),
    ("ch01", "eigenmap_standard_problem",
     lambda nb: _replace_in_cell(nb, "eigenmap_embedding", "scipy.linalg.eigh(L, np.diag(degree))",
                                 "np.linalg.eigh(L)"), 3),
    ("ch01", "double_center_without_half",
     lambda nb: _replace_in_cell(nb, "double_center", "K = -0.5 * J @ D_squared @ J",
                                 "K = -J @ D_squared @ J"), 3),
]
# Broken submissions that must still be graded: (assignment, name, mutation).
BROKEN = [
    ("ch01", "syntax_error",
     lambda nb: _replace_in_cell(nb, "pca_svd", "mu = X.mean(axis=0)", "mu = X.mean(axis=0"), ),
    # deleting the test that would fail does not help: nbgrader puts it back and grades it
    ("ch01", "deleted_test_cell",
     lambda nb: _delete_cell(_replace_in_cell(nb, "pca_svd", "Xc = X - mu", "Xc = X"), "test_pca_svd_hidden")),
    ("ch01", "runs_forever",
     lambda nb: _replace_in_cell(nb, "double_center", "n = D_squared.shape[0]",
                                 "import time\n    while True: time.sleep(1)\n    n = 0")),
]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Autograde every kind of submission once; return the gradebook scores and the course dir."""
    from nbgrader.api import Gradebook

    course = make_course(tmp_path_factory.mktemp("grading"))
    submissions = {}  # (assignment, student) -> how it was made
    for assignment in ASSIGNMENTS:
        run_nbgrader(course, "generate_assignment", assignment, "--force")
        for source in (course / "solutions" / assignment).glob("*.ipynb"):
            release = course / "notebooks" / assignment / source.name
            variants = {"solution": nbformat.read(source, as_version=4),
                        "untouched": nbformat.read(release, as_version=4)}
            for a, name, mutate, *_ in WRONG + BROKEN:
                if a == assignment:
                    variants[name] = mutate(nbformat.read(source, as_version=4))
            for student, nb in variants.items():
                folder = course / "submitted" / student / assignment
                folder.mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, folder / source.name)
                submissions[assignment, student] = nb
        # a short timeout keeps the "runs forever" submission cheap; it is interrupted and graded
        run_nbgrader(course, "autograde", assignment, "--force", "--Execute.timeout=20")
        run_nbgrader(course, "generate_feedback", assignment, "--force")

    scores = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for assignment, student in submissions:
            sub = gb.find_submission(assignment, student)
            scores[assignment, student] = (sub.score, sub.max_score)
    return scores, course


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_gets_full_marks_and_stub_gets_zero(graded, assignment):
    scores, _ = graded
    score, max_score = scores[assignment, "solution"]
    assert max_score > 0 and score == max_score, f"solution scored {score}/{max_score}"
    score, _ = scores[assignment, "untouched"]
    assert score == 0, f"the untouched release scored {score}/{max_score}"


@pytest.mark.parametrize("assignment,name,mutation,loses", WRONG, ids=[w[1] for w in WRONG])
def test_wrong_submission_gets_partial_marks(graded, assignment, name, mutation, loses):
    scores, _ = graded
    score, max_score = scores[assignment, name]
    assert 0 < score <= max_score - loses, f"{name} scored {score}/{max_score}; it should lose >= {loses}"


@pytest.mark.parametrize("assignment,name,mutation", BROKEN, ids=[b[1] for b in BROKEN])
def test_broken_submission_is_graded_with_feedback(graded, assignment, name, mutation):
    scores, course = graded
    score, max_score = scores[assignment, name]
    assert 0 < score < max_score, f"{name} scored {score}/{max_score}"
    if name == "deleted_test_cell":
        assert score == scores[assignment, "pca_without_centring"][0]
    feedback = list((course / "feedback" / name / assignment).glob("*.html"))
    assert feedback, f"no feedback was generated for {name}"
