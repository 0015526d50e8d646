"""The verdict outside the kernel (tools/judge.py): test code runs here, the student's code in a kernel.

A real IPython kernel stands for the student's; each test defines "student" code in it, then runs
test code through the judge and checks what a grader would rely on: values and gradients cross
exactly, arguments the student's code changes are changed here too, the global random state
follows the calls, and nothing the kernel does (patching numpy, replacing the bridge, sending
garbage) changes how this process judges.
"""
from __future__ import annotations

import queue
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from jupyter_client.manager import start_new_kernel

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import judge as judging  # noqa: E402


@pytest.fixture(scope="module")
def kernel():
    km, kc = start_new_kernel(kernel_name="python3")
    yield kc
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def run(kc, code: str, timeout: float = 60) -> tuple[str, list]:
    """Execute code in the kernel: (its stdout, its error outputs)."""
    msg_id = kc.execute(code, store_history=False)
    stdout, errors = [], []
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(code[:80]) from None
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream" and content["name"] == "stdout":
            stdout.append(content["text"])
        elif kind == "error":
            errors.append(content)
        elif kind == "status" and content["execution_state"] == "idle":
            return "".join(stdout), errors


def make_judge(kc, imports=(), cells=()):
    """A judge on the kernel, with the bridge installed as the grader installs it."""
    _, errors = run(kc, judging.INSTALL.format(source=judging._BRIDGE_PATH.read_text()))
    assert not errors, errors

    def roundtrip(code, seconds):
        text, errors = run(kc, code)
        return text, [dict(output_type="error", **e) for e in errors]

    return judging.Judge(roundtrip, list(imports), list(cells))


@pytest.fixture
def judge(kernel):
    return make_judge(kernel, ["import numpy as np", "import torch"])


def verdict(judge, source: str):
    printed, error = judge.run_cell(source, "test", None)
    return "".join(p for p in printed if isinstance(p, str)), error


def test_values_cross_exactly_and_the_kernel_cannot_patch_the_asserts(kernel, judge):
    run(kernel, "import numpy as np\n"
                "def double(x):\n    return 2 * np.asarray(x)\n"
                "def zeros(x):\n    return np.zeros_like(x)\n"
                "m = [np][0]\nm.allclose = lambda *a, **k: True\nm.testing.assert_allclose = lambda *a, **k: None\n")
    _, error = verdict(judge, "x = np.random.default_rng(1).normal(size=(7, 3))\n"
                              "assert np.array_equal(double(x), 2 * x) and double(x).dtype == np.float64")
    assert error is None, error
    _, error = verdict(judge, "assert np.allclose(zeros(np.ones(3)), np.ones(3)), 'not the same'")
    assert isinstance(error, AssertionError) and "not the same" in str(error)


def test_gradients_flow_through_the_students_function(kernel, judge):
    run(kernel, "import torch\ndef loss(a, b):\n    return ((a - b) ** 2).sum() + a.sin().sum()\n")
    _, error = verdict(judge, """
a = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
b = torch.randn(5, 3, dtype=torch.float64)
w = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
value = loss(a * w, b)
grad_a, grad_w = torch.autograd.grad(value, (a, w))
expected = ((a * w - b) ** 2).sum() + (a * w).sin().sum()
assert torch.equal(value.detach(), expected.detach())
exp_a, exp_w = torch.autograd.grad(expected, (a, w))
assert torch.allclose(grad_a, exp_a, rtol=1e-14) and torch.allclose(grad_w, exp_w, rtol=1e-14)
""")
    assert error is None, error


def test_models_stay_in_the_kernel_and_their_gradients_can_be_read(kernel, judge):
    run(kernel, "import torch\nfrom torch import nn\n"
                "class Model(nn.Module):\n"
                "    def __init__(self):\n        super().__init__()\n        self.layer = nn.Linear(3, 2)\n"
                "    def forward(self, x):\n        return self.layer(x).sum(-1)\n")
    _, error = verdict(judge, """
model = Model().double()
weights = model.state_dict()
weights["layer.weight"][:] = torch.arange(6.0).reshape(2, 3)
model.load_state_dict(weights)
x = torch.ones(4, 3, dtype=torch.float64)
assert torch.equal(model(x), torch.full((4,), 15.0, dtype=torch.float64) + model.layer.bias.sum().detach())
model.zero_grad()
model(x).sum().backward()
assert torch.equal(model.layer.weight.grad, torch.full((2, 3), 4.0, dtype=torch.float64))
assert all(p.grad is not None for p in model.parameters())
""")
    assert error is None, error


def test_the_graders_models_and_functions_go_by_value_with_their_gradients(kernel, judge):
    run(kernel, "def discriminator_loss(D, G, z):\n    return D(G(z).detach()).mean()\n")
    _, error = verdict(judge, """
torch.manual_seed(0)
D, G = torch.nn.Linear(3, 1), torch.nn.Linear(2, 3)
z = torch.randn(5, 2)
scale = 3.0
value = discriminator_loss(D, lambda v: scale * G(v), z)
assert torch.allclose(value, D(scale * G(z)).mean())
assert torch.allclose(discriminator_loss(lambda v: 2 * v.sum(1), lambda v: v + 1, z[:, :1]), 2 * (z[:, 0] + 1).mean())
value.backward()
assert all(p.grad is None for p in G.parameters()), "G was detached"
expected = torch.autograd.grad(D(scale * G(z).detach()).mean(), list(D.parameters()))
assert all(torch.allclose(p.grad, e) for p, e in zip(D.parameters(), expected))
""")
    assert error is None, error


