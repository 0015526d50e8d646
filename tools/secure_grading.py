"""Grading that a class cannot fool or break: nbgrader's executor, hardened.

This module does not import the course's package; nbgrader_config.py installs it in nbgrader's
autograde pipeline (``c.Autograde.autograde_preprocessors``). It adds four things to plain
``nbgrader autograde``:

1. **A sandbox for every graded kernel** (:class:`SandboxedKernelManager`). The kernel runs
   under bubblewrap (Linux namespaces) as an unprivileged user id of its own, with no network,
   its own process tree, a scratch home directory as working directory, and a read-only view
   of the system, the Python environment and the paths the course names (its package, its
   data); it cannot see the course folder (``source/``, ``solutions/``, ``gradebook.db``, other
   submissions, the autograded copy of its own notebook with the hidden tests) or the
   instructor's home. Resource limits (rlimits) cap its memory, CPU time, processes, open files
   and the size of the files it writes. nbgrader talks to it over Unix sockets (ZMQ ``ipc``) in
   a folder bound into the sandbox, since the sandbox has no network, not even loopback.
2. **Time budgets and dead kernels** (:class:`HardenedExecute`). Each graded cell gets a time
   budget recorded at release time (``tools/time_budgets.py``: a multiple of the solution's own
   time, with a floor); a cell that runs out is interrupted and its feedback says so. A kernel
   that dies (out of memory, a crash, ``os._exit``, the CPU limit) no longer drops the
   submission: the cells that ran keep their results, every later cell fails with a message
   saying what happened, and the submission is graded. Output beyond a cap is dropped.
3. **Integrity** (:class:`IntegrityCheck`), computed by this trusted code outside the kernel,
   from the submitted source (it is parsed, never run): a graded function that reaches a
   forbidden reference implementation gets 0 for the tests that use it, and a submission that
   tampers with the testing machinery (patches a module the tests use, rebinds a name they
   read, reaches interpreter internals, defines comparison or array protocols) gets 0 for every
   test after the tampering cell. The feedback says why, and the instructor's summary flags it.
4. **The verdict outside the kernel** (``HardenedExecute.judge_tests``, tools/judge.py). Test
   cells are not sent to the kernel: they run in this process, and reach the student's functions
   and results in the kernel through a bridge that returns only data. Whatever a submission does
   to numpy, the builtins or IPython in its kernel, the asserts are evaluated here.
"""
from __future__ import annotations

import ast
import asyncio
import hashlib
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient.exceptions import DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Bool, Dict, Float, Integer, List, Unicode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import judge as judging  # noqa: E402  (tools/judge.py, beside this file)

INTEGRITY_ENAME = "IntegrityError"
TIMEOUT_ENAME = "CellTimeoutError"
DEAD_KERNEL_ENAME = "KernelDiedError"


def notebook_digest(path: Path) -> str:
    """A fingerprint of a source notebook's code cells: its time budgets are valid while it holds."""
    cells = json.loads(Path(path).read_text())["cells"]
    code = "\n\x00".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return hashlib.sha256(code.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------- the sandbox

class SandboxError(RuntimeError):
    """The sandbox cannot be created on this machine (the message says how to fix it)."""


# Runs inside the sandbox as root with only CAP_SETUID/CAP_SETGID: set the limits, become the
# kernel's own unprivileged user (RLIMIT_NPROC does not apply to root), then exec the kernel, so
# that the process nbgrader signals stays the kernel.
_LIMIT_DROP_EXEC = """
import os, resource, sys
limits, uid = eval(sys.argv[1]), int(sys.argv[2])
for name, value in limits.items():
    if value is not None:
        resource.setrlimit(getattr(resource, name), (value, value))
os.setgroups([]); os.setgid(uid); os.setuid(uid)
os.execvp(sys.argv[3], sys.argv[3:])
"""

# The variables a graded kernel inherits; everything else (tokens, database passwords) stays out.
_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "TZ", "PYTHONHASHSEED", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
             "OPENBLAS_NUM_THREADS", "JPY_PARENT_PID", "PYDEVD_DISABLE_FILE_VALIDATION")


