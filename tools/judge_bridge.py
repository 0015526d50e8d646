"""The kernel's end of the judge (tools/judge.py): runs inside the student's kernel at grading time.

The grader runs each test cell in its own process and calls the student's functions through this
bridge. Requests come in pickled (from the trusted grader; nothing the student wrote is unpickled
by the grader); replies go out as JSON with arrays as raw bytes, printed after a marker. Anything
that is not plain data (a function, a model, a generator of values) stays in the kernel and is
sent as a reference that the grader can call, read or iterate.

The student's code can change anything in this process, this module included: that only changes
what the grader receives, which it then judges with its own code.
"""
import base64
import json
import pickle
import sys
import traceback

import numpy as np

try:
    import torch
except ImportError:  # an assignment without torch
    torch = None

MARK = "\x1egrader-reply "


class DiffInput:
    """A tensor the grader differentiates through: a leaf that requires grad here."""

    def __init__(self, tensor):
        self.tensor = tensor


class ByValueModule:
    """A model of the grader's, sent by value: its parameters' gradients go back after backward."""

    def __init__(self, module):
        self.module = module


class Ref:
    def __init__(self, ident):
        self.ident = ident


class GeneratorState:
    def __init__(self, state: bytes, device: str):
        self.state, self.device = state, device


class JudgeFunction:
    """A function the test defines (a toy model, a lambda): rebuilt here from its source."""

    def __init__(self, source: str, name: str, is_lambda: bool, env: dict, modules: dict):
        self.source, self.name, self.is_lambda, self.env, self.modules = source, name, is_lambda, env, modules