def test_changes_to_arguments_and_generators_come_back(kernel, judge):
    run(kernel, "import torch, numpy as np\n"
                "def scale_in_place(x):\n    x *= 2\n    return None\n"
                "def draw(n, generator=None):\n    return torch.rand(n, generator=generator)\n"
                "def draw_global(n):\n    return torch.randn(n), np.random.normal(size=n)\n")
    _, error = verdict(judge, """
x = torch.ones(3)
scale_in_place(x)
assert torch.equal(x, torch.full((3,), 2.0)), "the change made in the kernel is seen here"
g = torch.Generator().manual_seed(5)
first = draw(4, g)
second = torch.rand(4, generator=g)
reference = torch.Generator().manual_seed(5)
assert torch.equal(first, torch.rand(4, generator=reference)) and torch.equal(second, torch.rand(4, generator=reference))
torch.manual_seed(3); np.random.seed(3)
t, a = draw_global(4)
after_t, after_a = torch.randn(2), np.random.normal(size=2)
torch.manual_seed(3); np.random.seed(3)
assert torch.equal(t, torch.randn(4)) and np.array_equal(a, np.random.normal(size=4))
assert torch.equal(after_t, torch.randn(2)) and np.array_equal(after_a, np.random.normal(size=2))
""")
    assert error is None, error


def test_the_students_exceptions_arrive_with_their_type(kernel, judge):
    run(kernel, "def checked(p):\n    if p < 0:\n        raise ValueError('p must be >= 0')\n    return p\n"
                "def typed(x):\n    raise TypeError('not a number')\n"
                "class Custom(Exception):\n    pass\n"
                "def custom():\n    raise Custom('mine')\n")
    _, error = verdict(judge, "try:\n    checked(-1)\nexcept ValueError as e:\n    assert 'p must be' in str(e)\n"
                              "else:\n    raise AssertionError('no ValueError')")
    assert error is None, error
    _, error = verdict(judge, "try:\n    typed(1)\nexcept TypeError as e:\n    assert 'not a number' in str(e)")
    assert error is None, error
    _, error = verdict(judge, "custom()")
    assert isinstance(error, judging.StudentError)
    assert judge.describe_error(error)[0] == "Custom"


def test_prints_reach_the_feedback_and_missing_names_fail_by_name(kernel, judge):
    run(kernel, "def noisy(x):\n    print('working on', x)\n    return x\n")
    text, error = verdict(judge, "print('checking'); assert noisy(3) == 3")
    assert error is None and "checking" in text
    assert any("working on 3" in p for p in judge.printed if isinstance(p, str))
    _, error = verdict(judge, "not_defined_anywhere(1)")
    assert isinstance(error, NameError)


@pytest.mark.parametrize("sabotage, expected", [
    ("__import__('sys').modules['__course_grader__'].bridge.run = lambda request: print('hello')", "no reply"),
    ("__import__('sys').modules['__course_grader__'].MARK = ''\n"
     "__import__('sys').modules['__course_grader__'].bridge.run = "
     "lambda request: print('\\x1egrader-reply ' + __import__('base64').b64encode(b'[1, 2]').decode())", "not a dictionary"),
])
def test_a_kernel_that_sends_garbage_fails_its_own_tests_only(kernel, sabotage, expected):
    judge = make_judge(kernel)
    run(kernel, "def f(x):\n    return x\n" + sabotage)
    _, error = judge.run_cell("assert f(1) == 1", "test", None)
    assert isinstance(error, judging.GraderError) and expected in str(error)


def test_a_kernel_cannot_make_the_grader_unpickle_or_run_anything(judge):
    with pytest.raises(judging.GraderError):
        judge.decode({"t": "nd", "dtype": "|O", "shape": [1], "b": ""})
    with pytest.raises(judging.GraderError):
        judge.decode({"t": "tensor", "dtype": "torch.float32", "shape": [1000], "b": "AAAA"})
    with pytest.raises(judging.GraderError):
        judge.decode({"t": "pickle", "b": "gASVAAAAAAAAAAA="})


def test_inspect_reads_the_submitted_source_of_a_function(kernel):
    cell = "def gradient(P, E):\n    E.requires_grad_()\n    return torch.autograd.grad(kl(P, E), E)[0]\n"
    judge = make_judge(kernel, ["import inspect"], [cell])
    run(kernel, cell)
    _, error = judge.run_cell("assert 'autograd' not in inspect.getsource(gradient), 'uses autograd'", "test", None)
    assert isinstance(error, AssertionError) and "uses autograd" in str(error)


def test_a_kernel_cannot_make_the_grader_import_a_module(judge):
    assert judge.decode({"t": "module", "name": "numpy"}) is np
    with pytest.raises(judging.GraderError):
        judge.decode({"t": "module", "name": "antigravity"})
    assert "antigravity" not in sys.modules
