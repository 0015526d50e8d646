"""Colab, simulated: a fresh environment that already holds its own torch, as Colab's does.

Nobody can open Colab from a test, so this builds what its users meet: a new virtual environment
with a torch that is not the pinned one (the machine's local CPU wheel of torch 2.13.0, the way
Colab preinstalls its own build) and IPython, but no course_lib. Then it runs, with IPython (so the
set-up cell's ``%pip`` works as in a notebook), the header set-up cell of a chapter and of an
exercise notebook, pointed at a copy of this checkout instead of the repository's address, followed
by the first cells of chapter 1, and by exercise 1 of chapter 1 answered and checked by its visible
test. It asserts that torch was neither upgraded nor reinstalled (same version, same files) and that
course_lib was imported from the new environment, not from the checkout.

Slow (about a minute of pip installs from the registry or pip's cache): marked ``slow``.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from mistakes import find_cell

ROOT = Path(__file__).resolve().parents[1]
LOCAL_TORCH = sorted(Path("/opt/wheels").glob("torch-2.13.0+cpu-*.whl"))
CHAPTER = ROOT / "book" / "ch01_representations.ipynb"
EXERCISE = ROOT / "notebooks" / "ch01" / "ch01_exercises.ipynb"
SOLUTION = ROOT / "solutions" / "ch01" / "ch01_exercises.ipynb"
DONE = "COLAB-SIMULATION-DONE"

pytestmark = pytest.mark.slow


def code(path: Path) -> list:
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def by_grade_id(path: Path, grade_id: str) -> str:
    return find_cell(nbformat.read(path, as_version=4), grade_id).source


def local_setup_cell(cell_source: str, checkout: Path) -> str:
    """The header's set-up cell, installing from a local copy instead of the repository's address."""
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].rstrip("/")
    remote = re.compile(rf"git\+{re.escape(url)}@[\w.-]+")
    assert remote.search(cell_source), f"the set-up cell no longer installs from {url}:\n{cell_source}"
    return remote.sub(checkout.as_uri(), cell_source)


def torch_state(python: Path) -> dict:
    """torch's version and its installed files' record, whose change would mean a reinstall."""
    out = subprocess.run([str(python), "-c", (
        "import importlib.metadata as m, json, torch;"
        "record = next(f for f in m.distribution('torch').files if f.name == 'RECORD').locate();"
        "print(json.dumps({'version': torch.__version__, 'file': torch.__file__,"
        "'record_mtime': record.stat().st_mtime_ns, 'record': record.read_text()}))")],
        capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not LOCAL_TORCH, reason="no local torch 2.13.0 CPU wheel in /opt/wheels to stand for Colab's torch")
def test_notebooks_set_up_on_a_colab_like_environment_keep_its_torch(tmp_path):
    env_dir = tmp_path / "colab"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + [str(LOCAL_TORCH[0]), "ipython"], check=True, timeout=900)
    before = torch_state(python)
    assert before["version"] == "2.13.0+cpu"

    # A copy of the package (not the checkout itself: pip builds in the source folder).
    checkout = tmp_path / "course_lib_checkout"
    checkout.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, checkout / name)
    shutil.copytree(ROOT / "course_lib", checkout / "course_lib", ignore=shutil.ignore_patterns("__pycache__"))

    chapter, exercise = code(CHAPTER), code(EXERCISE)
    assert "course-header" in chapter[0].metadata.get("tags", []), "chapter 1 must start with its set-up cell"
    cells = [local_setup_cell(chapter[0].source, checkout), "print('course_lib from', course_lib.__file__)"]
    cells += [c.source for c in chapter[1:4]]                        # imports, the digits, PCA's checks
    cells += [local_setup_cell(exercise[0].source, checkout)]        # the exercise notebook's own set-up
    cells += [exercise[1].source, by_grade_id(SOLUTION, "pca_svd"), by_grade_id(EXERCISE, "test_pca_svd_visible")]
    cells += [f"print({DONE!r})"]
    script = tmp_path / "colab_session.ipy"
    script.write_text("\n\n".join(cells) + "\n")

    work = tmp_path / "content"       # Colab's working folder: no course_lib/ beside it
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(PATH=f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}", MPLBACKEND="Agg", COURSE_QUICK="1",
               COURSE_DEVICE="cpu")
    run = subprocess.run([str(env_dir / "bin" / "ipython"), "--no-banner", "--colors=NoColor", str(script)],
                         cwd=work, env=env, capture_output=True, text=True, timeout=1200)
    log = run.stdout[-6000:] + run.stderr[-6000:]
    assert run.returncode == 0 and DONE in run.stdout, f"the Colab-like session failed:\n{log}"
    assert f"course_lib from {env_dir}" in run.stdout, f"course_lib was not installed into the new environment:\n{log}"

    after = torch_state(python)
    assert after["version"] == before["version"], f"torch was changed: {before['version']} -> {after['version']}"
    assert after["record_mtime"] == before["record_mtime"] and after["record"] == before["record"], \
        "torch was reinstalled by the set-up cell"
