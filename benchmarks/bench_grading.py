"""Submissions graded per minute by tools/grade_class.py, for 1, 2 and all workers, and peak memory.

A simulated class of one assignment (chapter 1 by default): a mix of correct submissions, the
plausible mistakes of tests/mistakes_ch01.py (WRONG) and the hostile battery (HOSTILE), cycled to
``--students`` submissions. Each worker count grades the same class from scratch, in the sandbox,
into a fresh SQLite gradebook. Reported: seconds, submissions per minute, the speed-up over one
worker, the peak memory in use on the machine above what was in use before (sampled every 0.2 s) and the count of
submissions that were not graded (must be 0).

    python benchmarks/bench_grading.py                      # 300 students, 1, 2 and all workers
    python benchmarks/bench_grading.py --students 24 --workers 1 2   # a short run
    python benchmarks/bench_grading.py --workers 2 --append          # add a run to the results

Results are printed and written to benchmarks/results/grading.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from mistakes import HOSTILE, WRONG  # noqa: E402


def class_of(assignment: str, n: int) -> dict[str, bytes]:
    """n submissions: half correct, then the wrong and hostile ones in turn."""
    source = next((ROOT / "solutions" / assignment).glob("*.ipynb"))
    kinds = [("correct", lambda nb: nb)] + [(w[1], w[2]) for w in WRONG if w[0] == assignment] \
        + [(h[1], h[2]) for h in HOSTILE if h[0] == assignment]
    made = {}
    for name, mutate in kinds:
        out = mutate(nbformat.read(source, as_version=4))
        made[name] = out if isinstance(out, bytes) else nbformat.writes(out).encode()
    others = [k for k, _ in kinds[1:]]
    students = {}
    for i in range(n):
        kind = "correct" if i % 2 == 0 or not others else others[(i // 2) % len(others)]
        students[f"s{i:03d}-{kind.replace('_', '-')}"] = made[kind]
    return students


def peak_tree_memory(proc: subprocess.Popen, stop: threading.Event, out: list):
    """The machine's largest memory in use while grading, above what was in use before it started.

    Summing the resident memory of the grading processes would count pages they share (a forked
    kernel shares its parent's) once per process: a fork bomb of 170 children then "uses" 86 GiB of a
    24 GiB machine. The machine's own count has no such double counting.
    """
    before = psutil.virtual_memory()
    peak = 0
    while not stop.is_set():
        now = psutil.virtual_memory()
        peak = max(peak, (before.available - now.available))
        time.sleep(0.2)
    out.append(max(peak, 0))


def grade(assignment: str, students: dict[str, bytes], workers: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        course = Path(tmp)
        shutil.copy(ROOT / "nbgrader_config.py", course)
        shutil.copytree(ROOT / "solutions" / assignment, course / "solutions" / assignment)
        shutil.copytree(ROOT / "tools", course / "tools", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(ROOT / "grading", course / "grading")
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        subprocess.run([str(Path(sys.executable).with_name("nbgrader")), "generate_assignment", assignment,
                        "--force", "--log-level=WARN"], cwd=course, check=True, env=env, capture_output=True)
        name = next((course / "notebooks" / assignment).glob("*.ipynb")).name
        for student, data in students.items():
            folder = course / "submitted" / student / assignment
            folder.mkdir(parents=True)
            (folder / name).write_bytes(data)
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(course / "tools" / "grade_class.py"), assignment,
                                 "--workers", str(workers), "--no-feedback"], cwd=course, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stop, peak = threading.Event(), []
        sampler = threading.Thread(target=peak_tree_memory, args=(proc, stop, peak))
        sampler.start()
        stdout, stderr = proc.communicate()
        seconds = time.perf_counter() - start
        stop.set()
        sampler.join()
        graded = int(re.search(r"graded (\d+) of", stdout).group(1)) if "graded" in stdout else 0
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        return {"workers": workers, "students": len(students), "commit": commit.stdout.strip(),
                "load_average_after": [round(x, 2) for x in os.getloadavg()], "graded": graded, "seconds": round(seconds, 1),
                "per_minute": round(60 * len(students) / seconds, 2), "peak_memory_gib": round(peak[0] / 2**30, 2),
                "summary": stdout.strip().splitlines()[1:8], "returncode": proc.returncode}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="ch01")
    parser.add_argument("--students", type=int, default=300)
    parser.add_argument("--workers", type=int, nargs="+", default=sorted({1, 2, os.cpu_count() or 1}))
    parser.add_argument("--append", action="store_true",
                        help="add these runs to benchmarks/results/grading.json instead of replacing it")
    args = parser.parse_args()
    students = class_of(args.assignment, args.students)
    runs = []
    for workers in args.workers:
        run = grade(args.assignment, students, workers)
        runs.append(run)
        print(f"{workers} worker(s): {run['students']} submissions in {run['seconds']:.0f} s = "
              f"{run['per_minute']:.1f} per minute, peak memory {run['peak_memory_gib']:.2f} GiB, "
              f"not graded: {run['students'] - run['graded']}")
    out = ROOT / "benchmarks" / "results" / "grading.json"
    if args.append and out.exists():
        runs = json.loads(out.read_text())["runs"] + runs
    for run in runs:
        run["speedup_over_first"] = round(run["per_minute"] / runs[0]["per_minute"], 2)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.node(), "cpus": os.cpu_count(), "runs": runs}, indent=1))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