def rng_state() -> dict:
    """The global random states (numpy's and torch's CPU generator): a test seeds them on its side."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"numpy": [kind, base64.b64encode(keys.tobytes()).decode(), int(pos), int(has_gauss), float(gauss)]}
    if torch is not None:
        state["torch"] = base64.b64encode(bytes(torch.get_rng_state().tolist())).decode()
    return state


def set_rng_state(state: dict) -> None:
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.frombuffer(base64.b64decode(keys), dtype=np.uint32), pos, has_gauss, gauss))
    if torch is not None and "torch" in state:
        torch.set_rng_state(torch.tensor(list(base64.b64decode(state["torch"])), dtype=torch.uint8))


class Bridge:
    def __init__(self, user_ns):
        self.user_ns = user_ns
        self.objects = {}
        self.calls = {}

    # ----------------------------------------------------------------------------- encoding
    def encode(self, x, tensors=None):
        kind = type(x)
        if x is None or kind in (bool, int, float, str):
            return x
        if kind in (list, tuple):
            return {"t": kind.__name__, "v": [self.encode(v, tensors) for v in x]}
        if isinstance(x, dict) and all(type(k) in (str, int) for k in x):
            return {"t": "dict", "k": list(x), "v": [self.encode(v, tensors) for v in x.values()]}
        if kind is np.ndarray and x.dtype.kind in "biufc":
            return {"t": "nd", "dtype": x.dtype.str, "shape": list(x.shape),
                    "b": base64.b64encode(np.ascontiguousarray(x).tobytes()).decode()}
        if isinstance(x, np.generic) and x.dtype.kind in "biufc":
            return {"t": "np", "dtype": x.dtype.str, "b": base64.b64encode(x.tobytes()).decode()}
        if torch is not None and isinstance(x, torch.Tensor) and x.layout == torch.strided:
            t = x.detach()
            wire = t.float() if t.dtype == torch.bfloat16 else t
            out = {"t": "tensor", "dtype": str(t.dtype), "shape": list(t.shape), "device": str(t.device),
                   "rg": bool(x.requires_grad), "param": isinstance(x, torch.nn.Parameter),
                   "b": base64.b64encode(wire.cpu().contiguous().numpy().tobytes()).decode()}
            if x.is_leaf and x.grad is not None:
                out["grad"] = self.encode(x.grad)
            if tensors is not None:
                out["k"] = len(tensors)
                tensors.append(x)
            return out
        if isinstance(x, type(sys)):
            return {"t": "module", "name": x.__name__}
        self.objects[id(x)] = x
        return {"t": "ref", "id": id(x), "type": type(x).__name__, "callable": callable(x)}

    # ----------------------------------------------------------------------------- decoding
    def decode(self, x, diff, modules):
        if isinstance(x, (list, tuple)):
            return type(x)(self.decode(v, diff, modules) for v in x)
        if isinstance(x, dict):
            return {k: self.decode(v, diff, modules) for k, v in x.items()}
        if isinstance(x, DiffInput):
            leaf = x.tensor.clone().requires_grad_(True)
            diff.append(leaf)
            return leaf
        if isinstance(x, ByValueModule):
            modules.append(x.module)
            return x.module
        if isinstance(x, Ref):
            return self.objects[x.ident]
        if isinstance(x, GeneratorState):
            generator = torch.Generator(device=x.device)
            generator.set_state(torch.tensor(list(x.state), dtype=torch.uint8))
            return generator
        if isinstance(x, JudgeFunction):
            namespace = {name: __import__(module, fromlist=["_"]) for name, module in x.modules.items()}
            namespace.update(self.decode(x.env, diff, modules))
            if x.is_lambda:
                return eval(x.source, namespace)
            exec(x.source, namespace)
            return namespace[x.name]
        return x

    # --------------------------------------------------------------------------------- ops
    def op_describe(self, names):
        return {n: self.encode(self.user_ns[n]) for n in names if n in self.user_ns}

    def op_call(self, target, args, kwargs, rng):
        fn = self.objects[target]
        set_rng_state(rng)
        diff, modules = [], []
        args = self.decode(args, diff, modules)
        kwargs = self.decode(kwargs, diff, modules)
        top = [*args, *kwargs.values()]
        before = {i: (a.detach().clone() if torch is not None and isinstance(a, torch.Tensor) else a.copy())
                  for i, a in enumerate(top) if isinstance(a, np.ndarray) or (torch is not None and isinstance(a, torch.Tensor))}
        result = fn(*args, **kwargs)
        tensors = []
        encoded = self.encode(result, tensors)
        sync = []
        for i, a in enumerate(top):
            if i in before:
                changed = not (a.shape == before[i].shape and
                               (torch.equal(a.detach(), before[i]) if isinstance(a, torch.Tensor)
                                else np.array_equal(a, before[i], equal_nan=True)))
                if changed:
                    sync.append([i, self.encode(a.detach() if isinstance(a, torch.Tensor) else a)])
            elif torch is not None and isinstance(a, torch.Generator):
                sync.append([i, {"t": "genstate", "b": base64.b64encode(bytes(a.get_state().tolist())).decode()}])
            elif isinstance(a, np.random.Generator):
                sync.append([i, {"t": "npgen", "state": json.dumps(a.bit_generator.state)}])
            elif torch is not None and isinstance(a, torch.nn.Module) and any(a is m for m in modules):
                sync.append([i, self.encode(dict(a.state_dict()))])
        outs = [t for t in tensors if t.requires_grad]
        call = None
        if outs:
            call = len(self.calls)
            self.calls[call] = (outs, diff, modules)
        return {"result": encoded, "sync": sync, "call": call, "rng": rng_state(),
                "grad_outputs": [t_k for t_k, t in enumerate(tensors) if t.requires_grad]}

    def op_backward(self, call, grads):
        outs, diff, modules = self.calls[call]
        pairs = [(o, g) for o, g in zip(outs, grads) if g is not None]
        torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs], retain_graph=True)
        input_grads = []
        for leaf in diff:
            input_grads.append(self.encode(leaf.grad) if leaf.grad is not None else None)
            leaf.grad = None
        module_grads = []
        for module in modules:
            grads_here = {}
            for name, p in module.named_parameters():
                grads_here[name] = self.encode(p.grad) if p.grad is not None else None
                p.grad = None
            module_grads.append(grads_here)
        return {"inputs": input_grads, "modules": module_grads}

    def op_getattr(self, target, name):
        return self.encode(getattr(self.objects[target], name))

    def op_setattr(self, target, name, value):
        setattr(self.objects[target], name, self.decode(value, [], []))

    def op_getitem(self, target, key):
        return self.encode(self.objects[target][self.decode(key, [], [])])

    def op_list(self, target):
        return self.encode(list(self.objects[target]))

    def op_len(self, target):
        return len(self.objects[target])

    def run(self, request: str):
        try:
            op, args = pickle.loads(base64.b64decode(request))
            reply = {"ok": getattr(self, "op_" + op)(*args)}
        except Exception as error:  # the student's exception, reported to the test that called
            reply = {"error": {"type": type(error).__name__, "message": str(error),
                               "traceback": traceback.format_exc(limit=-8)}}
        except SystemExit as error:
            reply = {"error": {"type": "SystemExit", "message": f"sys.exit({error.code!r}) was called",
                               "traceback": traceback.format_exc(limit=-8)}}
        sys.stdout.flush()
        text = json.dumps(reply)
        sys.stdout.write(MARK + base64.b64encode(text.encode()).decode() + "\n")
        sys.stdout.flush()
