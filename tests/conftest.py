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


def pytest_xdist_make_scheduler(config, log):
    """``--dist loadscope``, with one scope per assignment for the grading tests.

    loadscope keeps each module on one worker (its module-scoped fixtures: the book build, trained
    models). tests/test_exercises.py would then grade every assignment on one worker; but its
    grading tests share state per assignment only (one autograde run each, see `grade`), so each
    assignment can go to whichever worker is free. (xdist's own ``loadgroup`` marks are not seen
    under pytest 9 here: the nodeid suffix they rely on never reaches the scheduler.)
    """
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    from mistakes import BROKEN, WRONG

    assignment_of = {entry[1]: entry[0] for entry in WRONG + BROKEN}
    grading = ("test_solution_gets_full_marks_and_stub_gets_zero[", "test_wrong_submission_gets_partial_marks[",
               "test_broken_submission_is_graded_with_feedback[")

    class AssignmentScopes(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            module, _, test = nodeid.partition("::")
            if module.endswith("test_exercises.py") and test.startswith(grading):
                param = test[test.index("[") + 1:-1]
                return f"grading-{assignment_of.get(param, param)}"
            return super()._split_scope(nodeid)

    return AssignmentScopes(config, log)
