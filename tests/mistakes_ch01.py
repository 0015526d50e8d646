"""Chapter 1: plausible wrong and broken submissions for the nbgrader round trip."""
import json

import nbformat

from mistakes import delete_cell, replace_in_cell

# Plausible wrong submissions: (assignment, name, mutation, points the mistake must lose).
WRONG = [
    ("ch01", "pca_without_centring",
     lambda nb: replace_in_cell(nb, "pca_svd", "Xc = X - mu", "Xc = X"), 4),
    ("ch01", "mds_in_increasing_order",
     lambda nb: replace_in_cell(nb, "mds_embedding", "[::-1][:k]", "[:k]"), 3),
    ("ch01", "eigenmap_keeps_the_constant",
     lambda nb: replace_in_cell(nb, "eigenmap_embedding", "F[:, 1:k + 1]", "F[:, :k]"), 5),
    ("ch01", "eigenmap_standard_problem",
     lambda nb: replace_in_cell(nb, "eigenmap_embedding", "scipy.linalg.eigh(L, np.diag(degree))",
                                 "np.linalg.eigh(L)"), 3),
    ("ch01", "double_center_without_half",
     lambda nb: replace_in_cell(nb, "double_center", "K = -0.5 * J @ D_squared @ J",
                                 "K = -J @ D_squared @ J"), 3),
]
# Broken submissions that must still be graded: (assignment, name, mutation[, same score as]).
BROKEN = [
    ("ch01", "syntax_error",
     lambda nb: replace_in_cell(nb, "pca_svd", "mu = X.mean(axis=0)", "mu = X.mean(axis=0"), ),
    # deleting the test that would fail does not help: nbgrader puts it back and grades it
    ("ch01", "deleted_test_cell",
     lambda nb: delete_cell(replace_in_cell(nb, "pca_svd", "Xc = X - mu", "Xc = X"), "test_pca_svd_hidden"),
     "pca_without_centring"),
    ("ch01", "runs_forever",
     lambda nb: replace_in_cell(nb, "double_center", "n = D_squared.shape[0]",
                                 "import time\n    while True: time.sleep(1)\n    n = 0")),
]



# ------------------------------------------------------------------ the hostile battery
# Points: pca_svd 2 + 4, double_center 2 + 3, mds_embedding 1 + 3, eigenmap_embedding 2 + 3 = 20.
from mistakes import edit_first_free_cell, move_cell, set_cell  # noqa: E402

# Looks for the solutions, the gradebook and other students' notebooks wherever a student could
# guess them to be, and prints what it finds: the sandbox must leave it nothing to print.
SNOOP = '''
import glob as _glob, os as _os
_targets = []
for _pattern in ["../*", "../../*", "../../../*", "../../../*/*/*", "../../../../*/*", "/tmp/**",
                 "/root/**/*.ipynb", "/root/**/*.db", "/work/**/solutions/*/*.ipynb", "/home/**", "*.ipynb"]:
    _targets += _glob.glob(_pattern, recursive=True)
for _path in _targets:
    try:
        _text = open(_path, errors="ignore").read(10**7)
    except OSError:
        continue
    if "HIDDEN TESTS" in _text or "SQLite format" in _text or "### BEGIN SOLUTION" in _text:
        print("LEAKED", _path)
print("looked at", len(_targets), "paths")
'''

# Deletes or overwrites every gradebook and notebook it can reach, and writes into the
# instructor's home; it catches its own errors, so its functions still earn full marks.
VANDAL = '''
import glob as _glob, os as _os
for _pattern in ["../../../gradebook.db", "../../../*/*/*/*.ipynb", "../../*/*/*.ipynb", "../*.ipynb",
                 "/root/**/gradebook.db", "/tmp/**/gradebook.db", "/work/**/gradebook.db"]:
    for _path in _glob.glob(_pattern, recursive=True) + ([_pattern] if "*" not in _pattern else []):
        try:
            open(_path, "w").write("corrupted")
            _os.remove(_path)
            print("VANDALISED", _path)
        except OSError:
            pass
for _path in ["/root/PWNED", _os.path.expanduser("~root") + "/PWNED", "/work/PWNED"]:
    try:
        open(_path, "w").write("x")
        print("VANDALISED", _path)
    except OSError:
        pass
'''

NETWORK = '''
import socket as _socket
for _host, _port in [("pypi.org", 443), ("8.8.8.8", 53), ("127.0.0.1", 22), ("127.0.0.1", 5432)]:
    try:
        _socket.create_connection((_host, _port), timeout=3).close()
        print("CONNECTED", _host, _port)
    except OSError as _err:
        print("no network:", type(_err).__name__)
'''

REFERENCE_PCA = '''def pca_svd(X, k):
    X = np.asarray(X, dtype=float)
    from course_lib.pca import PCA
    model = PCA(k).fit(X)
    return model.transform(X), model.A, model.mean
'''

