"""Grade a whole class in one command: nbgrader's autograde, per student, on all cores.

    python tools/grade_class.py ASSIGNMENT [SUBMISSIONS] [--workers N] [--db-url URL] [--csv FILE]

Run it from the course folder (the one with nbgrader_config.py), after `nbgrader
generate_assignment ASSIGNMENT`. SUBMISSIONS is either

- a folder laid out as nbgrader collects it (``<student>/<assignment>/<notebook>.ipynb``;
  default: the course's ``submitted/``), or
- the zip that a learning-management system exports: one notebook per student, the student id
  in the file name (``--id-pattern``; by default the part of the name before the first ``_``).

Each student is graded by its own ``nbgrader autograde --student`` process (in the sandbox that
nbgrader_config.py sets up), ``--workers`` at a time; then the per-student HTML feedback is
generated, a CSV of grades is written and a summary is printed: graded, failed to parse, timed
out, kernel died, flagged for integrity. A file that is not a notebook (invalid JSON, empty) is
graded as the untouched release, so that it gets 0 and feedback saying why.

The gradebook is SQLite by default (``gradebook.db``; parallel writers wait for each other
instead of failing with "database is locked") or any database nbgrader supports through
``--db-url`` (PostgreSQL: ``postgresql://user@host/db``). This script does not import the course's
package.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
from nbformat.v4 import new_markdown_cell

# error names that tools/secure_grading.py writes into the graded notebooks
from secure_grading import DEAD_KERNEL_ENAME, INTEGRITY_ENAME, TIMEOUT_ENAME  # noqa: E402  (same folder)

SAFE_ID = re.compile(r"[^A-Za-z0-9_.@-]+")


def nbgrader_command() -> list[str]:
    exe = Path(sys.executable).with_name("nbgrader")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nbgrader"]


def sqlite_url(course: Path) -> str:
    # writers wait up to 10 minutes for the lock instead of failing with "database is locked"
    return f"sqlite:///{(course / 'gradebook.db').resolve()}?timeout=600"


def release_notebooks(course: Path, release: str, assignment: str) -> list[Path]:
    notebooks = sorted((course / release / assignment).glob("*.ipynb"))
    if not notebooks:
        sys.exit(f"no release of {assignment} in {course / release}: run `nbgrader generate_assignment "
                 f"{assignment}` (or `make release`) first")
    return notebooks


def import_zip(archive: Path, submitted: Path, assignment: str, notebooks: list[Path], id_pattern: str) -> list[str]:
    """Unpack an LMS export into nbgrader's layout; returns the student ids found."""
    pattern = re.compile(id_pattern)
    students = []
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            name = Path(info.filename).name
            if info.is_dir() or not name.endswith(".ipynb") or name.startswith("."):
                continue
            match = pattern.search(name)
            if not match:
                print(f"skipped {info.filename}: no student id in its name (--id-pattern {id_pattern!r})")
                continue
            student = SAFE_ID.sub("_", match.group("id")).strip("._") or "unknown"
            # the release notebook this file is a copy of: the one whose name ends the file's name
            target = next((nb.name for nb in notebooks if name.endswith(nb.name)), notebooks[0].name)
            folder = submitted / student / assignment
            folder.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(folder / target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            students.append(student)
    return sorted(set(students))


def drop_duplicate_grade_ids(nb) -> list[str]:
    """Later copies of a graded or locked cell become ordinary cells (nbgrader refuses the notebook otherwise).

    The first copy keeps its grade id and is graded as usual; a note at the top says what was changed.
    """
    seen, duplicated = set(), []
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id is None:
            continue
        if grade_id in seen:
            cell.metadata = {k: v for k, v in cell.metadata.items() if k != "nbgrader"}
            cell["id"] = f"{cell.get('id', 'cell')}-copy-{len(duplicated)}"
            duplicated.append(grade_id)
        seen.add(grade_id)
    if duplicated:
        nb.cells.insert(0, new_markdown_cell(
            f"**Grader: the cells {', '.join(sorted(set(duplicated)))} appear more than once in your notebook. "
            "The first copy of each was graded; later copies ran as ordinary cells.**"))
    return duplicated


def check_readable(path: Path, release: Path) -> str | None:
    """None if the file is a notebook (repaired if it duplicates graded cells); else why not, after putting
    the release in its place."""
    try:
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            raise ValueError("the file is empty")
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # noqa: BLE001  (any unreadable file gets the same treatment)
        why = f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
    else:
        if drop_duplicate_grade_ids(nb):  # grade a repaired copy; keep what the student sent beside it
            shutil.copy(path, path.with_name(path.name + ".original"))
            nbformat.write(nb, path)
        return None
    shutil.move(path, path.with_name(path.name + ".unreadable"))
    nb = nbformat.read(release, as_version=4)
    nb.cells.insert(0, new_markdown_cell(
        f"**Grader: the file you submitted could not be read as a notebook ({why}). It was graded as an "
        "empty submission. Check that you uploaded the `.ipynb` file itself, saved from Jupyter or Colab.**"))
    nbformat.write(nb, path)
    return why


def grade_student(course: Path, assignment: str, student: str, db_url: str, timeout: float) -> dict:
    start = time.perf_counter()
    cmd = [*nbgrader_command(), "autograde", assignment, f"--student={student}", "--force",
           f"--CourseDirectory.db_url={db_url}", "--log-level=WARN"]
    try:
        run = subprocess.run(cmd, cwd=course, capture_output=True, text=True, timeout=timeout)
        status = "graded" if run.returncode == 0 else "grading error"
        log = run.stdout + run.stderr
    except subprocess.TimeoutExpired as err:
        status, log = "timed out", str(err)
    return {"student": student, "status": status, "log": log[-4000:], "seconds": time.perf_counter() - start}


def outcome_details(course: Path, autograded: str, student: str, assignment: str) -> dict:
    """What happened in the graded notebooks: time-outs, a dead kernel, integrity flags."""
    details = {"timed_out_cells": 0, "kernel_died": False, "integrity": []}
    for path in (course / autograded / student / assignment).glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            for out in cell.get("outputs", []):
                if out.get("output_type") != "error":
                    continue
                if out.ename == TIMEOUT_ENAME:
                    details["timed_out_cells"] += 1
                elif out.ename == DEAD_KERNEL_ENAME:
                    details["kernel_died"] = True
                elif out.ename == INTEGRITY_ENAME:
                    details["integrity"].append(cell.metadata.get("nbgrader", {}).get("grade_id", "?"))
    return details


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Grade a whole class in parallel with nbgrader.")
    parser.add_argument("assignment")
    parser.add_argument("submissions", nargs="?", help="folder in nbgrader's layout, or an LMS zip "
                                                       "(default: the course's submitted/ folder)")
    parser.add_argument("--course", default=".", help="the course folder (with nbgrader_config.py)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--db-url", help="nbgrader's gradebook URL (default: SQLite gradebook.db in the course)")
    parser.add_argument("--csv", help="where to write the grades (default: grades_<assignment>.csv)")
    parser.add_argument("--id-pattern", default=r"^(?P<id>[^_]+)_",
                        help="regex with a group 'id' that finds the student id in an LMS file name")
    parser.add_argument("--student-timeout", type=float, default=3600, help="seconds for one student, at most")
    parser.add_argument("--no-feedback", action="store_true", help="skip the HTML feedback")
    parser.add_argument("--unsandboxed", action="store_true",
                        help="grade without the sandbox: student code then runs with your rights")
    args = parser.parse_args(argv)

    course = Path(args.course).resolve()
    if not (course / "nbgrader_config.py").exists():
        sys.exit(f"{course} has no nbgrader_config.py: run from the course folder or pass --course")
    if args.unsandboxed:
        os.environ["GRADING_UNSANDBOXED"] = "1"
        print("WARNING: grading without the sandbox: the submissions' code runs with your rights")
    else:
        from secure_grading import bwrap_available
        problem = bwrap_available()
        if problem:
            sys.exit(f"cannot grade in a sandbox: {problem}.\nTo grade without one (the student's code then "
                     "runs with your rights), pass --unsandboxed.")
    submitted_dir, release_dir, autograded_dir = "submitted", "notebooks", "autograded"
    db_url = args.db_url or sqlite_url(course)
    release = release_notebooks(course, release_dir, args.assignment)
    submitted = course / submitted_dir

    source = Path(args.submissions).resolve() if args.submissions else submitted
    if source.is_file() and zipfile.is_zipfile(source):
        students = import_zip(source, submitted, args.assignment, release, args.id_pattern)
    elif source.is_dir():
        if source != submitted.resolve():
            shutil.copytree(source, submitted, dirs_exist_ok=True)
        students = sorted(p.parent.name for p in submitted.glob(f"*/{args.assignment}") if p.is_dir())
    else:
        sys.exit(f"{source} is neither a folder nor a zip file")
    if not students:
        sys.exit(f"no submissions of {args.assignment} found in {source}")

    unreadable = {}
    for student in students:
        for nb in release:
            path = submitted / student / args.assignment / nb.name
            if path.exists():
                why = check_readable(path, nb)
                if why:
                    unreadable[student] = why

    # create the gradebook (and the assignment in it) once, before the parallel writers start
    from nbgrader.api import Gradebook
    with Gradebook(db_url) as gb:
        if args.assignment not in [a.name for a in gb.assignments]:
            sys.exit(f"{args.assignment} is not in the gradebook {db_url}: run `nbgrader generate_assignment "
                     f"{args.assignment} --force` (with the same --db-url) first")

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool:
        results = list(pool.map(lambda s: grade_student(course, args.assignment, s, db_url, args.student_timeout),
                                students))
    grading_seconds = time.perf_counter() - start

    if not args.no_feedback:
        with ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool:
            list(pool.map(lambda s: subprocess.run(
                [*nbgrader_command(), "generate_feedback", args.assignment, f"--student={s}", "--force",
                 f"--CourseDirectory.db_url={db_url}", "--log-level=ERROR"], cwd=course, capture_output=True),
                [r["student"] for r in results if r["status"] == "graded"]))

    rows = []
    with Gradebook(db_url) as gb:
        for r in results:
            row = {"student": r["student"], "status": r["status"], "score": "", "max_score": "",
                   "unreadable": unreadable.get(r["student"], ""), "timed_out_cells": 0, "kernel_died": False,
                   "integrity_flags": "", "seconds": round(r["seconds"], 1)}
            if r["status"] == "graded":
                sub = gb.find_submission(args.assignment, r["student"])
                details = outcome_details(course, autograded_dir, r["student"], args.assignment)
                row.update(score=sub.score, max_score=sub.max_score, timed_out_cells=details["timed_out_cells"],
                           kernel_died=details["kernel_died"], integrity_flags=" ".join(details["integrity"]))
            else:
                print(f"--- {r['student']}: {r['status']}\n{r['log']}", file=sys.stderr)
            rows.append(row)
    out = Path(args.csv or course / f"grades_{args.assignment}.csv")
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    summary = {
        "submissions": len(rows),
        "graded": sum(r["status"] == "graded" for r in rows),
        "failed to parse": len(unreadable),
        "timed out (a cell or the whole submission)": sum(r["timed_out_cells"] > 0 or r["status"] == "timed out"
                                                         for r in rows),
        "kernel died": sum(bool(r["kernel_died"]) for r in rows),
        "flagged for integrity": sum(bool(r["integrity_flags"]) for r in rows),
        "grading errors": sum(r["status"] == "grading error" for r in rows),
    }
    print(f"{args.assignment}: graded {summary['graded']} of {len(rows)} submissions in {grading_seconds:.0f} s "
          f"with {args.workers} workers ({60 * len(rows) / grading_seconds:.1f} per minute)")
    for key, value in summary.items():
        print(f"  {key:45s} {value}")
    print(f"  grades: {out}\n  feedback: {course / 'feedback'}/<student>/{args.assignment}/")
    (course / f"grading_summary_{args.assignment}.json").write_text(json.dumps(
        {**summary, "seconds": grading_seconds, "workers": args.workers}, indent=1))
    return 0 if summary["grading errors"] == 0 and summary["graded"] == len(rows) else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
