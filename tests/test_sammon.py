"""Sammon's map against hand computations, SciPy and autograd.

Oracles:
- the stress against a loop over pairs on SciPy's ``pdist`` distances;
- autograd's gradient against Sammon's closed-form first derivatives and
  against finite differences, and the closed-form second derivatives against
  autograd's Hessian;
- the fitted map against SciPy's L-BFGS-B run on the same objective (numpy
  stress and closed-form gradient) from the same start.
"""
import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.spatial.distance import pdist, squareform

from course_lib import data
from course_lib.sammon import (
    class_pull_penalty,
    drop_duplicates,
    sammon,
    sammon_derivatives,
    sammon_stress,
)


@pytest.fixture(scope="module")
def iris():
    d = data.load_iris()
    X, kept = drop_duplicates(d.X.astype(np.float64))  # iris repeats one flower
    return X, d.y[kept]


def stress_by_pairs(X, Y):
    """E = (1 / sum d*) sum_{i<j} (d*_ij - d_ij)^2 / d*_ij, one pair at a time."""
    n = len(X)
    num, total = 0.0, 0.0
    for i in range(n):
        for j in range(i + 1, n):
            d_star = np.linalg.norm(X[i] - X[j])
            d = np.linalg.norm(Y[i] - Y[j])
            num += (d_star - d) ** 2 / d_star
            total += d_star
    return num / total


def test_stress_matches_a_loop_over_pairs():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(30, 5)), rng.normal(size=(30, 2))
    ours = sammon_stress(torch.tensor(pdist(X)), torch.tensor(pdist(Y)))
    # Same float64 sums in a different order: ~1e-16 relative.
    assert float(ours) == pytest.approx(stress_by_pairs(X, Y), rel=1e-12)


def test_stress_by_hand():
    # Three points on a line at 0, 1, 3 (d* = 1, 3, 2) mapped to 0, 1, 2 (d = 1, 2, 1):
    # E = (0 + 1/3 + 1/2) / 6 = 5/36.
    d_star = torch.tensor([1.0, 3.0, 2.0], dtype=torch.float64)
    d = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)
    assert float(sammon_stress(d_star, d)) == pytest.approx(5 / 36, rel=1e-15)
    # A rigid motion of a planar data set is a perfect map.
    X = np.random.default_rng(1).normal(size=(20, 2))
    R = np.array([[0.6, -0.8], [0.8, 0.6]])
    assert float(sammon_stress(torch.tensor(pdist(X)), torch.tensor(pdist(X @ R + 3.0)))) < 1e-28


def test_autograd_gradient_matches_sammon_and_finite_differences():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(25, 4))
    d_star = torch.tensor(pdist(X))
    E = torch.tensor(rng.normal(size=(25, 2)), requires_grad=True)
    (auto,) = torch.autograd.grad(sammon_stress(d_star, torch.pdist(E)), E)
    grad, _ = sammon_derivatives(d_star, E.detach())
    # Two exact float64 computations of the same derivative: ~1e-16 relative.
    np.testing.assert_allclose(grad.numpy(), auto.numpy(), rtol=1e-10, atol=1e-15)
    # Central differences of the stress as a function of the embedding (step 1e-6:
    # truncation error ~h^2 = 1e-12, rounding ~1e-16 / h = 1e-10, relative to |grad| ~ 1e-2).
    assert torch.autograd.gradcheck(lambda e: sammon_stress(d_star, torch.pdist(e)), (E,), eps=1e-6, atol=1e-8)


def test_closed_form_curvature_matches_autograd_hessian():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(12, 3))
    d_star = torch.tensor(pdist(X))
    E = torch.tensor(rng.normal(size=(12, 2)))
    H = torch.autograd.functional.hessian(lambda e: sammon_stress(d_star, torch.pdist(e)), E)
    diag = torch.diagonal(H.reshape(24, 24)).reshape(12, 2)
    _, hess_diag = sammon_derivatives(d_star, E)
    np.testing.assert_allclose(hess_diag.numpy(), diag.numpy(), rtol=1e-9, atol=1e-14)


