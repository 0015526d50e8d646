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

