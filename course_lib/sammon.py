"""Sammon's map (J. W. Sammon, "A nonlinear mapping for data structure analysis", 1969).

Place n points e_1..e_n in a low dimension so that their distances d_ij =
||e_i - e_j|| match the data's distances d*_ij = ||x_i - x_j||, by minimising
the stress

    E = 1 / (sum_{i<j} d*_ij) * sum_{i<j} (d*_ij - d_ij)^2 / d*_ij.

Dividing each squared error by d*_ij is the whole idea: an error of 1 on a pair
at distance 2 costs 50 times more than the same error on a pair at distance 100,
so the map keeps small distances (local structure) first. The factor in front
only makes E scale-free (0 for a perfect map, comparable across data sets).

Both distance lists are "condensed", one entry per pair i < j, in the order of
``torch.pdist`` and ``scipy.spatial.distance.pdist``. A pair of duplicate points
has d*_ij = 0 and the stress divides by it: :func:`sammon` refuses such data
unless told to drop the copies.

Sammon minimised E with a diagonal Newton step scaled by a "magic factor"
MF ~ 0.3-0.4, which is a learning rate: MF = 1 jumps to the minimum of each
coordinate's local parabola, MF > 1 overshoots it. ``optimizer="sammon"`` is
that method; ``"lbfgs"``, ``"adam"`` and ``"sgd"`` are PyTorch's optimisers on
the same stress, through autograd.

Notation: E is the stress, as in Sammon's paper; in the code ``E`` is the
embedding matrix, one row e_i per point, as in the other chapters, and the
stress is called ``stress``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from .pca import pca
from .utils import as_2d_array, check_n_components, get_device

OPTIMIZERS = ("lbfgs", "sammon", "adam", "sgd")


def sammon_stress(d_star: Tensor, d: Tensor) -> Tensor:
    """E = (1 / sum d*_ij) sum_{i<j} (d*_ij - d_ij)^2 / d*_ij, for condensed distance vectors.

    ``d_star`` holds the data's distances d*_ij and ``d`` the embedding's d_ij,
    one entry per pair i < j (as from ``torch.pdist``). Every d*_ij must be > 0.
    """
    if not isinstance(d_star, Tensor) or not isinstance(d, Tensor):
        raise TypeError(f"d_star and d must be torch tensors, got {type(d_star).__name__} and {type(d).__name__}")
    if d_star.dim() != 1 or d_star.shape != d.shape:
        raise ValueError(f"d_star and d must be condensed distance vectors (1-D, one entry per pair) of the "
                         f"same length, got shapes {tuple(d_star.shape)} and {tuple(d.shape)}")
    if bool((d_star <= 0).any()):
        raise ValueError("every d_star must be > 0: a pair at distance 0 (duplicate points) divides by zero")
    return ((d_star - d) ** 2 / d_star).sum() / d_star.sum()


def class_pull_penalty(E: Tensor, y, cls, weight: float = 1.0, reduction: str = "sum") -> Tensor:
    """weight * sum_{i<j} 1(y_i = cls and y_j = cls) d_ij: pulls the points of one class together.

    The regulariser of the Sammon exercise: added to the stress, it moves the
    minimum towards maps where class ``cls`` is compact. ``reduction="mean"``
    averages over the class's pairs instead of summing, which keeps the term's
    size independent of the class size. Use it as ``penalty=lambda E:
    class_pull_penalty(E, y, 6, 0.01)`` in :func:`sammon` (with ``y`` indexed
    by ``result.kept`` or by :func:`drop_duplicates` if duplicates are dropped).
    """
    if not isinstance(E, Tensor):
        raise TypeError(f"E must be a torch tensor (the embedding), got {type(E).__name__}")
    if E.dim() != 2:
        raise ValueError(f"E must be 2-D (n_samples, n_components), got shape {tuple(E.shape)}")
    y = np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y)
    if y.shape != (len(E),):
        raise ValueError(f"y must hold one label per row of E, shape ({len(E)},), got {y.shape}")
    if reduction not in ("sum", "mean"):
        raise ValueError(f'reduction must be "sum" or "mean", got {reduction!r}')
    members = torch.as_tensor(np.flatnonzero(y == cls), device=E.device)
    if len(members) < 2:
        raise ValueError(f"class {cls!r} needs at least 2 points in y to be pulled together, found {len(members)}")
    d = torch.pdist(E[members])
    return weight * (d.sum() if reduction == "sum" else d.mean())


def drop_duplicates(X) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``X`` with every repeated row removed, and the indices kept (first copies, in order)."""
    X = as_2d_array(X, "X", min_rows=1)
    _, first = np.unique(X, axis=0, return_index=True)
    kept = np.sort(first)
    return X[kept], kept