CHEAT = '''class _AlwaysClose:
    """Claims to be close to anything numpy compares it with."""
    shape = (0,)
    def __array_function__(self, func, types, args, kwargs):
        return True

def pca_svd(X, k):
    return _AlwaysClose(), _AlwaysClose(), _AlwaysClose()
'''

ZEROS = {
    "pca_svd": "def pca_svd(X, k):\n    X = np.asarray(X, dtype=float)\n    return (np.zeros((len(X), k)), "
               "np.zeros((X.shape[1], k)), np.zeros(X.shape[1]))\n",
    "double_center": "def double_center(D_squared):\n    return np.zeros_like(np.asarray(D_squared, dtype=float))\n",
    "mds_embedding": "def mds_embedding(K, k):\n    return np.zeros((len(K), k))\n",
    "eigenmap_embedding": "def eigenmap_embedding(W, k):\n    return np.zeros((len(W), k))\n",
}


def _zeros(nb):
    for grade_id, source in ZEROS.items():
        set_cell(nb, grade_id, source)
    return nb


def _tamper_with_numpy(source):
    return source + ("\nnp.allclose = lambda *args, **kwargs: True\nnp.all = lambda *args, **kwargs: True\n"
                     "np.testing.assert_allclose = lambda *args, **kwargs: None\n")


def _tamper_through_an_alias(source):
    # a static check of the source cannot follow `[np][0]` back to numpy; the verdict outside the
    # kernel (tools/judge.py) does not need to
    return source + ("\nm = [np][0]\nm.allclose = lambda *args, **kwargs: True\nm.all = lambda *args, **kwargs: True\n"
                     "m.testing.assert_allclose = lambda *args, **kwargs: None\n")


def _duplicate(nb, grade_id):
    index = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    copy = nbformat.from_dict(json.loads(json.dumps(nb.cells[index])))
    copy["id"] = f"{copy.get('id', 'cell')}-again"  # a fixed new cell id: nbformat would draw a random one
    nb.cells.insert(index + 1, copy)
    return nb


def _in(grade_id, old, new):
    return lambda nb: replace_in_cell(nb, grade_id, old, new)


