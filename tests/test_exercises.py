"""The exercises, checked both ways through nbgrader itself.

- notebooks/ is exactly what `nbgrader generate_assignment` makes from solutions/;
- no solution and no hidden test reaches notebooks/;
- a round trip through `nbgrader autograde` in a temporary course: the solution
  gets full marks, the untouched release gets zero, plausible wrong submissions
  get partial marks, and broken submissions still get a grade and feedback.
"""
from __future__ import annotations

import json
import os
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
    # nbgrader runs `alembic` from PATH: put the environment's scripts first even when it is not activated
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    result = subprocess.run([NBGRADER, *args], cwd=course, capture_output=True, text=True, timeout=1200, env=env)
    assert result.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def make_course(tmp: Path) -> Path:
    course = tmp / "course"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions", course / "solutions")
    # the hardened grader (sandbox, time budgets, integrity) and the budgets recorded at release
    shutil.copytree(ROOT / "tools", course / "tools", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "grading", course / "grading")
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
    releases = sorted((ROOT / "notebooks").rglob("*.ipynb"))
    for release in releases:
        text = release.read_text()
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
            assert marker not in text, f"{release} contains '{marker}'"
    n_secrets = 0
    for source in (ROOT / "solutions").glob("*/*.ipynb"):
        release = ROOT / "notebooks" / source.parent.name / source.name
        cells = nbformat.read(source, as_version=4).cells
        # what students may see: everything outside the solution and hidden-test blocks
        public = "\n".join(HIDDEN_BLOCK.sub("", SOLUTION_BLOCK.sub("", c.source)) for c in cells)
        secrets = [line.strip() for c in cells
                   for block in SOLUTION_BLOCK.findall(c.source) + HIDDEN_BLOCK.findall(c.source)
                   for line in block.splitlines() if len(line.strip()) > 25 and line.strip() not in public]
        n_secrets += len(secrets)
        for cell in nbformat.read(release, as_version=4).cells:
            for line in secrets:
                assert line not in cell.source, f"{release} leaks solution or hidden-test line: {line!r}"
    assert n_secrets, "found no solution code to look for: the check would be vacuous"


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

from mistakes import BROKEN, WRONG  # noqa: E402  (tests/mistakes.py gathers every chapter's list)


_GRADED = {}


def grade(assignment: str, tmp_path_factory):
    """Autograde every kind of submission of one assignment (once); return scores and the course dir."""
    if assignment in _GRADED:
        return _GRADED[assignment]
    from nbgrader.api import Gradebook

    course = make_course(tmp_path_factory.mktemp(f"grading-{assignment}"))
    run_nbgrader(course, "generate_assignment", assignment, "--force")
    students = set()
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
            students.add(student)
    # a short timeout keeps a "runs forever" submission cheap; it is interrupted and graded
    run_nbgrader(course, "autograde", assignment, "--force", "--Execute.timeout=30")
    run_nbgrader(course, "generate_feedback", assignment, "--force")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        # Auto-graded points only: written answers are graded by hand after autograde, so the
        # total `score` of an assignment with written answers can never reach `max_score` here.
        scores = {}
        for student in students:
            submission = gb.find_submission(assignment, student)
            scores[student] = (submission.code_score, submission.max_code_score)
    _GRADED[assignment] = scores, course
    return scores, course


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_gets_full_marks_and_stub_gets_zero(tmp_path_factory, assignment):
    scores, _ = grade(assignment, tmp_path_factory)
    score, max_score = scores["solution"]
    assert max_score > 0 and score == max_score, f"solution scored {score}/{max_score}"
    score, _ = scores["untouched"]
    assert score == 0, f"the untouched release scored {score}/{max_score}"


@pytest.mark.parametrize("assignment,name,mutation,loses", WRONG, ids=[w[1] for w in WRONG])
def test_wrong_submission_gets_partial_marks(tmp_path_factory, assignment, name, mutation, loses):
    scores, _ = grade(assignment, tmp_path_factory)
    score, max_score = scores[name]
    assert 0 < score <= max_score - loses, f"{name} scored {score}/{max_score}; it should lose >= {loses}"


@pytest.mark.parametrize("entry", BROKEN, ids=[b[1] for b in BROKEN])
def test_broken_submission_is_graded_with_feedback(tmp_path_factory, entry):
    assignment, name, _mutation, *same_as = entry
    scores, course = grade(assignment, tmp_path_factory)
    score, max_score = scores[name]
    assert 0 < score < max_score, f"{name} scored {score}/{max_score}"
    if same_as:  # e.g. a deleted test cell is restored, so the mistake costs what it always costs
        assert score == scores[same_as[0]][0], f"{name} scored {score}, {same_as[0]} {scores[same_as[0]][0]}"
    feedback = list((course / "feedback" / name / assignment).glob("*.html"))
    assert feedback, f"no feedback was generated for {name}"
