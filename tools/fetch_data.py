"""Put the offline data sets where course_lib.data looks for them.

- Fashion-MNIST and the KJV Bible come from Debian packages (installed by `make data`).
- pbmc68k_reduced ships inside the scanpy wheel: download the wheel from the package
  registry (no dependencies) and extract the one file into ~/.cache/course_lib.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from course_lib.data import PBMC_FILE, cache_dir  # noqa: E402

SCANPY = "scanpy==1.11.5"


def fetch_pbmc() -> Path:
    target = cache_dir() / PBMC_FILE
    if target.exists():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", SCANPY, "-d", tmp],
                       check=True)
        wheel = next(Path(tmp).glob("scanpy-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(f"scanpy/datasets/{PBMC_FILE}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


if __name__ == "__main__":
    print("pbmc68k_reduced:", fetch_pbmc())