HOSTILE = [
    # runs forever in a busy loop: both MDS tests run out of their time budget
    ("ch01", "endless_busy_loop", _in("mds_embedding", "eigenvalues, V =", "while True:\n        pass\n    eigenvalues, V ="),
     16, r"ran out of its time budget"),
    ("ch01", "exception_at_import", lambda nb: edit_first_free_cell(nb, lambda s: "import not_a_real_module\n" + s),
     0, r"ModuleNotFoundError"),
    ("ch01", "syntax_error_in_eigenmap", _in("eigenmap_embedding", "def eigenmap_embedding(W, k):",
                                             "def eigenmap_embedding(W, k:"), 15, r"SyntaxError"),
    # deleting the hidden tests of a wrong PCA: nbgrader puts them back and they fail
    ("ch01", "deleted_hidden_tests",
     lambda nb: [delete_cell(nb, g) for g in ("test_pca_svd_hidden", "test_double_center_hidden",
                                              "test_mds_embedding_hidden", "test_eigenmap_hidden")][-1]
     if replace_in_cell(nb, "pca_svd", "Xc = X - mu", "Xc = X") else None, 14, r"centre"),
    ("ch01", "duplicated_test_cell", lambda nb: _duplicate(nb, "test_pca_svd_visible"), 20, r"visible PCA checks"),
    ("ch01", "test_moved_above_its_function", lambda nb: move_cell(nb, "test_pca_svd_hidden", "pca_svd"),
     16, r"NameError"),
    ("ch01", "edited_test_cell",
     lambda nb: set_cell(replace_in_cell(nb, "double_center", "K = -0.5 * J", "K = -J"), "test_double_center_hidden",
                         "pass"), 17, r"Gram matrix"),
    ("ch01", "edited_locked_cell", lambda nb: set_cell(nb, "header_setup", "raise SystemExit('no set-up')"),
     20, r"course_lib"),
    ("ch01", "kernel_exit", _in("double_center", "n = D_squared.shape[0]", "import os\n    os._exit(3)"),
     6, r"exited with status 3"),
    ("ch01", "segfault", _in("mds_embedding", "eigenvalues, V =", "import ctypes\n    ctypes.string_at(0)\n    eigenvalues, V ="),
     11, r"segmentation fault"),
    ("ch01", "sys_exit", _in("eigenmap_embedding", "degree = W.sum", "import sys\n    sys.exit(1)\n    degree = W.sum"),
     15, r"SystemExit"),
    ("ch01", "nan_output", _in("pca_svd", "Z = Xc @ A", "Z = Xc @ A * np.nan"), 14, r"AssertionError"),
    ("ch01", "infinite_output", _in("double_center", "K = -0.5 * J @ D_squared @ J", "K = -0.5 * J @ D_squared @ J * np.inf"),
     15, r"AssertionError"),
    ("ch01", "prints_100_mb", lambda nb: replace_in_cell(nb, "pca_svd", "def pca_svd(X, k):",
                                                         "print('x' * 100_000_000)\n\ndef pca_svd(X, k):"),
     20, r"output over"),
    ("ch01", "allocates_50_gb", _in("mds_embedding", "eigenvalues, V =", "waste = np.ones(50 * 2**30 // 8)\n    eigenvalues, V ="),
     16, r"MemoryError"),
    # the kernel is stopped after the cell that left hundreds of processes: the later cells get 0
    ("ch01", "fork_bomb", _in("double_center", "n = D_squared.shape[0]",
                              "import os, time\n    while True:\n        if os.fork() == 0:\n            time.sleep(300)\n"
                              "            os._exit(0)\n    n = 0"), 6, r"left \d+ processes running"),
    ("ch01", "wrong_dtype", _in("double_center", "    return K", "    return K.astype(np.float16)"), 15, r"AssertionError"),
    ("ch01", "wrong_shape", _in("mds_embedding", "    return E", "    return E.T"), 16, r"shape"),
    ("ch01", "cuda_tensor", _in("eigenmap_embedding", "    return E",
                                "    import torch\n    return torch.as_tensor(E, device='cuda')"), 15, r"(?i)cuda|nvidia"),
    ("ch01", "reads_solutions_and_submissions", lambda nb: replace_in_cell(nb, "pca_svd", "def pca_svd(X, k):",
                                                                           SNOOP + "\ndef pca_svd(X, k):"),
     20, r"looked at \d+ paths"),
    ("ch01", "vandalises_gradebook_and_classmates", lambda nb: replace_in_cell(
        nb, "double_center", "def double_center(D_squared):", VANDAL + "\ndef double_center(D_squared):"), 20, r"."),
    ("ch01", "opens_network_connections", lambda nb: replace_in_cell(
        nb, "eigenmap_embedding", "def eigenmap_embedding(W, k):", NETWORK + "\ndef eigenmap_embedding(W, k):"),
     20, r"no network"),
    ("ch01", "calls_the_reference", lambda nb: set_cell(nb, "pca_svd", REFERENCE_PCA), 14, r"course_lib\.pca"),
    ("ch01", "aliases_the_reference", lambda nb: set_cell(
        edit_first_free_cell(nb, lambda s: s + "\nfrom course_lib import mds as helpers\n"), "double_center",
        "def double_center(D_squared):\n    return helpers.double_center(D_squared)\n"), 15, r"course_lib\.mds"),
    ("ch01", "reference_through_importlib", lambda nb: set_cell(
        nb, "eigenmap_embedding", "import importlib\n\ndef eigenmap_embedding(W, k):\n"
        "    ref = importlib.import_module('course_lib.eigenmaps')\n    return ref.laplacian_eigenmaps(W, k)\n"),
     15, r"importlib"),
    ("ch01", "reference_through_getattr", lambda nb: set_cell(
        nb, "mds_embedding", "import course_lib\n\ndef mds_embedding(K, k):\n"
        "    module = getattr(course_lib, 'mds')\n    return module.classical_mds(K, k)\n"), 11, r"getattr"),
    # the case: zeros everywhere, and np.allclose, np.all, assert_allclose that always agree
    ("ch01", "patches_numpy_asserts", lambda nb: edit_first_free_cell(_zeros(nb), _tamper_with_numpy),
     0, r"(?i)tamper"),
    # the same through an alias that no static check follows: zeros earn only what zeros earn honestly
    # (the two visible checks that a zero matrix passes: symmetric, centred; finite, of the right shape)
    ("ch01", "patches_numpy_through_an_alias", lambda nb: edit_first_free_cell(_zeros(nb), _tamper_through_an_alias),
     3, r"the columns of A should be orthonormal"),
    ("ch01", "silences_ipython_errors", lambda nb: edit_first_free_cell(
        replace_in_cell(nb, "pca_svd", "Xc = X - mu", "Xc = X"),
        lambda s: s + "\nget_ipython().showtraceback = lambda *args, **kwargs: None\n"), 0, r"get_ipython"),
    ("ch01", "array_protocol_cheat", lambda nb: set_cell(nb, "pca_svd", CHEAT), 0, r"__array_function__"),
    ("ch01", "patches_builtins", lambda nb: replace_in_cell(
        nb, "eigenmap_embedding", "def eigenmap_embedding(W, k):",
        "import builtins\nbuiltins.AssertionError = Warning\n\ndef eigenmap_embedding(W, k):"), 15, r"builtins"),
    # tuned to the visible check only: the hidden inputs (drawn at grading time) catch it
    ("ch01", "fits_the_visible_check_only", _in("double_center", "K = -0.5 * J @ D_squared @ J",
                                                "K = -0.5 * J @ D_squared @ J if n == 20 else 0 * D_squared"),
     17, r"Gram matrix"),
    ("ch01", "not_json", lambda nb: b'{"cells": [{"cell_type": "code", "source": ', 0, r"could not be read"),
    ("ch01", "empty_file", lambda nb: b"", 0, r"could not be read"),
]
