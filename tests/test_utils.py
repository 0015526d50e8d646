import os

import numpy as np
import pytest
import torch

from course_lib import get_device, limit_cpu_threads, pick_size, quick_mode, seed_everything
from course_lib.utils import as_2d_array


def test_device_override_and_default(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert get_device().type == "cpu"
    monkeypatch.delenv("COURSE_DEVICE")
    expected = "cuda" if torch.cuda.is_available() else None
    if expected:
        assert get_device().type == "cuda"
    else:
        assert get_device().type in {"cpu", "mps"}


def test_quick_mode_and_pick_size(monkeypatch):
    monkeypatch.setenv("COURSE_QUICK", "1")
    assert quick_mode() and pick_size(100, 1000, quick=3) == 3
    monkeypatch.setenv("COURSE_QUICK", "0")
    assert not quick_mode()
    assert pick_size(100, 1000, device="cpu") == 100
    assert pick_size(100, 1000, device="cuda") == 1000
    assert pick_size(100, device="cuda") == 100


def test_seed_everything_makes_runs_repeat():
    seed_everything(3)
    a = (np.random.rand(), torch.rand(1).item())
    seed_everything(3)
    assert (np.random.rand(), torch.rand(1).item()) == a
    with pytest.raises(TypeError, match="seed"):
        seed_everything(1.5)


def test_as_2d_array_messages():
    assert as_2d_array(torch.ones(3, 2)).shape == (3, 2)
    with pytest.raises(ValueError, match="at least 2 rows"):
        as_2d_array(np.ones((1, 3)))
    with pytest.raises(TypeError, match="numeric"):
        as_2d_array([["a", "b"], ["c", "d"]], "E")


def test_limit_cpu_threads_only_on_small_machines(monkeypatch):
    from threadpoolctl import threadpool_info, threadpool_limits

    previous = torch.get_num_threads()
    # limits=None changes nothing on entry and puts NumPy's BLAS threads back on exit.
    with threadpool_limits(limits=None):
        try:
            torch.set_num_threads(2)
            monkeypatch.setattr(os, "cpu_count", lambda: 16)
            assert limit_cpu_threads() == 2, "a 16-core machine keeps its threads"
            monkeypatch.setattr(os, "cpu_count", lambda: 2)
            assert limit_cpu_threads() == 1 and torch.get_num_threads() == 1
            blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
            assert blas and set(blas) == {1}, f"NumPy's BLAS threads: {blas}"
        finally:
            torch.set_num_threads(previous)
