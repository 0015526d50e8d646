"""The grader that a class cannot fool or break: a battery of hostile submissions, graded in CI.

A whole class of chapter 1 (the cheapest assignment) is exported as a learning-management
system's zip: the solution, the untouched release and every HOSTILE submission of
tests/mistakes_ch01.py. `tools/grade_class.py` grades it in parallel, in the sandbox, and each
submission must get exactly its score and feedback that names its problem, while nothing
outside the submissions changes: the solutions, the gradebook, the other students' files, the
instructor's files.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from mistakes import HOSTILE

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "ch01"
NOTEBOOK = "ch01_exercises.ipynb"
BATTERY = [h for h in HOSTILE if h[0] == ASSIGNMENT]
NBGRADER = str(Path(sys.executable).with_name("nbgrader"))


def nbgrader_env() -> dict:
    return dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))


def make_course(tmp: Path, assignments=(ASSIGNMENT,), db_url: str | None = None) -> Path:
    course = tmp / "course"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    for assignment in assignments:
        shutil.copytree(ROOT / "solutions" / assignment, course / "solutions" / assignment)
    shutil.copytree(ROOT / "tools", course / "tools", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "grading", course / "grading")
    db = [f"--CourseDirectory.db_url={db_url}"] if db_url else []
    for assignment in assignments:
        subprocess.run([NBGRADER, "generate_assignment", assignment, "--force", "--log-level=WARN", *db], cwd=course,
                       check=True, env=nbgrader_env(), capture_output=True)
    return course


def digest(paths) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(paths) if p.is_file()}


def submissions() -> dict[str, bytes]:
    source = ROOT / "solutions" / ASSIGNMENT / NOTEBOOK
    files = {"solution": source.read_bytes(),
             "untouched": (ROOT / "notebooks" / ASSIGNMENT / NOTEBOOK).read_bytes()}
    for _, name, make, *_ in BATTERY:
        made = make(nbformat.read(source, as_version=4))
        files[name] = made if isinstance(made, bytes) else nbformat.writes(made).encode()
    return files


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade the class once; return the course, the grades by student and the printed summary."""
    course = make_course(tmp_path_factory.mktemp("battery"))
    (course / "instructor_notes.txt").write_text("not for students")
    archive = course / "lms_export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for student, data in submissions().items():
            zf.writestr(f"{student.replace('_', '-')}_{NOTEBOOK}", data)
    before = digest([*(course / "solutions").rglob("*"), course / "instructor_notes.txt", *(course / "tools").rglob("*.py")])
    result = subprocess.run([sys.executable, str(course / "tools" / "grade_class.py"), ASSIGNMENT, str(archive),
                             "--course", str(course), "--workers", "2"],
                            cwd=course, capture_output=True, text=True, timeout=1800, env=nbgrader_env())
    rows = {}
    with open(course / f"grades_{ASSIGNMENT}.csv") as f:
        import csv
        for row in csv.DictReader(f):
            rows[row["student"]] = row
    return course, rows, result, before


def feedback_text(course: Path, student: str) -> str:
    html = (course / "feedback" / student / ASSIGNMENT / NOTEBOOK.replace(".ipynb", ".html")).read_text()
    return re.sub(r"<[^>]+>", "", html).replace("&#39;", "'").replace("&quot;", '"').replace("&amp;", "&")


def test_the_battery_is_big_enough():
    assert len(BATTERY) >= 20, f"only {len(BATTERY)} hostile submissions"


def test_every_submission_is_graded(graded):
    course, rows, result, _ = graded
    assert result.returncode == 0, f"grade_class failed:\n{result.stdout}\n{result.stderr[-5000:]}"
    assert set(rows) == {"solution", "untouched", *(name.replace("_", "-") for _, name, *_ in BATTERY)}
    assert float(rows["solution"]["score"]) == float(rows["solution"]["max_score"]) == 20
    assert float(rows["untouched"]["score"]) == 0


@pytest.mark.parametrize("entry", BATTERY, ids=[h[1] for h in BATTERY])
def test_hostile_submission_gets_its_score_and_feedback(graded, entry):
    _, name, _, score, feedback = entry
    course, rows, _, _ = graded
    student = name.replace("_", "-")
    assert rows[student]["status"] == "graded", rows[student]
    assert float(rows[student]["score"]) == score, f"{name} scored {rows[student]['score']}, expected {score}"
    text = feedback_text(course, student)
    assert re.search(feedback, text), f"the feedback of {name} does not say /{feedback}/"
    graded = nbformat.read(course / "autograded" / student / ASSIGNMENT / NOTEBOOK, as_version=4)
    printed = "".join(o.get("text", "") for c in graded.cells if c.cell_type == "code" for o in c.get("outputs", []))
    for marker in ("LEAKED", "VANDALISED", "CONNECTED"):
        assert marker not in printed, f"{name} printed {marker}: the sandbox let it through"


