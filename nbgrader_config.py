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

# - every graded kernel runs in a sandbox (tools/secure_grading.py): bubblewrap namespaces, its own
#   unprivileged user, no network, a scratch home as working directory, a read-only view of the
#   system, the environment and the paths below, and nothing of the course folder (solutions/,
#   the gradebook, other submissions). Its rlimits cap memory, CPU time, processes and file size.
#   Without bubblewrap, grading stops and says how to fix it; GRADING_UNSANDBOXED=1 grades
#   without the sandbox (the student's code then runs with the grader's rights).
# - the memory cap is RLIMIT_DATA: the memory the kernel writes to (heap and anonymous mappings),
#   not address space that is only reserved, which threads and CUDA reserve in bulk. Default: a
#   sixth of the machine's memory, at most 6 GiB (the course's solutions peak at 1.2 GiB);
#   override with GRADING_KERNEL_MEMORY_GB (0: no cap).
# - each graded cell has a time budget, a multiple of the solution's time recorded by
#   `make release` in grading/time_budgets.json; a cell without one gets c.Execute.timeout.
# - the test cells run in the grader's process, not in the kernel (tools/judge.py): the student's
#   functions are called in the kernel through a bridge that returns only data, so tampering with the
#   kernel cannot change a verdict (c.HardenedExecute.judge_tests = False runs them in the kernel).
# - the integrity check fails the tests that a submission passed with the course's reference
#   implementation, or after tampering with the testing machinery, and says so in the feedback.
import importlib.util  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

_COURSE = Path(__file__).resolve().parent
sys.path.insert(0, str(_COURSE / "tools"))
from nbgrader.converters.autograde import Autograde  # noqa: E402
from nbgrader.preprocessors import Execute, SaveAutoGrades  # noqa: E402
from secure_grading import HardenedExecute, IntegrityCheck  # noqa: E402


def _kernel_memory_bytes() -> int:
    setting = os.environ.get("GRADING_KERNEL_MEMORY_GB")
    if setting is not None:
        return int(float(setting) * 2**30)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return min(total // 6, 6 * 2**30)


_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
_PACKAGE = importlib.util.find_spec("course_lib")
c.SandboxedKernelManager.sandbox = os.environ.get("GRADING_UNSANDBOXED", "") in ("", "0")
c.SandboxedKernelManager.memory_bytes = _kernel_memory_bytes()
c.SandboxedKernelManager.read_only_paths = [
    *(_PACKAGE.submodule_search_locations if _PACKAGE else []),  # the course's package (editable install)
    "/usr/share/datasets", *filter(None, [os.environ.get("COURSE_DATA")])]
# the course's data cache, read-only inside a writable cache folder (matplotlib and fontconfig write theirs)
c.SandboxedKernelManager.read_only_mounts = {"/tmp/cache/course_lib": str(_CACHE / "course_lib")}
c.SandboxedKernelManager.environment = {"XDG_CACHE_HOME": "/tmp/cache"}
c.HardenedExecute.source_directory = c.IntegrityCheck.source_directory = "solutions"
c.HardenedExecute.budgets_file = str(_COURSE / "grading" / "time_budgets.json")

_steps = [HardenedExecute if p is Execute else p for p in Autograde.class_traits()["autograde_preprocessors"].default()]
_steps.insert(_steps.index(SaveAutoGrades), IntegrityCheck)
c.Autograde.autograde_preprocessors = _steps
