"""The verdict outside the student's kernel: test cells run in the grader's own process.

At grading time a test cell (visible or hidden) is not sent to the student's kernel. The grader
executes it here, in a namespace of its own that holds the instructor's imports, and every name
the test takes from the notebook (the student's functions, models and results) is fetched from
the kernel: plain data (numbers, arrays, tensors) by value, anything else as a :class:`Remote`
that forwards calls, attributes and iteration to the kernel through tools/judge_bridge.py. So the
asserts, `np.allclose`, the reference implementations and the random inputs all live in a
process that the submission never ran in: patching them in the kernel changes nothing here, and
the fresh inputs a hidden test draws never reach the kernel before the call that uses them.

Gradients cross too. A call whose inputs require grad, or whose output does (a model's
parameters), returns tensors tied into this process's autograd graph by :class:`_KernelCall`;
their backward asks the kernel for the vector-Jacobian product of the student's own graph. Test
code therefore reads as it would in a notebook (`loss.backward()`, `torch.autograd.grad`,
`model.weight.grad`) and runs unchanged in both places.

What comes back from the kernel is data, decoded strictly (JSON, arrays from raw bytes of a
known dtype and size); nothing the kernel sends is unpickled or executed here.
"""
from __future__ import annotations

import ast
import base64
import builtins
import contextlib
import importlib.util
import io
import json
import linecache
import sys
import time
import traceback
import types
from pathlib import Path

import numpy as np

_BRIDGE_PATH = Path(__file__).with_name("judge_bridge.py")
_spec = importlib.util.spec_from_file_location("__course_grader__", _BRIDGE_PATH)
bridge = importlib.util.module_from_spec(_spec)
sys.modules["__course_grader__"] = bridge  # pickles name the bridge's classes by this module
_spec.loader.exec_module(bridge)

MAX_REPLY_BYTES = 256 * 2**20
_DTYPES = {"torch.float16", "torch.float32", "torch.float64", "torch.bfloat16", "torch.complex64", "torch.complex128",
           "torch.uint8", "torch.int8", "torch.int16", "torch.int32", "torch.int64", "torch.bool"}

INSTALL = """import sys as _sys, types as _types
_module = _types.ModuleType("__course_grader__")
exec({source!r}, _module.__dict__)
_sys.modules["__course_grader__"] = _module
_module.bridge = _module.Bridge(get_ipython().user_ns)
del _sys, _types, _module
"""


class KernelDied(Exception):
    """The kernel died during a call from a test."""


class OutOfTime(Exception):
    """A test's calls into the kernel ran past the cell's time budget."""


class StudentError(Exception):
    """An exception raised by the student's code that has no built-in type of the same name."""


class GraderError(Exception):
    """The grader could not use what the kernel sent back."""


class Remote:
    """A student's object that stays in the kernel: calls, attributes and iteration are forwarded."""

    __slots__ = ("_judge", "_ident", "_type", "_name")

    def __init__(self, judge, ident, type_name, name=None):
        object.__setattr__(self, "_judge", judge)
        object.__setattr__(self, "_ident", ident)
        object.__setattr__(self, "_type", type_name)
        object.__setattr__(self, "_name", name)

    def __call__(self, *args, **kwargs):
        return self._judge.call(self, args, kwargs)

    def __getattr__(self, name):
        if name == "__wrapped__" and self._name in self._judge.submitted:
            return self._judge.submitted[self._name]  # so that inspect.getsource reads the submitted cell
        if name.startswith("__"):
            raise AttributeError(name)
        return self._judge.request("getattr", self._ident, name)

    def __setattr__(self, name, value):
        self._judge.request("setattr", self._ident, name, self._judge.outgoing(value, [], []))

    def __getitem__(self, key):
        return self._judge.request("getitem", self._ident, self._judge.outgoing(key, [], []))

    def __iter__(self):
        return iter(self._judge.request("list", self._ident))

    def __len__(self):
        return self._judge.request("len", self._ident)

    def __repr__(self):
        return f"<the submission's {self._type}>"


def _kernel_call():
    import torch

    class _KernelCall(torch.autograd.Function):
        """Ties tensors computed in the kernel into this process's graph: backward asks the kernel."""

        @staticmethod
        def forward(ctx, judge, call, n_inputs, *tensors):
            ctx.judge, ctx.call, ctx.n_inputs = judge, call, n_inputs
            outputs = tensors[n_inputs + 1:]
            return tuple(o.clone() for o in outputs)

        @staticmethod
        def backward(ctx, *grads):
            inputs = ctx.judge.backward(ctx.call, grads)
            return (None, None, None, *inputs, None, *(None for _ in grads))

    return _KernelCall