def test_nothing_outside_the_submissions_changed(graded):
    course, rows, _, before = graded
    after = digest([*(course / "solutions").rglob("*"), course / "instructor_notes.txt", *(course / "tools").rglob("*.py")])
    assert after == before, "a submission changed the course's files"
    assert not Path("/root/PWNED").exists() and not Path("/work/PWNED").exists()
    with sqlite3.connect(course / "gradebook.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        students = {r[0] for r in db.execute("SELECT student_id FROM submitted_assignment")}
    assert students == set(rows), "the gradebook lost submissions"
    # each student's submitted notebook is still what that student sent (or set aside, if unreadable)
    sent = {k.replace("_", "-"): v for k, v in submissions().items()}
    for student, data in sent.items():
        path = course / "submitted" / student / ASSIGNMENT / NOTEBOOK
        # set aside when unreadable, kept as sent when the grader had to repair it (duplicated cells)
        kept = [k for k in (path.with_name(NOTEBOOK + ".unreadable"), path.with_name(NOTEBOOK + ".original"))
                if k.exists()]
        assert (kept[0] if kept else path).read_bytes() == data, f"{student}'s submission was changed"


def test_the_summary_counts_each_kind_of_outcome(graded):
    _, rows, result, _ = graded
    summary = dict(re.findall(r"^  (.+?)\s{2,}(\d+)$", result.stdout, re.M))
    assert int(summary["failed to parse"]) == 2
    assert int(summary["flagged for integrity"]) >= 8
    assert int(summary["kernel died"]) >= 2
    assert int(summary["timed out (a cell or the whole submission)"]) >= 1
    assert int(summary["graded"]) == len(rows)


def test_grading_stops_without_a_sandbox(tmp_path):
    course = tmp_path / "course"
    (course / "notebooks" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    env = dict(os.environ, PATH=str(tmp_path))  # no bwrap on this PATH
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "grade_class.py"), ASSIGNMENT, "--course", str(course)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode != 0
    assert "bubblewrap" in result.stderr and "--unsandboxed" in result.stderr, result.stderr


# ------------------------------------------------------------------ the integrity rules, without a kernel

def integrity_flags(nb, assignment: str, notebook: str) -> list[str]:
    """The test cells that IntegrityCheck fails in ``nb`` (it only reads the source)."""
    sys.path.insert(0, str(ROOT / "tools"))
    from secure_grading import INTEGRITY_ENAME, IntegrityCheck

    resources = {"nbgrader": {"assignment": assignment, "notebook": notebook, "student": "s"},
                 "metadata": {"path": str(ROOT / "autograded" / "s" / assignment)}}
    nb, _ = IntegrityCheck(source_directory="solutions").preprocess(nb, resources)
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if o.get("ename") == INTEGRITY_ENAME]


SOURCES = sorted((ROOT / "solutions").glob("*/*.ipynb"))


@pytest.mark.parametrize("source", SOURCES, ids=[s.parent.name for s in SOURCES])
def test_honest_work_is_never_flagged(source):
    """The solutions and every registered plausible mistake use course_lib only as intended."""
    from mistakes import BROKEN, WRONG

    assert integrity_flags(nbformat.read(source, as_version=4), source.parent.name, source.stem) == []
    for assignment, name, mutate, *_ in WRONG + BROKEN:
        if assignment == source.parent.name:
            flags = integrity_flags(mutate(nbformat.read(source, as_version=4)), assignment, source.stem)
            if name in CALLS_THE_REFERENCE:
                assert flags, f"{name} calls course_lib's reference for its task but was not flagged"
            else:
                assert flags == [], f"{name} is honest but was flagged: {flags}"


# Registered mistakes that call course_lib's own implementation of the task: the integrity check must
# flag them. (Chapter 8's `kl_calls_course_reference` is caught by the notebook's own tests instead, which
# switch course_lib.vae off while the student's functions run; its round trip checks the points it loses.)
CALLS_THE_REFERENCE = {"quantize_calls_course_lib", "perplexity_calls_course_lib", "discriminator_loss_from_course_lib",
                       "nt_xent_calls_course_lib", "masking_calls_reference"}


@pytest.mark.parametrize("assignment,module", [("ch04", "word2vec"), ("ch07", "anomaly"), ("ch07", "losses")])
def test_stubs_that_call_the_reference_of_the_same_name_are_flagged(assignment, module):
    """The issue's case: each stub calls the function of the same name in course_lib."""
    import ast
    import importlib

    reference = importlib.import_module(f"course_lib.{module}")
    source = next((ROOT / "solutions" / assignment).glob("*.ipynb"))
    nb = nbformat.read(source, as_version=4)
    replaced = []
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.FunctionDef) and hasattr(reference, node.name):
                    args = ", ".join(a.arg for a in node.args.args)
                    cell.source = (f"import course_lib.{module} as helpers\n\ndef {node.name}({args}):\n"
                                   f"    return helpers.{node.name}({args})\n")
                    replaced.append(node.name)
    assert replaced, f"no stub of {assignment} has a namesake in course_lib.{module}"
    flags = integrity_flags(nb, assignment, source.stem)
    assert len(flags) >= 2 * len(replaced), f"only {flags} were flagged for {replaced}"


def test_every_assignment_has_fresh_time_budgets():
    """Budgets recorded for another version of a notebook are ignored (cells get 10 minutes)."""
    import json

    sys.path.insert(0, str(ROOT / "tools"))
    from secure_grading import notebook_digest

    table = json.loads((ROOT / "grading" / "time_budgets.json").read_text())
    for source in SOURCES:
        entry = table.get(source.parent.name, {}).get(source.stem)
        assert entry and entry["digest"] == notebook_digest(source), (
            f"the time budgets of {source.relative_to(ROOT)} are missing or stale: run `make budgets`")
        assert not entry["quick"], "budgets must be timed at full size (`make budgets` does)"
        graded = [c.metadata["nbgrader"]["grade_id"] for c in nbformat.read(source, as_version=4).cells
                  if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")]
        assert set(graded) <= set(entry["seconds"]), "a graded cell has no recorded time"