def bwrap_available() -> str | None:
    """None when bubblewrap can create a sandbox here, else why not."""
    exe = shutil.which("bwrap")
    if exe is None:
        return "bubblewrap (`bwrap`) is not installed: run `make grading-setup` (or `apt-get install bubblewrap`)"
    import subprocess
    probe = subprocess.run([exe, "--unshare-net", "--unshare-pid", "--die-with-parent", "--ro-bind", "/", "/",
                            "--proc", "/proc", "--dev", "/dev", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return (f"bubblewrap cannot create namespaces here ({probe.stderr.strip()}); run the grader as root or "
                "enable user namespaces (sysctl kernel.unprivileged_userns_clone=1)")
    return None


class SandboxedKernelManager(AsyncKernelManager):
    """Starts the kernel inside a bubblewrap sandbox, talking to it over Unix sockets."""

    sandbox = Bool(True, help="Run each graded kernel in the sandbox (False: unsandboxed, the instructor's "
                              "rights).").tag(config=True)
    read_only_paths = List(Unicode(), help="Paths the kernel may read besides the system and Python's "
                                           "environment (the course's package, its data).").tag(config=True)
    read_only_mounts = Dict(help="{path in the sandbox: path outside} to show read-only elsewhere (under "
                                 "/tmp, say).").tag(config=True)
    environment = Dict(help="Extra environment variables for the kernel.").tag(config=True)
    memory_bytes = Integer(6 * 2**30, help="RLIMIT_DATA of the kernel (0: none).").tag(config=True)
    cpu_seconds = Integer(900, help="RLIMIT_CPU: total CPU time of the kernel.").tag(config=True)
    processes = Integer(256, help="RLIMIT_NPROC: processes and threads of the kernel's user.").tag(config=True)
    file_bytes = Integer(100 * 2**20, help="RLIMIT_FSIZE: largest file the kernel may write.").tag(config=True)
    open_files = Integer(1024, help="RLIMIT_NOFILE.").tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._private_dir = Path(tempfile.mkdtemp(prefix="grading-kernel-"))
        # a user id of its own per kernel, so that one kernel's processes never count against another's
        self.sandbox_uid = 200000 + secrets.randbelow(1_000_000)
        self.sandbox_home = self._private_dir / "home"
        self.sandbox_home.mkdir()
        if self.sandbox:
            self._comm_dir = self._private_dir / "comm"
            self._comm_dir.mkdir()
            self.transport = "ipc"
            self.ip = str(self._comm_dir / "kernel")
            self.connection_file = str(self._comm_dir / "connection.json")

    def limits(self) -> dict:
        return {"RLIMIT_DATA": self.memory_bytes or None, "RLIMIT_CPU": self.cpu_seconds or None,
                "RLIMIT_NPROC": self.processes or None, "RLIMIT_FSIZE": self.file_bytes or None,
                "RLIMIT_NOFILE": self.open_files or None, "RLIMIT_CORE": 0}

    def sandbox_command(self, kernel_cmd: list[str], env: dict) -> list[str]:
        home = "/home/student"
        cmd = ["bwrap", "--die-with-parent", "--unshare-ipc", "--unshare-pid", "--unshare-net",
               "--unshare-uts", "--unshare-cgroup-try", "--hostname", "grader",
               "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
               "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc",
               "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm",
               "--perms", "1777", "--tmpfs", "/tmp", "--tmpfs", "/run"]
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(top):
                cmd += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                cmd += ["--ro-bind", top, top]
        made = {"/", "/usr", "/etc", "/proc", "/dev", "/tmp", "/run"}
        binds = [("--ro-bind", os.path.abspath(p)) for p in
                 [sys.prefix, sys.base_prefix, os.path.realpath(sys.base_prefix), *self.read_only_paths]]
        for kind, path in [*binds, ("--bind", str(self._comm_dir))]:
            if not os.path.exists(path) or path in made or path.startswith("/usr/"):
                continue
            # readable parents: bubblewrap would otherwise create them without access for the kernel's user
            for parent in [p for p in Path(path).parents if str(p) not in made][::-1]:
                cmd += ["--perms", "0755", "--dir", str(parent)]
                made.add(str(parent))
            cmd += [kind, path, path]
            made.add(path)
        cmd += ["--bind", str(self.sandbox_home), home, "--chdir", home, "--clearenv"]
        for inside, outside in self.read_only_mounts.items():
            if os.path.exists(outside):
                for parent in [p for p in Path(inside).parents if str(p) not in made][::-1]:
                    cmd += ["--perms", "1777", "--dir", str(parent)]  # writable, as /tmp is
                    made.add(str(parent))
                cmd += ["--ro-bind", outside, inside]
        kept = {k: v for k, v in env.items() if k in _ENV_KEEP or k.startswith(("COURSE_", "JPY_"))}
        kept.update(HOME=home, MPLCONFIGDIR="/tmp/matplotlib", IPYTHONDIR="/tmp/ipython",
                    PYTHONDONTWRITEBYTECODE="1", **self.environment)
        for key, value in kept.items():
            cmd += ["--setenv", key, value]
        return [*cmd, "--", sys.executable, "-c", _LIMIT_DROP_EXEC, repr(self.limits()),
                str(self.sandbox_uid), *kernel_cmd]

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        if not self.sandbox:
            limits = {"RLIMIT_DATA": self.memory_bytes or None}
            launcher = ("import os, resource, sys; n = int(sys.argv[1]); "
                        "n and resource.setrlimit(resource.RLIMIT_DATA, (n, n)); os.execvp(sys.argv[2], sys.argv[2:])")
            return await super()._async_launch_kernel(
                [sys.executable, "-c", launcher, str(limits["RLIMIT_DATA"] or 0), *kernel_cmd], **kw)
        problem = bwrap_available()
        if problem:
            raise SandboxError(f"cannot sandbox the graded kernel: {problem}. To grade without a sandbox "
                               "(the student's code then runs with your rights), pass --unsandboxed to "
                               "tools/grade_class.py or set GRADING_UNSANDBOXED=1.")
        for path in (self.sandbox_home, self._comm_dir, Path(self.connection_file)):
            os.chown(path, self.sandbox_uid, self.sandbox_uid)
        kw["cwd"] = str(self.sandbox_home)  # bwrap itself starts here; the kernel in /home/student
        env = kw.pop("env", None) or dict(os.environ)
        kw["env"] = {"PATH": env.get("PATH", os.defpath)}
        return await super()._async_launch_kernel(self.sandbox_command(kernel_cmd, env), **kw)

    async def shutdown_kernel(self, now=False, restart=False):
        try:
            await super().shutdown_kernel(now=now, restart=restart)
        finally:
            if not restart:
                shutil.rmtree(self._private_dir, ignore_errors=True)

    async def interrupt_kernel(self):
        """Interrupt over the control channel: a SIGINT to the process group would stop bubblewrap."""
        if not self.sandbox:
            return await super().interrupt_kernel()
        self._connect_control_socket()
        self.session.send(self._control_socket, self.session.msg("interrupt_request", content={}))

    def kill_strays(self) -> int:
        """Kill the processes the kernel started (a fork bomb's, say), so none outlives its cell.

        They are the sandbox user's processes whose parent is the sandbox user's too: the kernel's
        own parent is bubblewrap (root). Returns how many were killed.
        """
        if not self.sandbox:
            return 0
        owners, parents = {}, {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    owners[int(entry.name)] = entry.stat().st_uid
                    with open(f"{entry.path}/stat", "rb") as f:
                        parents[int(entry.name)] = int(f.read().rsplit(b")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    pass
        strays = [pid for pid, uid in owners.items()
                  if uid == self.sandbox_uid and owners.get(parents.get(pid)) == self.sandbox_uid]
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        return len(strays)

    def exit_reason(self) -> str:
        """Why the kernel process ended, from its exit status, in words."""
        process = getattr(self.provisioner, "process", None)
        code = process.poll() if process is not None else None
        if code is None:
            return "the kernel stopped responding"
        if code > 128 and code - 128 in {s.value for s in signal.Signals}:
            code = 128 - code  # bubblewrap passes on a kernel killed by signal N as exit status 128 + N
        if code < 0:
            sig = signal.Signals(-code).name
            why = {"SIGKILL": "killed (out of memory, or a limit)", "SIGSEGV": "crashed (segmentation fault)",
                   "SIGXCPU": "ran out of CPU time", "SIGXFSZ": "wrote a file over the size limit",
                   "SIGABRT": "aborted"}.get(sig, "was killed")
            return f"the kernel {why} ({sig})"
        return f"the kernel exited with status {code} (os._exit, or a crash)"


# ------------------------------------------------------------------- executing under budgets

def _error(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue,
                        traceback=[f"\x1b[0;31m{ename}\x1b[0m: {evalue}"])


class HardenedExecute(Execute):
    """nbgrader's Execute with per-cell time budgets, dead-kernel grading and an output cap."""

    budgets_file = Unicode("", help="JSON of per-cell time budgets recorded at release "
                                    "(tools/time_budgets.py); '' for none.").tag(config=True)
    budget_factor = Float(10.0, help="A cell's budget: this many times the solution's time...").tag(config=True)
    budget_floor = Float(60.0, help="...but at least this many seconds.").tag(config=True)
    max_stray_processes = Integer(16, help="More processes left running by a cell stop the kernel.").tag(config=True)
    output_bytes = Integer(1_000_000, help="Output kept per cell (an error is always kept).").tag(config=True)
    judge_tests = Bool(True, help="Run the test cells in the grader's process (tools/judge.py), calling the "
                                  "student's functions in the kernel; False runs them in the kernel.").tag(config=True)

    def __init__(self, *args, **kwargs):
        kwargs["kernel_manager_class"] = SandboxedKernelManager
        super().__init__(*args, **kwargs)

    source_directory = Unicode("source", help="The course's source folder (instructor versions).").tag(config=True)

    def _load_budgets(self, resources) -> dict:
        """{grade id: seconds} for the notebook being graded, from the table recorded at release."""
        info = resources.get("nbgrader", {})
        if not self.budgets_file or not os.path.exists(self.budgets_file):
            return {}
        table = json.loads(Path(self.budgets_file).read_text())
        entry = table.get(info.get("assignment", ""), {}).get(info.get("notebook", ""))
        source = find_source_notebook(resources, self.source_directory)
        if not entry or source is None:
            self.log.warning("no time budgets for %s: every cell gets the default timeout", info.get("notebook"))
            return {}
        if notebook_digest(source) != entry["digest"]:
            self.log.warning("the time budgets of %s are stale (its source changed since `make release`): "
                             "every cell gets the default timeout", info.get("notebook"))
            return {}
        if entry["quick"] and not os.environ.get("COURSE_QUICK"):
            self.log.warning("the time budgets of %s were recorded in quick mode (COURSE_QUICK), too short "
                             "for full size: every cell gets the default timeout", info.get("notebook"))
            return {}
        return {gid: max(self.budget_floor, self.budget_factor * seconds) for gid, seconds in entry["seconds"].items()}

    def budget_of(self, cell) -> float | None:
        if "judge_timeout" in cell.metadata:  # a call from a judged test: what is left of the test's budget
            seconds = cell.metadata["judge_timeout"]
            return None if seconds is None else max(1, int(seconds + 0.999))
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in self._budgets:
            return int(round(self._budgets[gid]))
        if self._budgets:  # a cell the student added, or an unlabelled one: the largest budget
            return int(round(max(self._budgets.values())))
        return self.timeout

    def preprocess(self, nb, resources=None, km=None):
        self._budgets = self._load_budgets(resources or {})
        self.timeout_func = self.budget_of
        self._dead_reason = None
        self._bytes_out = {}
        self._judge, self._judging = None, False
        self._trusted_imports = trusted_imports(find_source_notebook(resources or {}, self.source_directory))
        return super().preprocess(nb, resources, km=km)

    async def _async_handle_timeout(self, timeout, cell=None):
        self.error_on_timeout = {
            "ename": TIMEOUT_ENAME, "evalue": f"this cell ran out of its time budget of {timeout} s and was "
                                              "stopped (an endless loop, or far slower than the solution)",
            "traceback": [f"\x1b[0;31m{TIMEOUT_ENAME}\x1b[0m: this cell ran out of its time budget of {timeout} s "
                          "and was stopped (an endless loop, or far slower than the solution)"]}
        return await super()._async_handle_timeout(timeout, cell)

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type != "code" or not cell.source.strip():
            return cell
        if self._dead_reason is not None:
            cell.outputs = [_error(DEAD_KERNEL_ENAME, f"not run: {self._dead_reason} in an earlier cell")]
            return cell
        meta = cell.metadata.get("nbgrader", {})
        if self.judge_tests and meta.get("grade") and not meta.get("solution"):
            return await self._judge_cell(cell, cell_index)
        try:
            await super().async_execute_cell(cell, cell_index, execution_count, store_history)
            self._stop_strays(cell)
            return cell
        except DeadKernelError:
            self._dead_reason = self.km.exit_reason() if hasattr(self.km, "exit_reason") else "the kernel died"
            self.log.warning("kernel died in cell %d: %s", cell_index, self._dead_reason)
            cell.outputs = list(cell.get("outputs", [])) + [
                _error(DEAD_KERNEL_ENAME, f"{self._dead_reason} while running this cell; the cells after it "
                                          "were not run")]
            return cell

    execute_cell = run_sync(async_execute_cell)  # nbclient binds the synchronous name to its own method

    def _stop_strays(self, cell) -> None:
        strays = self.km.kill_strays() if hasattr(self.km, "kill_strays") else 0
        if strays > self.max_stray_processes:
            # killed processes stay (as zombies, counted by the process limit) until the kernel
            # ends: a fork bomb's kernel cannot run much else, so it ends here
            self._dead_reason = f"the grader stopped the kernel: this cell left {strays} processes running"
            cell.outputs.append(_error(DEAD_KERNEL_ENAME, f"{self._dead_reason} (a fork bomb?); the cells "
                                                          "after it were not run"))
        elif strays:
            cell.outputs.append(NotebookNode(output_type="stream", name="stdout", text=(
                f"[the grader stopped {strays} processes this cell left running]\n")))

    # ------------------------------------------------------------- the verdict outside the kernel
    async def _in_kernel(self, code: str, seconds, cell_index: int):
        """Run one of the judge's calls in the kernel: (its stdout, its other outputs)."""
        call = NotebookNode(cell_type="code", id="judge", source=code, metadata=NotebookNode(judge_timeout=seconds),
                            outputs=[], execution_count=None)
        self._judging = True
        try:
            await Execute.async_execute_cell(self, call, cell_index, store_history=False)
        except DeadKernelError:
            self._dead_reason = self.km.exit_reason() if hasattr(self.km, "exit_reason") else "the kernel died"
            raise judging.KernelDied(self._dead_reason) from None
        finally:
            self._judging = False
        self._stop_strays(call)
        if self._dead_reason is not None:
            raise judging.KernelDied(self._dead_reason)
        if any(o.output_type == "error" and o.ename == TIMEOUT_ENAME for o in call.outputs):
            raise judging.OutOfTime()
        text = "".join(o.text for o in call.outputs if o.output_type == "stream" and o.name == "stdout")
        return text, [o for o in call.outputs if not (o.output_type == "stream" and o.name == "stdout")]

    async def _judge_cell(self, cell, cell_index: int):
        loop = asyncio.get_running_loop()
        budget = self.budget_of(cell)
        deadline = None if budget is None else time.monotonic() + budget
        if self._judge is None:
            self._judge = judging.Judge(lambda code, seconds: asyncio.run_coroutine_threadsafe(
                self._in_kernel(code, seconds, self._judge_index), loop).result(), self._trusted_imports,
                [c.source for c in self.nb.cells if c.cell_type == "code" and not c.metadata.get("nbgrader", {}).get("locked")])
            self._judge_index = cell_index
            try:
                await self._in_kernel(judging.INSTALL.format(source=judging._BRIDGE_PATH.read_text()), budget, cell_index)
            except (judging.KernelDied, judging.OutOfTime):
                pass  # the first call reports it
        self._judge_index = cell_index
        printed, error = await loop.run_in_executor(
            None, self._judge.run_cell, cell.source, cell.metadata["nbgrader"].get("grade_id", "cell"), deadline)
        outputs = []
        for item in printed:
            if isinstance(item, str):
                if item:
                    outputs.append(NotebookNode(output_type="stream", name="stdout", text=item))
            else:
                outputs.append(item)
        if isinstance(error, judging.OutOfTime):
            outputs.append(_error(TIMEOUT_ENAME, f"this cell ran out of its time budget of {budget} s and was "
                                                 "stopped (an endless loop, or far slower than the solution)"))
        elif isinstance(error, judging.KernelDied):
            outputs.append(_error(DEAD_KERNEL_ENAME, f"{self._dead_reason} while running this cell; the cells "
                                                     "after it were not run"))
        elif error is not None:
            ename, evalue, lines = self._judge.describe_error(error)
            outputs.append(NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=lines))
        cell.outputs = outputs
        self.nb.cells[cell_index] = cell  # nbclient stored the last call in this cell's place
        return cell

    def output(self, outs, msg, display_id, cell_index):
        if self._judging:  # a reply to the judge: its own size limit (tools/judge.py)
            return super().output(outs, msg, display_id, cell_index)
        if msg["msg_type"] != "error":
            size = len(json.dumps(msg.get("content", {})))
            used = self._bytes_out.get(cell_index, 0)
            self._bytes_out[cell_index] = used + size
            if used + size > self.output_bytes:
                if used <= self.output_bytes:
                    outs.append(NotebookNode(output_type="stream", name="stdout", text=(
                        f"\n[output over {self.output_bytes} bytes: the rest was dropped by the grader]\n")))
                return None
        return super().output(outs, msg, display_id, cell_index)


# ------------------------------------------------------------------------------ integrity


# Modules and attributes that reach the interpreter's internals or patch other code: with them
# any check can be defeated, so a submission that uses them is flagged whatever it does with them.
_FORBIDDEN_CALLS = {"exec", "eval", "compile", "__import__", "setattr", "delattr", "vars", "globals",
                    "locals", "breakpoint"}
_FORBIDDEN_MODULES = {"builtins", "importlib", "ctypes", "gc", "inspect", "unittest", "mock", "pytest",
                      "IPython", "ipykernel", "atexit", "types", "marshal", "pickle", "dill", "code", "codeop",
                      "runpy", "cffi", "_thread", "sysconfig", "pkgutil", "zipimport"}
_FORBIDDEN_ATTRIBUTES = {"modules", "_getframe", "settrace", "setprofile", "excepthook", "displayhook",
                         "meta_path", "path_hooks", "path_importer_cache", "addaudithook"}
_ALLOWED_DUNDERS = {"__init__", "__repr__", "__str__", "__len__", "__getitem__", "__setitem__", "__iter__",
                    "__next__", "__call__", "__post_init__", "__enter__", "__exit__", "__name__", "__doc__",
                    "__version__", "__main__", "__contains__"}
_ALLOWED_MAGICS = {"matplotlib", "time", "timeit"}
_BUILTIN_NAMES = set(dir(__import__("builtins")))


def _python_source(source: str) -> str:
    """A cell's source as Python: IPython magics become get_ipython() calls (judged below)."""
    from IPython.core.inputtransformer2 import TransformerManager
    return TransformerManager().transform_cell(source)


def _parse(source: str):
    try:
        return ast.parse(_python_source(source))
    except (SyntaxError, ValueError):
        return None


def _root_name(node):
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call, ast.Starred)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _dotted(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *parts[::-1]]) if isinstance(node, ast.Name) else None


def _import_bindings(node) -> dict[str, str]:
    """{name bound: dotted module or member} for one import statement."""
    if isinstance(node, ast.Import):
        return {(a.asname or a.name.split(".")[0]): (a.name if a.asname else a.name.split(".")[0]) for a in node.names}
    if isinstance(node, ast.ImportFrom) and node.module and not node.level:
        return {(a.asname or a.name): f"{node.module}.{a.name}" for a in node.names}
    return {}


def _all_import_bindings(tree) -> dict[str, str]:
    bound = {}
    for node in ast.walk(tree):
        bound.update(_import_bindings(node))
    return bound


def _top_level_bindings(tree) -> list[tuple[str, ast.AST]]:
    """(name, binding node) for every name a cell binds outside functions and classes."""
    out = []

    def visit(node):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.append((node.name, node))
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.extend((name, node) for name in _import_bindings(node))
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            out.append((node.id, node))
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
                visit(child)

    for stmt in getattr(tree, "body", [tree]):
        visit(stmt)
    return out


def _loaded_names(tree) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _free_names(stmt) -> set[str]:
    """The global names a statement reads: for a function, not its arguments or locals."""
    loaded = _loaded_names(stmt)
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        args = stmt.args
        local = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg] if a}
        local |= {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        local -= {n for node in ast.walk(stmt) if isinstance(node, ast.Global) for n in node.names}
        return loaded - local
    return loaded


def trusted_imports(source_path: Path | None) -> list[str]:
    """The import statements of the instructor's cells (not solutions, not tests), as source."""
    if source_path is None:
        return []
    import nbformat
    statements = []
    for cell in nbformat.read(source_path, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        tree = _parse(cell.source) if cell.cell_type == "code" and not meta.get("solution") and not meta.get("grade") else None
        for node in (tree.body if tree else []):
            for stmt in (node.body if isinstance(node, ast.Try) else [node]):
                if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                    statements.append(ast.unparse(stmt))
    return statements


def find_source_notebook(resources, source_directory: str) -> Path | None:
    """The instructor's version of the notebook being graded, found above the autograded copy."""
    info = resources.get("nbgrader", {})
    here = Path(resources.get("metadata", {}).get("path") or ".").resolve()
    for folder in [here, *here.parents]:
        path = folder / source_directory / info.get("assignment", "") / f"{info.get('notebook', '')}.ipynb"
        if path.is_file():
            return path
    return None


class IntegrityCheck(NbGraderPreprocessor):
    """Fails the tests that a submission passed dishonestly, and says why in the feedback.

    Trusted code outside the kernel: it parses the submitted cells (never runs them) once the
    notebook has run, and overrides the outcome of the test cells before nbgrader records grades.
    """

    source_directory = Unicode("source", help="The course's source folder (instructor versions).").tag(config=True)
    guarded_packages = List(Unicode(), ["course_lib", "lightly.loss"],
                            help="Packages whose reference implementations graded functions may not use.").tag(config=True)
    allowed_modules = List(Unicode(), ["course_lib.data", "course_lib.utils", "course_lib.training",
                                       "course_lib.plotting"],
                           help="Parts of the guarded package that submissions may use.").tag(config=True)

    _intended: set = set()

    def _package_of(self, dotted: str) -> str | None:
        """The guarded package that `dotted` names or lies in, or None."""
        return next((p for p in self.guarded_packages if dotted == p or dotted.startswith(p + ".")), None)

    def _allowed(self, dotted: str) -> bool:
        if self._package_of(dotted) is None:
            return True
        return any(dotted == a or dotted.startswith(a + ".") for a in [*self.allowed_modules, *self._intended])

    def _guarded_uses(self, tree, modules: dict[str, str]) -> set[str]:
        """Every part of the guarded package a tree imports or uses, as dotted names."""
        inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        found = set()
        for node in ast.walk(tree):
            targets = list(_import_bindings(node).values())
            if isinstance(node, (ast.Attribute, ast.Name)) and id(node) not in inner:
                head, _, rest = (_dotted(node) or "").partition(".")
                if head in modules:
                    targets.append(modules[head] + (f".{rest}" if rest else ""))
            found |= {t for t in targets if self._package_of(t)}
        return found

    def reference_use(self, tree, modules: dict[str, str]) -> str | None:
        """The first use of a part of the guarded package that the exercise does not use, or None."""
        for dotted in sorted(self._guarded_uses(tree, modules)):
            if dotted not in self.guarded_packages and not self._allowed(dotted):
                return f"uses `{dotted}`"
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and self._package_of(node.module or "") and \
                    any(a.name == "*" for a in node.names):
                return f"imports everything from `{node.module}`"
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    self._package_of(node.value) and node.value not in self.guarded_packages and \
                    not self._allowed(node.value):
                return f"names `{node.value}`"
        return None

    def tampering(self, tree, protected, expected, trusted_imports, module_names) -> str | None:
        """The first way a cell reaches into the testing machinery, in words, or None."""
        magic_calls = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    isinstance(node.func.value, ast.Call) and _dotted(node.func.value.func) == "get_ipython":
                magic = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
                if node.func.attr not in ("run_line_magic", "run_cell_magic") or magic not in _ALLOWED_MAGICS:
                    return f"runs IPython's `{node.func.attr}` (a `%{magic or '!'}` magic or shell command)"
                magic_calls.add(id(node.func.value))
                if node.func.attr == "run_cell_magic" and len(node.args) == 3 and isinstance(node.args[2], ast.Constant):
                    body = _parse(node.args[2].value)
                    why = body and self.tampering(body, protected, expected, trusted_imports, module_names)
                    if why:
                        return why
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = _dotted(node.func)
                if name == "get_ipython" and id(node) not in magic_calls:
                    return "calls `get_ipython()` (IPython's error reporting and hooks)"
                if name in _FORBIDDEN_CALLS:
                    return f"calls `{name}`"
                if name == "getattr" and (len(node.args) < 2 or not isinstance(node.args[1], ast.Constant)
                                          or _root_name(node.args[0]) in module_names):
                    return "calls `getattr` on a module or with a computed name"
            elif isinstance(node, ast.Name) and node.id.startswith("__") and node.id not in _ALLOWED_DUNDERS:
                return f"uses `{node.id}`"
            elif isinstance(node, ast.Attribute):
                if node.attr.startswith("__") and node.attr not in _ALLOWED_DUNDERS:
                    return f"uses the attribute `{node.attr}`"
                if node.attr.startswith(("f_", "tb_", "gi_", "cr_", "co_")) or node.attr in _FORBIDDEN_ATTRIBUTES:
                    return f"reaches interpreter internals (`{node.attr}`)"
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _import_bindings(node).values():
                    if target.split(".")[0] in _FORBIDDEN_MODULES or target.split(".")[-1] in _FORBIDDEN_MODULES:
                        return f"imports `{target}`"
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("__") and \
                    node.name not in _ALLOWED_DUNDERS:
                return f"defines `{node.name}`, which changes how the tests compare results"
            targets = []
            if isinstance(node, (ast.Assign, ast.Delete)):
                targets = node.targets
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor, ast.comprehension,
                                   ast.NamedExpr)):
                targets = [node.target]
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                targets = [node.optional_vars]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name) and sub.id.startswith("__"):
                        return f"sets `{sub.id}`"
                    if isinstance(sub, (ast.Attribute, ast.Subscript)):
                        root = _root_name(sub)
                        if root in module_names or root in _BUILTIN_NAMES or (root in protected and root not in expected):
                            return f"assigns to `{ast.unparse(sub)}`, which the tests rely on"
        for name, binding in _top_level_bindings(tree):
            if name not in protected or name in expected:
                continue
            if isinstance(binding, (ast.Import, ast.ImportFrom)) and \
                    trusted_imports.get(name) == _import_bindings(binding).get(name):
                continue
            return f"rebinds `{name}`, which the tests use"
        return None

    def preprocess(self, nb, resources):
        source_path = find_source_notebook(resources, self.source_directory)
        if source_path is None:
            raise RuntimeError(f"integrity check: the source notebook is not under {self.source_directory}/")
        import nbformat
        source = nbformat.read(source_path, as_version=4)

        # what the instructor wrote: the imports, and the names the solution cells define
        trusted_imports, expected = {}, set()
        for cell in source.cells:
            tree = _parse(cell.source) if cell.cell_type == "code" else None
            if tree is None:
                continue
            trusted_imports.update(_all_import_bindings(tree))
            if not cell.metadata.get("nbgrader", {}).get("grade"):
                expected |= {n for n, b in _top_level_bindings(tree) if not isinstance(b, (ast.Import, ast.ImportFrom))}

        # the parts of the guarded package the exercise itself uses outside its tests are intended
        self._intended = set()
        source_modules = {}
        for cell in source.cells:
            tree = _parse(cell.source) if cell.cell_type == "code" else None
            if tree is not None and not cell.metadata.get("nbgrader", {}).get("grade"):
                source_modules.update(_all_import_bindings(tree))
                self._intended |= self._guarded_uses(tree, source_modules) - set(self.guarded_packages)

        student, tests = [], []
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade") and not meta.get("solution"):
                tests.append((index, cell, _parse(cell.source)))
            elif not (meta.get("locked") and not meta.get("solution")):  # locked cells are the instructor's
                student.append((index, _parse(cell.source)))
        test_trees = [t for _, _, t in tests if t is not None]
        module_names, modules = set(), {}
        for tree in test_trees:
            module_names |= set(_all_import_bindings(tree))
        for _, tree in student:
            if tree is not None:
                modules.update(_all_import_bindings(tree))
        module_names |= set(modules)
        for _ in range(2):  # `n = np` makes `n` a module too
            for _, tree in student:
                for node in (ast.walk(tree) if tree else []):
                    if isinstance(node, ast.Assign) and _dotted(node.value) and \
                            _dotted(node.value).split(".")[0] in module_names:
                        module_names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        protected = set()
        for tree in test_trees:
            protected |= _loaded_names(tree) - {n for n, _ in _top_level_bindings(tree)}

        # 1. tampering: no test after the first tampering cell earns points
        tamper_at, tamper_why = None, None
        for index, tree in student:
            why = tree and self.tampering(tree, protected, expected, trusted_imports, module_names)
            if why:
                tamper_at, tamper_why = index, why
                break
        # 2. reference use: names bound by code that reaches a reference are tainted, and so is
        #    every function that uses a tainted name
        tainted, uses = {}, {}
        for _, tree in student:
            for stmt in (tree.body if tree else []):
                why = self.reference_use(stmt, modules)
                for name, binding in _top_level_bindings(ast.Module(body=[stmt], type_ignores=[])):
                    uses.setdefault(name, set()).update(_free_names(stmt))
                    if isinstance(binding, (ast.Import, ast.ImportFrom)):
                        target = _import_bindings(binding)[name]
                        if target not in self.guarded_packages and not self._allowed(target):
                            tainted[name] = f"imports `{target}`"
                    elif why:
                        tainted[name] = why
        changed = True
        while changed:
            changed = False
            for name, used in uses.items():
                hit = next((u for u in sorted(used) if u in tainted and u != name), None)
                if name not in tainted and hit:
                    tainted[name] = f"calls `{hit}`, which {tainted[hit]}"
                    changed = True

        flags = []
        for index, cell, tree in tests:
            reason = None
            if tamper_at is not None and index > tamper_at:
                reason = (f"integrity: a cell above {tamper_why}. Tampering with the tests or the interpreter "
                          "earns no points for the tests after it.")
            elif tree is not None:
                used = sorted(_loaded_names(tree) & set(tainted))
                if used:
                    reason = (f"integrity: `{used[0]}` {tainted[used[0]]}: a reference implementation (the course's "
                              "or a library's). A graded function must be your own work: this test earns no points.")
            if reason:
                cell.outputs = [*cell.get("outputs", []), _error(INTEGRITY_ENAME, reason)]
                flags.append(f"{cell.metadata['nbgrader'].get('grade_id')}: {reason}")
        if flags:
            self.log.warning("INTEGRITY %s/%s: %s", resources.get("nbgrader", {}).get("student"),
                             resources.get("nbgrader", {}).get("notebook"), " | ".join(flags))
        return nb, resources