def _compiles_to(source: str, code: types.CodeType) -> bool:
    """Whether the lambda expression `source` compiles to `code` (same instructions, names, constants)."""
    try:
        outer = compile(source, "<lambda>", "eval")
    except SyntaxError:
        return False
    inner = next((c for c in outer.co_consts if isinstance(c, types.CodeType)), None)
    return inner is not None and (inner.co_code, inner.co_names, inner.co_varnames, inner.co_consts) == \
        (code.co_code, code.co_names, code.co_varnames, code.co_consts)


class Judge:
    """Runs test cells in this process against one student kernel (see the module's docstring)."""

    def __init__(self, roundtrip, trusted_imports: list[str], submitted_cells: list[str] = ()):
        self.roundtrip = roundtrip        # (code, seconds) -> (stdout text, [other outputs]); raises KernelDied, OutOfTime
        self.namespace = {"__name__": "__judge__", "__builtins__": builtins}
        self.sources = {}
        self.deadline = None
        self.printed = []
        self.call_modules = {}
        self.from_kernel = set()
        self.submitted = self._compile_definitions(submitted_cells)
        for statement in trusted_imports:
            try:
                exec(compile(statement, "<instructor's imports>", "exec"), self.namespace)
            except Exception:  # noqa: BLE001  (an import the grader lacks: the test then fails by name)
                pass

    @staticmethod
    def _compile_definitions(cells) -> dict:
        """The code objects of the functions and classes the student's cells define (compiled, never run)."""
        found = {}
        for index, source in enumerate(cells):
            filename = f"<your cell {index}>"
            try:
                tree = ast.parse(source, filename)
                module = compile(tree, filename, "exec")
            except (SyntaxError, ValueError):
                continue
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
            names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
            for const in module.co_consts:
                if isinstance(const, types.CodeType) and const.co_name in names:
                    found[const.co_name] = const
        return found

    # ------------------------------------------------------------------------- the kernel
    def request(self, op: str, *args):
        remaining = None if self.deadline is None else self.deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise OutOfTime()
        import pickle
        payload = base64.b64encode(pickle.dumps((op, args), protocol=4)).decode()
        text, others = self.roundtrip(f'__import__("__course_grader__").bridge.run("{payload}")', remaining)
        head, mark, tail = text.rpartition(bridge.MARK)
        if head:
            self.printed.append(head)
        self.printed.extend(others)
        if not mark:
            raise GraderError("the kernel sent no reply (was the grader's bridge replaced?)")
        encoded = tail.strip().split("\n")[0]
        if len(encoded) > MAX_REPLY_BYTES:
            raise GraderError("the kernel's reply is too large")
        try:
            reply = json.loads(base64.b64decode(encoded))
        except ValueError as error:
            raise GraderError(f"the kernel's reply could not be read: {error}") from None
        if not isinstance(reply, dict):
            raise GraderError("the kernel's reply is not a dictionary")
        if "error" in reply:
            error = reply["error"]
            name, message = str(error.get("type")), str(error.get("message"))
            kind = getattr(builtins, name, None)
            detail = f"{message}\n\nin your code:\n{error.get('traceback', '')}"
            exception = None
            if isinstance(kind, type) and issubclass(kind, Exception) and kind.__module__ == "builtins":
                with contextlib.suppress(Exception):  # an exception type with other arguments
                    exception = kind(detail)
            raise exception or StudentError(f"{name}: {detail}")
        if op in ("call", "describe", "backward"):  # structured replies, decoded by their caller
            return reply.get("ok")
        return self.decode(reply.get("ok"))

    def decode(self, x, tensors=None):
        if x is None or type(x) in (bool, int, float, str):
            return x
        if type(x) is not dict:
            raise GraderError(f"unexpected value of type {type(x).__name__}")
        kind = x.get("t")
        if kind in ("list", "tuple"):
            items = [self.decode(v, tensors) for v in x["v"]]
            return items if kind == "list" else tuple(items)
        if kind == "dict":
            return {self.decode(k): self.decode(v, tensors) for k, v in zip(x["k"], x["v"])}
        if kind in ("nd", "np"):
            dtype = np.dtype(x["dtype"])
            if dtype.kind not in "biufc":
                raise GraderError(f"arrays of dtype {dtype} cannot be judged")
            data = base64.b64decode(x["b"])
            if kind == "np":
                return np.frombuffer(data, dtype=dtype, count=1)[0]
            shape = tuple(int(s) for s in x["shape"])
            if len(data) != int(np.prod(shape)) * dtype.itemsize:
                raise GraderError("an array's bytes do not match its shape")
            return np.frombuffer(data, dtype=dtype).reshape(shape).copy()
        if kind == "tensor":
            import torch
            if x["dtype"] not in _DTYPES:
                raise GraderError(f"tensors of dtype {x['dtype']} cannot be judged")
            dtype = getattr(torch, x["dtype"].split(".")[1])
            wire = torch.float32 if dtype == torch.bfloat16 else dtype
            data = base64.b64decode(x["b"])
            shape = tuple(int(s) for s in x["shape"])
            size = int(np.prod(shape)) * torch.empty((), dtype=wire).element_size()
            if len(data) != size:
                raise GraderError("a tensor's bytes do not match its shape")
            t = torch.frombuffer(bytearray(data), dtype=wire).reshape(shape).to(dtype) if size else torch.empty(shape, dtype=dtype)
            if x.get("param"):
                t = torch.nn.Parameter(t, requires_grad=bool(x.get("rg")))
            if "grad" in x and x["grad"] is not None:
                grad = self.decode(x["grad"])
                if isinstance(grad, torch.Tensor) and grad.shape == t.shape:
                    t.grad = grad.to(t.dtype)
            if tensors is not None:
                tensors.append(t)
            return t
        if kind == "module":  # only a module this process has imported already: importing runs code
            if str(x["name"]) not in sys.modules:
                raise GraderError(f"the notebook's module {x['name']} is not one the grader uses")
            return sys.modules[str(x["name"])]
        if kind == "ref":
            return Remote(self, int(x["id"]), str(x.get("type")))
        raise GraderError(f"unexpected value {kind!r}")

    # ------------------------------------------------------------------------------ calls
    def outgoing(self, x, diff, modules):
        """A value to send: tensors that require grad, models, generators and functions marked."""
        torch = sys.modules.get("torch")
        if isinstance(x, (list, tuple)) and type(x) in (list, tuple):
            return type(x)(self.outgoing(v, diff, modules) for v in x)
        if type(x) is dict:
            return {k: self.outgoing(v, diff, modules) for k, v in x.items()}
        if isinstance(x, Remote):
            return bridge.Ref(x._ident)
        if torch is not None:
            if isinstance(x, torch.Tensor) and x.requires_grad and not isinstance(x, torch.nn.Parameter):
                diff.append(x)
                return bridge.DiffInput(x.detach())
            if isinstance(x, torch.nn.Module):
                modules.append(x)
                return bridge.ByValueModule(x)
            if isinstance(x, torch.Generator):
                return bridge.GeneratorState(bytes(x.get_state().tolist()), str(x.device))
        if isinstance(x, types.FunctionType) and x.__code__.co_filename in self.sources:
            return self._function(x, diff, modules)
        return x

    def _function(self, fn, diff, modules_sent):
        """A function the test defined, as source the kernel rebuilds (with the names it uses)."""
        code = fn.__code__
        tree = ast.parse(self.sources[code.co_filename])
        lambdas = [n for n in ast.walk(tree) if isinstance(n, ast.Lambda) and n.lineno == code.co_firstlineno]
        if fn.__name__ == "<lambda>":  # of the lambdas on its line, the one that compiles to its code
            node = next((n for n in lambdas if _compiles_to(ast.get_source_segment(self.sources[code.co_filename], n),
                                                            code)), None)
        else:
            node = next((n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == fn.__name__), None)
        if node is None:
            raise GraderError(f"cannot send the test's function {fn.__name__} to the kernel")
        source = ast.get_source_segment(self.sources[code.co_filename], node)
        env, modules = {}, {}
        free = dict(zip(code.co_freevars, (c.cell_contents for c in fn.__closure__ or ())))
        for name in {*code.co_names, *free}:
            value = free.get(name, fn.__globals__.get(name))
            if isinstance(value, types.ModuleType):
                modules[name] = value.__name__
            elif name in free or name in fn.__globals__:
                env[name] = self.outgoing(value, diff, modules_sent)
        return bridge.JudgeFunction(source, fn.__name__, fn.__name__ == "<lambda>", env, modules)

    def call(self, target: Remote, args, kwargs):
        import torch
        diff, modules = [], []
        sent_args = self.outgoing(tuple(args), diff, modules)
        sent_kwargs = self.outgoing(dict(kwargs), diff, modules)
        reply = self.request("call", target._ident, sent_args, sent_kwargs, bridge.rng_state())
        with contextlib.suppress(Exception):  # the kernel's draws advance this process's global generators too
            self._set_rng_state(reply["rng"])
        tensors = []
        result = self.decode(reply["result"], tensors)
        top = [*args, *kwargs.values()]
        for index, value in reply.get("sync", []):
            self._sync(top[int(index)], value)
        wanted = [int(k) for k in reply.get("grad_outputs", [])]
        if reply.get("call") is None or not wanted:
            return result
        outputs = [tensors[k] for k in wanted]
        self.call_modules[reply["call"]] = modules
        anchor = torch.zeros((), requires_grad=True)  # gives the outputs a graph when only parameters need grad
        tied = _kernel_call().apply(self, reply["call"], len(diff), *diff, anchor, *outputs)
        replacement = {id(outputs[i]): t for i, t in enumerate(tied)}
        return self._replace(result, replacement)

    @staticmethod
    def _set_rng_state(state) -> None:
        """The kernel's global random states, checked before they are used here."""
        kind, keys, *_ = state["numpy"]
        if kind != "MT19937" or len(base64.b64decode(keys)) != 624 * 4:
            raise GraderError("a bad random state")
        bridge.set_rng_state(state)

    def _replace(self, x, replacement):
        if id(x) in replacement:
            return replacement[id(x)]
        if type(x) in (list, tuple):
            return type(x)(self._replace(v, replacement) for v in x)
        if type(x) is dict:
            return {k: self._replace(v, replacement) for k, v in x.items()}
        return x

    def backward(self, call, grads):
        """The kernel's vector-Jacobian product for one call: gradients of its inputs (and models)."""
        reply = self.request("backward", call, [None if g is None else g.detach() for g in grads])
        for module, received in zip(self.call_modules[call], reply["modules"]):
            for name, p in module.named_parameters():
                g = self.decode(received.get(name))
                if g is not None and g.shape == p.shape:
                    p.grad = g.to(p.dtype) if p.grad is None else p.grad + g.to(p.dtype)
        return [self.decode(g) for g in reply["inputs"]]

    def _sync(self, target, value):
        """Copy back what the student's function did to an argument (a tensor, array, generator)."""
        torch = sys.modules.get("torch")
        if isinstance(value, dict) and value.get("t") == "genstate" and torch is not None and isinstance(target, torch.Generator):
            target.set_state(torch.tensor(list(base64.b64decode(value["b"])), dtype=torch.uint8))
        elif isinstance(value, dict) and value.get("t") == "npgen" and isinstance(target, np.random.Generator):
            target.bit_generator.state = json.loads(value["state"])
        elif torch is not None and isinstance(target, torch.nn.Module):
            state = self.decode(value)
            if isinstance(state, dict):
                target.load_state_dict(state, strict=False)
        else:
            new = self.decode(value)
            with contextlib.suppress(Exception):
                if torch is not None and isinstance(target, torch.Tensor):
                    with torch.no_grad():
                        target.copy_(torch.as_tensor(new).reshape(target.shape))
                elif isinstance(target, np.ndarray):
                    np.copyto(target, np.asarray(new).reshape(target.shape))


    # ------------------------------------------------------------------------------ cells
    def run_cell(self, source: str, name: str, deadline: float | None):
        """Run one test cell here; returns (printed outputs, the error it raised or None)."""
        self.deadline, self.printed = deadline, []
        filename = f"<test {name}>"
        self.sources[filename] = source
        tree = ast.parse(source, filename)
        bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                bound.add(node.name)
            elif isinstance(node, ast.alias):
                bound.add((node.asname or node.name).split(".")[0])
        loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        needed = sorted((loaded - bound - set(dir(builtins))) - (set(self.namespace) - self.from_kernel))
        stdout = io.StringIO()
        try:
            if needed:
                for key, value in self.request("describe", needed).items():
                    if key in needed:
                        self.namespace[key] = self.decode(value)
                        if isinstance(self.namespace[key], Remote):
                            object.__setattr__(self.namespace[key], "_name", key)
                        self.from_kernel.add(key)
            self.from_kernel -= bound  # what a test binds is the test's from now on
            with contextlib.redirect_stdout(stdout):
                exec(compile(tree, filename, "exec"), self.namespace)
            error = None
        except Exception as caught:  # noqa: BLE001  (any failure of the test is its verdict)
            error = caught
        return [stdout.getvalue(), *self.printed], error

    def describe_error(self, error: BaseException) -> tuple[str, str, list[str]]:
        """(ename, evalue, traceback lines) of a test's failure, showing the test's own lines."""
        frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename in self.sources]
        lines = []
        for frame in frames:
            text = self.sources[frame.filename].splitlines()[frame.lineno - 1].strip() if frame.lineno else ""
            lines.append(f"{frame.filename}, line {frame.lineno}:\n    {text}")
        name = type(error).__name__
        value = str(error)
        if isinstance(error, StudentError):
            name, _, value = value.partition(": ")
        return name, value, [*lines, f"{name}: {value}"]