def scipy_sammon(X, Y0):
    """SciPy's L-BFGS-B on the same stress, with Sammon's closed-form gradient in numpy."""
    D_star = squareform(pdist(X))
    c = D_star.sum() / 2
    np.fill_diagonal(D_star, 1.0)
    iu = np.triu_indices(len(X), 1)

    def stress_and_grad(y):
        Y = y.reshape(Y0.shape)
        D = squareform(pdist(Y))
        np.fill_diagonal(D, 1.0)
        A = (D_star - D) / (D_star * D)
        np.fill_diagonal(A, 0.0)
        stress = ((D_star - D) ** 2 / D_star)[iu].sum() / c
        return stress, (-2.0 / c * (A.sum(1)[:, None] * Y - A @ Y)).ravel()

    res = minimize(stress_and_grad, Y0.ravel(), jac=True, method="L-BFGS-B",
                   options=dict(maxiter=2000, ftol=1e-13, gtol=1e-12))
    return res.fun


def pca_start(X):
    Xc = X - X.mean(axis=0)
    U, s, _ = np.linalg.svd(Xc, full_matrices=False)
    return U[:, :2] * s[:2]


@pytest.mark.parametrize("optimizer", ["lbfgs", "sammon"])
def test_fit_reaches_scipys_minimum(iris, optimizer):
    X, _ = iris
    ref = scipy_sammon(X, pca_start(X))
    result = sammon(X, optimizer=optimizer, max_iter=1000, device="cpu")
    # From the same PCA start both descend into the same minimum (0.0039598); the
    # runs stop at slightly different points on its floor: we measured 1e-7 (L-BFGS)
    # and 2e-6 (Sammon's step) relative. The next-best minimum we found (Adam's,
    # 0.0039581) differs by 4e-4, so 2e-5 tells them apart.
    assert result.stress == pytest.approx(ref, rel=2e-5)
    assert result.history[0] == pytest.approx(float(sammon_stress(torch.tensor(pdist(X)),
                                                                  torch.tensor(pdist(pca_start(X))))), rel=1e-12)
    assert result.history[-1] == result.stress and len(result.history) == result.n_iter + 1


@pytest.mark.parametrize("optimizer, lr", [("adam", None), ("sgd", 20.0)])
def test_first_order_optimizers_get_close(iris, optimizer, lr):
    X, _ = iris
    ref = scipy_sammon(X, pca_start(X))
    result = sammon(X, optimizer=optimizer, lr=lr, max_iter=400, device="cpu")
    # From 71% above the minimum, 400 steps end within 0.1% of it: we measured 2e-6
    # above for gradient descent and 4e-4 below for Adam (a neighbouring minimum).
    # Stopping after 50 steps would leave 0.15% (Adam) and 0.26% (gradient descent).
    assert result.stress <= 1.001 * ref
    assert result.history[0] > 1.5 * ref


def test_embedding_is_reported_in_data_units(iris):
    X, _ = iris
    result = sammon(X, device="cpu")
    d = pdist(result.embedding)
    assert result.stress == pytest.approx(float(sammon_stress(torch.tensor(pdist(X)), torch.tensor(d))), rel=1e-12)
    # The stress does not depend on the units: the map of 1000 X is 1000 times the map of X.
    scaled = sammon(1000.0 * X, device="cpu")
    assert scaled.stress == pytest.approx(result.stress, rel=1e-6)


def test_duplicates_raise_with_their_count():
    X = np.random.default_rng(4).normal(size=(10, 3))
    X = np.vstack([X, X[2], X[7], X[2]])  # three extra copies
    with pytest.raises(ValueError, match=r'3 duplicate points.*on_duplicates="drop"'):
        sammon(X, device="cpu")