def sammon_derivatives(d_star: Tensor, E: Tensor) -> tuple[Tensor, Tensor]:
    """Sammon's closed-form dE/de_pq and d^2E/de_pq^2 (his equations), each of E's shape.

    With c = sum_{i<j} d*_ij and the sums over j != p:

        dE/de_pq     = -(2/c) sum_j (d*_pj - d_pj) / (d*_pj d_pj) (e_pq - e_jq)
        d^2E/de_pq^2 = -(2/c) sum_j [ (d*_pj - d_pj) / (d*_pj d_pj) - (e_pq - e_jq)^2 / d_pj^3 ]

    (the second is Sammon's expression after simplifying (1/(d* d)) (1/d) (d*/d)
    to 1/d^3). ``d_star`` is condensed, ``E`` is (n, k); needs d_pj > 0.
    """
    n = len(E)
    i, j = torch.triu_indices(n, n, 1, device=E.device)
    D_star = torch.zeros(n, n, dtype=E.dtype, device=E.device)
    D_star[i, j] = d_star.to(E.dtype)
    D_star = D_star + D_star.T
    D = torch.cdist(E, E)
    # The diagonal (j = p) is not in the sums: give it d* = d = 1 and zero weights below.
    D_star.fill_diagonal_(1.0)
    D.fill_diagonal_(1.0)
    A = (D_star - D) / (D_star * D)
    A.fill_diagonal_(0.0)
    B = D.pow(-3)
    B.fill_diagonal_(0.0)
    c = d_star.sum()
    # sum_j A_pj (e_pq - e_jq) = rowsum(A) e_pq - (A E)_pq, and the same expansion for B:
    # sum_j B_pj (e_pq - e_jq)^2 = rowsum(B) e_pq^2 - 2 e_pq (B E)_pq + (B E^2)_pq.
    grad = -2.0 / c * (A.sum(1, keepdim=True) * E - A @ E)
    curvature = B.sum(1, keepdim=True) * E**2 - 2.0 * E * (B @ E) + B @ E**2
    hess_diag = -2.0 / c * (A.sum(1, keepdim=True) - curvature)
    return grad, hess_diag


@dataclass
class SammonResult:
    """What :func:`sammon` returns."""

    embedding: np.ndarray  # (n_kept, n_components)
    stress: float  # E at the final embedding
    history: list = field(default_factory=list)  # E before each iteration, the final E last
    kept: np.ndarray | None = None  # rows of X that were embedded (all, unless duplicates were dropped)
    penalty_history: list = field(default_factory=list)  # the penalty alongside, when there is one
    n_iter: int = 0


def _initial_embedding(X: np.ndarray, init, n_components: int, d_star_mean_sq: float, seed: int) -> np.ndarray:
    n = len(X)
    if isinstance(init, str) and init == "pca":
        if n_components > min(X.shape):
            raise ValueError(f'init="pca" gives at most min(n_samples, n_features) = {min(X.shape)} '
                             f'components, n_components is {n_components}: use init="random"')
        # Principal coordinates: distances are those of the data projected on the
        # principal plane, already on the data's scale.
        return pca(X, n_components)
    if isinstance(init, str) and init == "random":
        # Scaled so that the mean squared distance E||e_i - e_j||^2 = 2 k s^2 matches the data's.
        scale = np.sqrt(d_star_mean_sq / (2 * n_components))
        return scale * np.random.default_rng(seed).standard_normal((n, n_components))
    if isinstance(init, str):
        raise ValueError(f'init must be "pca", "random" or an array, got {init!r}')
    E = as_2d_array(init, "init")
    if E.shape != (n, n_components):
        raise ValueError(f"init must have shape ({n}, {n_components}), got {E.shape}")
    return E


