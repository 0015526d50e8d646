import os

import numpy as np
import pytest
import torch

# Unit tests must not depend on a GPU being present or absent: run on the CPU
# unless a test asks for a device itself.
os.environ.setdefault("COURSE_DEVICE", "cpu")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny models train 10-30x slower when two threads fight over a busy core (CI runs the
    # notebooks beside the unit tests); one thread is both faster and repeatable.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def pytest_collection_modifyitems(config, items):
    """Group tests for pytest-xdist (`--dist loadgroup`, as `make test` runs them).

    Each file stays on one worker (a notebook's cells share one kernel; a module's
    fixtures are built once), except the grading round trip, which is split by
    assignment so that two assignments are autograded at the same time.
    """
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        group = item.nodeid.split("::")[0]
        callspec = getattr(item, "callspec", None)
        if group.endswith("test_exercises.py") and callspec is not None:
            assignment = callspec.params.get("assignment") or callspec.params.get("entry", ("",))[0]
            if assignment:
                group = f"grading-{assignment}"
        item.add_marker(pytest.mark.xdist_group(group))
