"""A class graded into a PostgreSQL gradebook (nbgrader's db_url), on a real server.

The test starts its own PostgreSQL server (Debian's `postgresql` package, installed by
`make setup`) on the loopback interface only, with a throw-away data folder, grades two
submissions in parallel into it with tools/grade_class.py, and reads the grades back.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from test_grading import ASSIGNMENT, NOTEBOOK, ROOT, make_course, nbgrader_env

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(*cmd, **kw):
    # the server refuses to run as root: run it as Debian's `postgres` user
    prefix = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
    result = subprocess.run([*prefix, *cmd], capture_output=True, text=True, **kw)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def postgres():
    if not PG_BIN:
        pytest.fail("PostgreSQL is not installed: run `make setup` (it installs Debian's postgresql)")
    bin_dir = Path(PG_BIN[-1])
    # a folder the server's user can reach (pytest's own temporary folders are private to root)
    top = Path(tempfile.mkdtemp(prefix="grading-pg-"))
    data, sockets = top / "data", top / "sock"
    data.mkdir()
    sockets.mkdir()
    if os.getuid() == 0:
        for path in (top, data, sockets):
            shutil.chown(path, "postgres")
    port = free_port()
    as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-U", "grader", "--auth=trust", "-E", "UTF8")
    as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(data / "server.log"), "start", "-o",
                f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets}")
    try:
        as_postgres(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "grader", "gradebook")
        yield f"postgresql+psycopg://grader@127.0.0.1:{port}/gradebook"
    finally:
        as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(top, ignore_errors=True)


def test_a_class_is_graded_into_postgresql(postgres, tmp_path):
    from nbgrader.api import Gradebook

    course = make_course(tmp_path, db_url=postgres)
    for student, source in {"alice": ROOT / "solutions", "bob": ROOT / "notebooks"}.items():
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        shutil.copy(source / ASSIGNMENT / NOTEBOOK, folder)
    result = subprocess.run([sys.executable, str(course / "tools" / "grade_class.py"), ASSIGNMENT, "--course",
                             str(course), "--workers", "2", "--db-url", postgres],
                            cwd=course, capture_output=True, text=True, timeout=900, env=nbgrader_env())
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr[-4000:]}"
    with Gradebook(postgres) as gb:
        assert gb.find_submission(ASSIGNMENT, "alice").score == 20
        assert gb.find_submission(ASSIGNMENT, "bob").score == 0
    assert not (course / "gradebook.db").exists(), "grades went to SQLite, not to the server"
