import os

import numpy as np
import pytest
import torch

# Unit tests must not depend on a GPU being present or absent: run on the CPU
# unless a test asks for a device itself.
os.environ.setdefault("COURSE_DEVICE", "cpu")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def rng():
    return np.random.default_rng(0)