def test_drop_embeds_first_copies(iris):
    d = data.load_iris()
    result = sammon(d.X, on_duplicates="drop", max_iter=5, device="cpu")
    X_unique, kept = drop_duplicates(d.X)
    assert len(result.kept) == len(d.X) - 1 == len(X_unique)
    np.testing.assert_array_equal(result.kept, kept)
    assert result.embedding.shape == (len(kept), 2)
    assert len(np.unique(d.X[result.kept], axis=0)) == len(result.kept)
    assert np.all(np.diff(result.kept) > 0)  # first copies, in the original order


def test_class_pull_penalty_by_hand():
    E = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0], [1.0, 1.0]], dtype=torch.float64)
    y = np.array([6, 6, 6, 1])
    # Pairs of class 6: distances 5, 10, 5.
    assert float(class_pull_penalty(E, y, 6)) == pytest.approx(20.0)
    assert float(class_pull_penalty(E, y, 6, weight=0.5, reduction="mean")) == pytest.approx(0.5 * 20.0 / 3)


def test_penalty_pulls_the_class_together(iris):
    X, y = iris
    plain = sammon(X, device="cpu")
    pulled = sammon(X, penalty=lambda E: class_pull_penalty(E, y, 2, weight=0.05, reduction="mean"), device="cpu")

    def spread(E):
        return pdist(E[y == 2]).mean()

    # The regulariser moves the minimum: class 2 shrinks (measured 0.58x), and the
    # stress pays for it (0.0040 -> 0.0151).
    assert spread(pulled.embedding) < 0.8 * spread(plain.embedding)
    assert pulled.stress > plain.stress
    assert len(pulled.penalty_history) == len(pulled.history)
    assert pulled.penalty_history[-1] < pulled.penalty_history[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_matches_cpu(iris):
    X, _ = iris
    cpu = sammon(X, device="cpu")
    gpu = sammon(X, device="cuda")
    # Both float64; the line searches see rounding-level differences, so the two runs
    # stop at slightly different points of the same minimum.
    assert gpu.stress == pytest.approx(cpu.stress, rel=1e-5)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(optimizer="newton"), ValueError, "optimizer"),
    (dict(optimizer="sgd"), ValueError, "lr"),
    (dict(lr=-1.0), ValueError, "lr"),
    (dict(init="spectral"), ValueError, "init"),
    (dict(init=np.zeros((3, 2))), ValueError, "init"),
    (dict(on_duplicates="ignore"), ValueError, "on_duplicates"),
    (dict(penalty=3.0), TypeError, "penalty"),
    (dict(n_components=20), ValueError, "n_components"),
    (dict(max_iter=-1), ValueError, "max_iter"),
    (dict(n_components=4), ValueError, "init"),  # PCA of 3 features gives 3 components
])
def test_sammon_bad_arguments(kwargs, error, match):
    X = np.random.default_rng(5).normal(size=(15, 3))
    with pytest.raises(error, match=match):
        sammon(X, **{"device": "cpu", **kwargs})


def test_divergence_is_reported():
    X = np.random.default_rng(5).normal(size=(15, 3))
    # Steps 1e4 times too long make the map explode within ~40 iterations.
    with pytest.raises(FloatingPointError, match="lower lr"):
        sammon(X, optimizer="sgd", lr=1e4, device="cpu")


def test_stress_bad_inputs():
    d = torch.ones(3, dtype=torch.float64)
    with pytest.raises(TypeError, match="torch tensors"):
        sammon_stress(np.ones(3), d)
    with pytest.raises(ValueError, match="same length"):
        sammon_stress(d, torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="d_star must be > 0"):
        sammon_stress(torch.tensor([1.0, 0.0, 2.0]), d)
    with pytest.raises(ValueError, match="X must be 2-D"):
        sammon(np.ones(5), device="cpu")
    with pytest.raises(ValueError, match="at least 2 points"):
        class_pull_penalty(torch.zeros(3, 2), [0, 1, 2], 1)
    with pytest.raises(TypeError, match="E must be a torch tensor"):
        class_pull_penalty(np.zeros((3, 2)), [1, 1, 2], 1)
    with pytest.raises(ValueError, match="one label per row"):
        class_pull_penalty(torch.zeros(3, 2), [1, 1], 1)