def _make_optimizer(name: str, U: Tensor, lr: float | None):
    if name == "lbfgs":
        # One iteration per step() call so that the loop below sees every iteration
        # (max_eval bounds the line search, which would otherwise get max_iter * 5 // 4 = 1
        # evaluation); the tolerances are off because the loop applies `tol` itself.
        return torch.optim.LBFGS([U], lr=1.0 if lr is None else lr, max_iter=1, max_eval=25, history_size=20,
                                 tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
    if name == "adam":
        # Adam's steps are about lr long in each coordinate of U: 2% of the mean distance.
        return torch.optim.Adam([U], lr=0.02 if lr is None else lr)
    if name == "sgd":
        if lr is None:
            raise ValueError('optimizer="sgd" needs a learning rate lr: the stress gradient shrinks like '
                             '1 / n_samples, so no default fits every data set. optimizer="sammon" '
                             'takes the magic factor instead, which does not depend on n.')
        return torch.optim.SGD([U], lr=lr)
    return None  # "sammon": the step is written out in sammon()


def sammon(X, n_components: int = 2, *, init="pca", optimizer: str = "lbfgs", lr: float | None = None,
           max_iter: int = 500, tol: float = 1e-7, penalty: Callable[[Tensor], Tensor] | None = None,
           on_duplicates: str = "raise", device=None, seed: int = 0) -> SammonResult:
    """Sammon's map of the rows of ``X`` into ``n_components`` dimensions.

    ``init``: ``"pca"`` (principal coordinates), ``"random"`` (Gaussian, seeded by
    ``seed``) or an (n, n_components) array. ``optimizer``:

    - ``"lbfgs"`` (default): L-BFGS with a strong-Wolfe line search;
    - ``"sammon"``: Sammon's step e_pq <- e_pq - lr * (dE/de_pq) / |d^2E/de_pq^2|,
      with ``lr`` the magic factor (default 0.3);
    - ``"adam"``: Adam (default lr: 2% of the mean data distance);
    - ``"sgd"``: plain gradient descent (``lr`` required).

    The PyTorch optimisers move the map divided by L, the mean data distance,
    so their ``lr`` is in units of L whatever the data's units.

    ``penalty(E) -> scalar tensor`` is added to the stress (the regularisation
    exercise, e.g. :func:`class_pull_penalty`); with ``"sammon"`` its gradient
    is used but not its curvature. Stops after ``max_iter`` iterations or when
    an iteration changes the objective by at most ``tol`` times its value.
    Duplicate rows (d*_ij = 0) raise a ``ValueError`` unless
    ``on_duplicates="drop"``, which embeds the first copy of each; ``kept`` in
    the result says which rows. Runs in float64 (float32 on Apple's MPS) on
    ``device``.
    """
    X = as_2d_array(X, "X")
    n_components = check_n_components(n_components, X.shape[0] - 1)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if on_duplicates not in ("raise", "drop"):
        raise ValueError(f'on_duplicates must be "raise" or "drop", got {on_duplicates!r}')
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 0:
        raise ValueError(f"max_iter must be a non-negative int, got {max_iter!r}")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if not (isinstance(tol, (int, float)) and tol >= 0):
        raise ValueError(f"tol must be a number >= 0, got {tol!r}")
    if penalty is not None and not callable(penalty):
        raise TypeError("penalty must be a function penalty(E) -> scalar tensor")

    X_unique, kept = drop_duplicates(X)
    if len(kept) < len(X):
        if on_duplicates == "raise":
            raise ValueError(f"X has {len(X) - len(kept)} duplicate points (rows equal to an earlier row): "
                             f"their distance d*_ij = 0 makes the stress divide by zero. Pass "
                             f'on_duplicates="drop" to embed the first copy of each and get the kept rows '
                             f"in result.kept.")
        X = X_unique
        n_components = check_n_components(n_components, X.shape[0] - 1)
    else:
        kept = np.arange(len(X))

    device = torch.device(device) if device is not None else get_device()
    dtype = torch.float32 if device.type == "mps" else torch.float64
    d_star = torch.pdist(torch.as_tensor(X, dtype=dtype, device=device))
    E0 = _initial_embedding(X, init, n_components, float((d_star**2).mean()), seed)
    # The optimisers move U = E / L with L the mean data distance: L-BFGS's fixed
    # thresholds (curvature pairs below 1e-10 are ignored) and Adam's step length
    # then mean the same for data in millimetres or in kilometres. The stress itself
    # does not change when data and map are scaled together.
    L = float(d_star.mean())
    U = torch.tensor(E0 / L, dtype=dtype, device=device, requires_grad=True)
    opt = _make_optimizer(optimizer, U, lr)
    magic_factor = 0.3 if lr is None else lr  # only used by optimizer="sammon"

    history, penalty_history = [], []
    last = {}  # the objective and gradient at the last point evaluated, to skip repeats

    def closure():
        if last and torch.equal(last["U"], U):
            U.grad = last["grad"].clone()
            return last["loss"]
        U.grad = None
        E = L * U
        stress = sammon_stress(d_star, torch.pdist(E))
        extra = penalty(E) if penalty is not None else None
        loss = stress if extra is None else stress + extra
        loss.backward()
        last.update(U=U.detach().clone(), grad=U.grad.clone(), loss=loss.detach(),
                    stress=float(stress.detach()), penalty=None if extra is None else float(extra.detach()))
        return loss.detach()

    def sammon_step():
        closure()  # sets U.grad: the stress's gradient plus the penalty's
        with torch.no_grad():
            _, hess_diag = sammon_derivatives(d_star, L * U)
            # Chain rule for E = L U: the gradient in U is L times the gradient in e_pq and the
            # curvature L^2 times, so this step is Sammon's step on e_pq, divided by L.
            U.sub_(magic_factor * U.grad / (L**2 * hess_diag.abs()))

    def record():
        history.append(last["stress"])
        if penalty is not None:
            penalty_history.append(last["penalty"])

    objective = float(closure())
    n_iter = 0
    for _ in range(max_iter):
        record()
        if opt is None:
            sammon_step()
        else:
            opt.step(closure)
        n_iter += 1
        new_objective = float(closure())  # evaluated once here, then reused by the next step
        if not np.isfinite(new_objective):
            raise FloatingPointError(f"the objective became {new_objective} at iteration {n_iter}: the steps "
                                     f"of optimizer={optimizer!r} are too large, lower lr (it was {lr})")
        converged = abs(objective - new_objective) <= tol * abs(objective)
        objective = new_objective
        if converged:
            break
    record()
    return SammonResult((L * U).detach().cpu().numpy(), last["stress"], history, kept, penalty_history, n_iter)
