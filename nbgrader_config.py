"""nbgrader configuration for the course (run nbgrader from the repository root).

Source notebooks (with solutions and hidden tests) live in solutions/<assignment>/,
and `nbgrader generate_assignment` writes the student versions to
notebooks/<assignment>/. `make release` regenerates all of them.
"""
c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "representation-learning"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
# Student submissions are collected here and graded into autograded/ and feedback/;
# all three stay out of git.
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# A bad submission must get a grade, never crash the grading run:
# - a cell that runs forever is interrupted after this many seconds and marked as failed;
c.Execute.timeout = 600
# - after that interrupt, a kernel deep in a long tensor operation can take more than nbgrader's
#   4 s to report back; wait longer, and if it still does not, go on grading instead of dropping
#   the whole submission.
c.Execute.iopub_timeout = 30
c.Execute.raise_on_iopub_timeout = False
# - a test cell a student deleted is put back (and graded) rather than aborting the notebook.
c.OverwriteCells.add_missing_cells = True

# - every graded kernel gets a memory cap, so that a wrong answer that allocates a huge matrix
#   fails its own cell with a MemoryError instead of exhausting the machine and getting the
#   kernel, the grader or a neighbour killed by the out-of-memory killer. The cap is RLIMIT_DATA:
#   the memory the kernel writes to (heap and anonymous mappings), not address space that is only
#   reserved, which threads and CUDA reserve in bulk. Default: a sixth of the machine's memory, at
#   most 6 GiB (the course's solutions peak at 1.2 GiB); override with the environment variable
#   GRADING_KERNEL_MEMORY_GB (0: no cap).
import os  # noqa: E402
import sys  # noqa: E402

from jupyter_client.manager import AsyncKernelManager  # noqa: E402
from nbgrader.converters.autograde import Autograde  # noqa: E402
from nbgrader.preprocessors import Execute  # noqa: E402


def _kernel_memory_bytes() -> int:
    setting = os.environ.get("GRADING_KERNEL_MEMORY_GB")
    if setting is not None:
        return int(float(setting) * 2**30)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return min(total // 6, 6 * 2**30)


# Runs before the kernel: set the limit, then become the kernel (exec keeps the process id that
# nbgrader watches and interrupts).
_LIMIT_THEN_EXEC = ("import os, resource, sys; n = int(sys.argv[1]); "
                    "resource.setrlimit(resource.RLIMIT_DATA, (n, n)); os.execvp(sys.argv[2], sys.argv[2:])")


class MemoryCappedKernelManager(AsyncKernelManager):
    """Starts each graded kernel under the memory cap above."""

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        limit = _kernel_memory_bytes()
        if limit > 0:
            kernel_cmd = [sys.executable, "-c", _LIMIT_THEN_EXEC, str(limit), *kernel_cmd]
        return await super()._async_launch_kernel(kernel_cmd, **kw)


class MemoryCappedExecute(Execute):
    def __init__(self, *args, **kwargs):
        kwargs["kernel_manager_class"] = MemoryCappedKernelManager
        super().__init__(*args, **kwargs)


c.Autograde.autograde_preprocessors = [
    MemoryCappedExecute if p is Execute else p for p in Autograde.class_traits()["autograde_preprocessors"].default()]
