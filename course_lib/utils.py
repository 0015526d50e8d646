"""Shared plumbing: device choice, seeding, quick mode and input checks.

Every chapter and exercise uses these helpers, so a notebook reads the same on
a laptop CPU, on Colab's GPU and inside the test suite.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

QUICK_ENV = "COURSE_QUICK"
DEVICE_ENV = "COURSE_DEVICE"


def quick_mode() -> bool:
    """True when the environment variable ``COURSE_QUICK`` is set to a true value.

    Quick mode exists for the test suite: it shrinks epochs and sample sizes and
    never changes which code runs.
    """
    return os.environ.get(QUICK_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def get_device(prefer: str | None = None) -> torch.device:
    """Pick the fastest device available: CUDA, then Apple's MPS, then the CPU.

    ``prefer`` (or the environment variable ``COURSE_DEVICE``) forces a device,
    for example ``"cpu"`` to reproduce a CPU run on a GPU machine.
    """
    prefer = prefer or os.environ.get(DEVICE_ENV)
    if prefer:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_size(cpu, gpu=None, quick=None, device: torch.device | str | None = None):
    """Choose a workload size (epochs, samples, ...) from the device and the mode.

    ``cpu`` is the size that gives a meaningful run on a 2-core CPU in a few
    minutes, ``gpu`` the size worth running on an accelerator (defaults to
    ``cpu``), and ``quick`` the size used in quick mode (defaults to ``cpu``).
    """
    if quick_mode():
        return cpu if quick is None else quick
    device = torch.device(device) if device is not None else get_device()
    if device.type != "cpu" and gpu is not None:
        return gpu
    return cpu


def limit_cpu_threads(max_cores: int = 2) -> int:
    """Run PyTorch (and NumPy's BLAS) on one thread when the machine has at most ``max_cores`` cores.

    The course's models are small: on a 2-core CPU one thread is about as fast
    as two for them, and it does not slow to a crawl when another process (a
    second notebook, the test suite's other worker) shares the cores. Machines
    with more cores, and GPUs, are left alone. Returns the thread count in use.
    """
    if (os.cpu_count() or 1) <= max_cores:
        torch.set_num_threads(1)
        try:  # NumPy's BLAS too: an SVD of a 700 x 765 matrix runs 4x faster on one thread there
            from threadpoolctl import threadpool_limits  # installed with scikit-learn
        except ImportError:
            pass
        else:
            threadpool_limits(1)
    return torch.get_num_threads()


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python's, NumPy's and PyTorch's generators (CPU and every GPU).

    Returns a ``torch.Generator`` seeded the same way, for code that wants its
    own stream (data splits, shuffling) independent of global state.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    os.environ["PYTHONHASHSEED"] = str(seed)
    return torch.Generator().manual_seed(int(seed))


def as_2d_array(X, name: str = "X", *, min_rows: int = 2, dtype=np.float64) -> np.ndarray:
    """Return ``X`` as a finite 2-D float array, or raise a ``ValueError`` naming it.

    The classical methods call this first so that a student who passes a list,
    a 1-D vector or data containing NaN gets told exactly what is wrong.
    """
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    try:
        arr = np.asarray(X, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a numeric array of shape (n_samples, n_features): {err}") from None
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}")
    if arr.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows (samples), got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def check_n_components(n_components, upper: int, name: str = "n_components") -> int:
    """Validate a target dimension: an int with ``1 <= n_components <= upper``."""
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(n_components).__name__}")
    if not 1 <= n_components <= upper:
        raise ValueError(f"{name} must be between 1 and {upper}, got {n_components}")
    return int(n_components)
