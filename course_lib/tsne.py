"""t-SNE (van der Maaten and Hinton, 2008), exact, in PyTorch.

Data space. For each point i a Gaussian centred on x_i gives the conditional
probability that i picks j as its neighbour,

    p_{j|i} = exp(-beta_i ||x_i - x_j||^2) / sum_{k != i} exp(-beta_i ||x_i - x_k||^2),
    beta_i  = 1 / (2 sigma_i^2),

and sigma_i is chosen by a search (Newton's method on log beta_i, with a bisection
safeguard: see conditional_probabilities) so that P_i has a given perplexity,
Perp(P_i) = 2^{H(P_i)} with H in bits (here: exp(H) with H in nats), a smooth
"effective number of neighbours". Symmetric SNE averages the two conditionals,

    p_ij = (p_{j|i} + p_{i|j}) / (2n).

Embedding space. A Student-t kernel with one degree of freedom, whose heavy
tail lets moderately far points sit far apart (the crowding problem):

    q_ij = (1 + ||e_i - e_j||^2)^-1 / sum_{k != l} (1 + ||e_k - e_l||^2)^-1.

Loss and gradient:

    C = KL(P || Q) = sum_{i != j} p_ij log(p_ij / q_ij),
    dC/de_i = 4 sum_j (p_ij - q_ij) (1 + ||e_i - e_j||^2)^-1 (e_i - e_j).

Every matrix here is a full (n, n) tensor with a zero diagonal, which is what
the gradient's matrix products want and what a GPU computes fastest; the cost
is O(n^2) memory and time per step (fine up to ~10^4 points on a GPU).
scikit-learn stores the same P "condensed" (the upper triangle as a vector):
``P[np.triu_indices(n, 1)]`` is scikit-learn's P.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from .pca import pca
from .utils import as_2d_array, check_n_components, get_device

# The floor scikit-learn puts under every p_ij and q_ij so that log() stays finite.
MACHINE_EPSILON = float(np.finfo(np.float64).eps)
# The Newton search moves log(beta) by at most 1 per step (beta by a factor e): measured on
# digits, wine and breast-cancer, longer steps overshoot the cliff where H drops to 0.
_MAX_STEP = 1.0
# On a CPU, n x n work goes in blocks of rows of about this many bytes (a core's L2 cache
# here), each block used several times while it is in cache. Perplexity search: 1 and 2 MB
# measured alike on digits, 0.5 MB 15% slower, whole (n, n) matrices 1.5x slower.
_BLOCK_BYTES = 2 ** 20


def _rows_per_block(device: torch.device, row_bytes: int, budget: int = _BLOCK_BYTES) -> int:
    """Rows of ``row_bytes`` each that fit in ``budget`` bytes on a CPU; on a GPU, no limit (one block)."""
    if device.type != "cpu":
        return 2 ** 62
    return max(1, budget // row_bytes)


def _float_dtype(device: torch.device) -> torch.dtype:
    # Apple's MPS has no float64; everywhere else the probabilities are computed in float64.
    return torch.float32 if device.type == "mps" else torch.float64


def _check_perplexity(perplexity, n: int) -> float:
    if isinstance(perplexity, bool) or not isinstance(perplexity, (int, float, np.integer, np.floating)):
        raise TypeError(f"perplexity must be a number, got {type(perplexity).__name__}")
    if not 1 <= perplexity <= n - 1:
        raise ValueError(f"perplexity must be between 1 and n_samples - 1 = {n - 1} "
                         f"(an effective number of neighbours), got {perplexity}")
    return float(perplexity)


def squared_distances(X, device=None) -> Tensor:
    """D_ij = ||x_i - x_j||^2 for the rows of ``X``, as an (n, n) tensor on ``device``.

    Computed as ||x_i||^2 + ||x_j||^2 - 2 x_i . x_j (one matrix product), as
    scikit-learn does, with rounding below zero clipped and an exact zero diagonal.
    """
    device = torch.device(device) if device is not None else get_device()
    X = torch.as_tensor(as_2d_array(X, "X"), device=device, dtype=_float_dtype(device))
    sq = (X * X).sum(1)
    D = torch.addmm(sq[:, None] + sq[None, :], X, X.T, alpha=-2.0).clamp_min_(0.0)
    D.fill_diagonal_(0.0)
    return D


def _as_squared_distances(X, precomputed: bool, device) -> Tensor:
    if not precomputed:
        return squared_distances(X, device)
    device = torch.device(device) if device is not None else get_device()
    D = torch.as_tensor(as_2d_array(X, "X (squared distances)"), device=device, dtype=_float_dtype(device))
    if D.shape[0] != D.shape[1]:
        raise ValueError(f"with precomputed=True, X must be the square (n, n) matrix of squared "
                         f"distances, got shape {tuple(D.shape)}")
    if bool(D.min() < 0):
        raise ValueError("with precomputed=True, X must hold squared distances, which are >= 0")
    return D


def conditional_probabilities(X, perplexity: float = 30.0, *, precomputed: bool = False, tol: float = 1e-10,
                              max_steps: int = 100, device=None) -> tuple[Tensor, Tensor]:
    """P_{j|i} with perplexity ``perplexity`` for every row, by Newton's method on log(beta_i).

    ``X`` is the data (n, d), or with ``precomputed=True`` the (n, n) matrix of
    squared distances D_ij = ||x_i - x_j||^2. Returns ``(P, beta)``: P[i, j] =
    p_{j|i} (each row sums to 1, zero diagonal) and beta_i = 1 / (2 sigma_i^2),
    so sigma_i = (2 beta_i)^(-1/2).

    With Z_i = sum_{k != i} exp(-beta D_ik), the entropy of row i (in nats) is

        H(P_i) = -sum_j p_{j|i} log p_{j|i} = log Z_i + beta E_{P_i}[D_i],

    and since d log Z_i / d beta = -E_{P_i}[D_i] and d E_{P_i}[D_i] / d beta = -Var_{P_i}[D_i],

        dH/d beta = -beta Var_{P_i}[D_i] <= 0,   so   dH/d(log beta) = -beta^2 Var_{P_i}[D_i]:

    H falls as beta grows, and exactly one beta_i gives H(P_i) = log(perplexity).
    Newton's method on u = log(beta_i) (where H is close to linear: exactly so for
    Gaussian data) finds it in a handful of steps,

        u <- u + (H(P_i) - log(perplexity)) / (beta_i^2 Var_{P_i}[D_i]),

    inside a bracket of the root that every step narrows; a step that would leave
    the bracket is replaced by bisection (the safe, slow search scikit-learn runs
    from beta = 1). A row stops once |H - log(perplexity)| <= ``tol`` (scikit-learn
    stops at 1e-5; Newton reaches 1e-10 for about one step more), or after
    ``max_steps``. The rows step together as tensor operations: on a CPU in blocks
    that fit its cache, on a GPU all at once.
    """
    D = _as_squared_distances(X, precomputed, device)
    n = D.shape[0]
    perplexity = _check_perplexity(perplexity, n)
    tol = _check_positive(tol, "tol")
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")
    P = torch.empty_like(D)
    beta = D.new_empty(n)
    # A block of rows whose distances, squares and weights stay in the CPU's cache between
    # the exp() and the sums that read them back.
    block = _rows_per_block(D.device, D.element_size() * n)
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        self_index = torch.arange(rows.start, rows.stop, device=D.device)
        within = torch.arange(len(self_index), device=D.device)
        # Measuring each row from its nearest neighbour multiplies row i of exp(-beta D)
        # by a constant, so P is unchanged, but the largest term becomes exp(0) = 1 and
        # the sum can no longer underflow to 0 (for a far outlier it would, and
        # scikit-learn's search then misses the perplexity).
        D_rows = D[rows].clone()
        D_rows[within, self_index] = math.inf
        D_rows -= D_rows.min(dim=1, keepdim=True).values
        D_rows[within, self_index] = 0.0
        _, beta[rows] = _search_beta(D_rows, math.log(perplexity), tol, max_steps, self_index, out=P[rows])
    return P, beta


def _search_beta(D: Tensor, target: float, tol: float, max_steps: int, self_index: Tensor | None,
                 out: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Row-wise Newton search in log(beta) with a bisection safeguard; returns (P, beta).

    ``D`` is (n, m): row i holds the squared distances from point i, already shifted
    so that its nearest neighbour is at 0. ``self_index[i]`` is the column of point
    i itself in its row (its weight is set to 0), or None when no row holds itself.
    P is written into ``out`` when it is given.
    """
    n = D.shape[0]
    within = torch.arange(n, device=D.device)
    log_beta = _starting_log_beta(D, target, self_index is not None)
    lo = torch.full_like(log_beta, -math.inf)  # the bracket [lo, hi] of the root, in log(beta)
    hi = torch.full_like(log_beta, math.inf)
    weights = torch.empty_like(D) if out is None else out  # w_ij = exp(-beta_i D_ij), rewritten every step
    products = torch.empty_like(D)  # w_ij D_ij, then w_ij D_ij^2 (a buffer reused in place: no allocations)
    for step in range(max_steps):
        beta = log_beta.exp()
        # Terms below e^-700 are clipped up to it: 300 orders of magnitude under the
        # largest term (e^0) they change no sum, and it keeps exp() off its slow subnormal path.
        torch.mul(D, -beta[:, None], out=weights).clamp_min_(-700.0).exp_()
        if self_index is not None:
            weights[within, self_index] = 0.0  # k != i
        Z = weights.sum(1)
        mean = torch.mul(weights, D, out=products).sum(1) / Z  # E_P[D]
        gap = torch.log(Z) + beta * mean - target  # H(P_i) - log(perplexity)
        searching = gap.abs() > tol
        if not bool(searching.any()) or step == max_steps - 1:
            break
        variance = (products.mul_(D).sum(1) / Z - mean * mean).clamp_min_(0.0)  # Var_P[D] = E_P[D^2] - E_P[D]^2
        # H falls as beta grows: a positive gap means the root lies above log(beta).
        lo = torch.where(gap > 0, log_beta, lo)
        hi = torch.where(gap > 0, hi, log_beta)
        newton = log_beta + (gap / (beta * beta * variance)).nan_to_num(0.0).clamp(-_MAX_STEP, _MAX_STEP)
        # A Newton step that leaves the bracket (far from the root) is replaced by bisection,
        # or, while one end of the bracket is still open, by a step of _MAX_STEP towards it.
        inside = (newton > lo) & (newton < hi)
        bisect = torch.where(lo.isinf(), hi - _MAX_STEP, torch.where(hi.isinf(), lo + _MAX_STEP, (lo + hi) / 2.0))
        # Rows that have converged keep their beta, so their weights are final whenever the loop ends.
        log_beta = torch.where(searching, torch.where(inside, newton, bisect), log_beta)
    return weights.div_(Z[:, None]), beta


def _starting_log_beta(D: Tensor, target: float, holds_self: bool) -> Tensor:
    """log(beta_i) to start the search from, from the squared distance D_k to the k-th neighbour.

    If the k = perplexity nearest neighbours of a point were spread evenly through a
    ball of dimension m, Z and E_P[D] would be Gamma integrals and H = log k would give
    beta D_k = exp(1 + (2/m) log Gamma(m/2 + 1)): e = 2.7 for m = 2, 3.8 for m = 4.
    Digits, wine and breast-cancer are about 3 to 4 dimensional at that scale, so we
    take beta = 3.5 / D_k. From there every row of these three data sets reached
    |H - log(perplexity)| <= 1e-10 within 6 Newton steps at perplexities 30 to 100,
    and within 10 at perplexity 5.
    """
    # D_k is estimated from every 4th column, 4x cheaper than from all.
    stride = 4 if D.shape[1] >= 16 * math.exp(target) else 1
    columns = D[:, ::stride]
    k = min(max(round(math.exp(target) / stride), 1) + holds_self, columns.shape[1])
    D_k = torch.kthvalue(columns, k, dim=1).values
    # Duplicate points can put that neighbour at distance 0: then start from the mean distance.
    D_k = torch.maximum(D_k, 1e-3 * columns.mean(1)).clamp_min(1e-300)
    return math.log(3.5) - torch.log(D_k)


def joint_probabilities(X, perplexity: float = 30.0, *, precomputed: bool = False, device=None) -> Tensor:
    """The symmetric joint P of t-SNE: p_ij = (p_{j|i} + p_{i|j}) / (2n), an (n, n) tensor.

    ``X`` and ``precomputed`` are as in :func:`conditional_probabilities`. P is
    symmetric with a zero diagonal and sums to 1; as in scikit-learn, every
    off-diagonal entry is floored at machine epsilon so that log(p_ij) is finite.
    With the same squared distances, ``P[np.triu_indices(n, 1)]`` equals
    ``sklearn.manifold._t_sne._joint_probabilities`` to rounding (except for
    far outliers, where scikit-learn's search misses the perplexity).
    """
    P_cond, _ = conditional_probabilities(X, perplexity, precomputed=precomputed, device=device)
    return _symmetrize(P_cond)


def _symmetrize(P_cond: Tensor) -> Tensor:
    # P_cond^T + P_cond, as a transposed copy and an in-place sum: 25% faster than
    # P_cond + P_cond.T, which reads the transpose column by column.
    P = P_cond.T.contiguous().add_(P_cond)
    # Each row of P_cond sums to 1, so the sum is 2n; dividing by the computed sum
    # is what scikit-learn does, and it keeps the total at 1 to the last bit.
    P.div_(P.sum().clamp_min(MACHINE_EPSILON)).clamp_min_(MACHINE_EPSILON)
    P.fill_diagonal_(0.0)
    return P


def student_t_kernel(E: Tensor, start: int = 0, stop: int | None = None) -> Tensor:
    """W_ij = (1 + ||e_i - e_j||^2)^-1 for i != j and W_ii = 0: t-SNE's unnormalised q_ij.

    Rows ``start:stop`` of the (n, n) matrix (all rows by default).
    """
    sq = (E * E).sum(1, keepdim=True)
    ones = torch.ones_like(sq)
    rows = slice(start, stop)
    # 1 + ||e_i - e_j||^2 = (1 + ||e_i||^2) * 1 + 1 * ||e_j||^2 - 2 e_i . e_j is row i of
    # [1 + ||e||^2, 1, -2 E] times column j of [1, ||e||^2, E]^T: one matrix product writes
    # all the entries, with no broadcast additions after it. Rounding can leave
    # ||e_i - e_j||^2 a hair below 0 for coinciding points, which the 1 makes harmless.
    one_plus_D = torch.cat([1.0 + sq[rows], ones[rows], -2.0 * E[rows]], 1) @ torch.cat([ones, sq, E], 1).T
    # An infinite self-distance gives w_ii = 0 without a separate mask (q_ii is not defined).
    one_plus_D.diagonal(start).fill_(math.inf)
    return one_plus_D.reciprocal_()


def _check_P_E(P: Tensor, E: Tensor) -> None:
    if not isinstance(P, Tensor) or not isinstance(E, Tensor):
        raise TypeError(f"P and E must be torch tensors, got {type(P).__name__} and {type(E).__name__}")
    if E.dim() != 2:
        raise ValueError(f"E must be 2-D (n_samples, n_components), got shape {tuple(E.shape)}")
    if P.shape != (len(E), len(E)):
        raise ValueError(f"P must be the ({len(E)}, {len(E)}) joint probability matrix for E's "
                         f"{len(E)} points, got shape {tuple(P.shape)}")


def kl_divergence(P: Tensor, E: Tensor) -> Tensor:
    """C = KL(P || Q) = sum_{i != j} p_ij log(p_ij / q_ij), with Q the Student-t kernel of E.

    ``P`` is the (n, n) joint P, ``E`` the (n, n_components) embedding. As in
    scikit-learn, p_ij and q_ij are floored at machine epsilon inside the log.
    Differentiable: autograd through it gives dC/dE.
    """
    _check_P_E(P, E)
    W = student_t_kernel(E)
    Q = W / W.sum()
    return (P * torch.log(P.clamp_min(MACHINE_EPSILON) / Q.clamp_min(MACHINE_EPSILON))).sum()


def kl_gradient(P: Tensor, E: Tensor) -> Tensor:
    """dC/de_i = 4 sum_j (p_ij - q_ij) (1 + ||e_i - e_j||^2)^-1 (e_i - e_j), for all i at once.

    With q_ij = w_ij / Z it splits into attraction along P and repulsion between all pairs,

        dC/de_i = 4 [ sum_j p_ij w_ij (e_i - e_j)  -  (1/Z) sum_j w_ij^2 (e_i - e_j) ],

    and each sum is rowsum(M)_i e_i - (M E)_i for M = P * W or W * W (elementwise).
    ``P`` must be symmetric, as the joint P is (the formula assumes it). Early
    exaggeration passes alpha P here, as t-SNE implementations do.
    """
    _check_P_E(P, E)
    n, d = E.shape
    E_and_1 = torch.cat([E, torch.ones_like(E[:, :1])], 1).T.contiguous()  # (d + 1, n)
    sums = torch.empty(2, d + 1, n, dtype=E.dtype, device=E.device)  # [P*W, W*W] times [E, 1]
    # W is built a block of rows at a time, which stays in cache while it is used three
    # times: 1.3x faster than whole n x n matrices on digits, with 4 MB blocks (2 MB blocks
    # 10% slower, as each block allocates its W).
    block = _rows_per_block(E.device, E.element_size() * n, 4 * _BLOCK_BYTES)
    Z = 0.0
    for start in range(0, n, block):
        rows = slice(start, start + block)
        W = student_t_kernel(E, start, start + block)
        Z = Z + W.sum()
        # M^T [E, 1] for the rows' block: with M symmetric, [E, 1]^T M^T is the product
        # that BLAS runs several times faster than M [E, 1].
        torch.mm(E_and_1, (P[rows] * W).T, out=sums[0, :, rows])
        torch.mm(E_and_1, W.mul_(W).T, out=sums[1, :, rows])
    attraction, repulsion = (M[d:].T * E - M[:d].T for M in sums)
    return 4.0 * (attraction - repulsion / Z)


def _kl_monitor(P: Tensor):
    """KL(P || Q) as :func:`kl_divergence` computes it, for the optimiser's record every 50 steps.

    sum p_ij log p_ij is computed once, and log max(q_ij, eps) = log max(w_ij, eps Z) - log Z
    in place on one n x n matrix: 4x faster than the differentiable formula.
    """
    p_log_p = float((P * torch.log(P.clamp_min(MACHINE_EPSILON))).sum())
    p_sum = float(P.sum())

    def kl(E: Tensor) -> float:
        W = student_t_kernel(E)
        Z = W.sum()
        log_w = W.clamp_min_(MACHINE_EPSILON * Z).log_()
        return p_log_p - float(torch.dot(P.reshape(-1), log_w.reshape(-1))) + p_sum * math.log(float(Z))

    return kl


@dataclass
class TSNEResult:
    """What :func:`tsne` returns."""

    embedding: np.ndarray  # (n, n_components)
    kl_divergence: float  # KL(P || Q) at the final embedding, in float64
    n_iter: int  # gradient steps taken
    kl_history: list = field(default_factory=list)  # (iteration, KL(P || Q)) every 50 steps
    beta: np.ndarray | None = None  # beta_i = 1 / (2 sigma_i^2) found by the perplexity search
    seconds: dict = field(default_factory=dict)  # wall time of each stage, where the method reports it


def _initial_embedding(X: np.ndarray, init, n_components: int, seed: int) -> np.ndarray:
    n = len(X)
    if isinstance(init, str) and init == "pca":
        if n_components > min(X.shape):
            raise ValueError(f'init="pca" gives at most min(n_samples, n_features) = {min(X.shape)} '
                             f'components, n_components is {n_components}: use init="random"')
        E = pca(X, n_components)
        # scikit-learn's choice: PCA rescaled so that its first axis has standard
        # deviation 1e-4, the scale of the random start (tiny, so early steps are gentle).
        return E / np.std(E[:, 0]) * 1e-4
    if isinstance(init, str) and init == "random":
        return 1e-4 * np.random.default_rng(seed).standard_normal((n, n_components))
    if isinstance(init, str):
        raise ValueError(f'init must be "pca", "random" or an array, got {init!r}')
    E = as_2d_array(init, "init")
    if E.shape != (n, n_components):
        raise ValueError(f"init must have shape ({n}, {n_components}), got {E.shape}")
    return E


def _check_positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return float(value)


def _check_schedule(n, n_iter, exaggeration_iter, n_iter_without_progress, early_exaggeration, learning_rate,
                    momentum, min_gain) -> tuple[float, float, float]:
    """Checks the optimiser's arguments; returns early_exaggeration, learning_rate (resolving "auto"), min_gain."""
    early_exaggeration = _check_positive(early_exaggeration, "early_exaggeration")
    for name, value in (("n_iter", n_iter), ("exaggeration_iter", exaggeration_iter),
                        ("n_iter_without_progress", n_iter_without_progress)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    if isinstance(learning_rate, str):
        if learning_rate != "auto":
            raise ValueError(f'learning_rate must be "auto" or a positive number, got {learning_rate!r}')
        learning_rate = max(n / early_exaggeration / 4.0, 50.0)
    learning_rate = _check_positive(learning_rate, "learning_rate")
    if not isinstance(momentum, (tuple, list)) or len(momentum) != 2 or not all(0 <= m < 1 for m in momentum):
        raise ValueError(f"momentum must be two numbers in [0, 1), one per phase, got {momentum!r}")
    min_gain = _check_positive(min_gain, "min_gain")
    return early_exaggeration, learning_rate, min_gain


def tsne(X, n_components: int = 2, perplexity: float = 30.0, *, early_exaggeration: float = 12.0,
         n_iter: int = 1000, learning_rate="auto", init="pca", exaggeration_iter: int = 250,
         momentum=(0.5, 0.8), min_gain: float = 0.01, n_iter_without_progress: int = 300,
         min_grad_norm: float = 1e-7, dtype: torch.dtype = torch.float32, device=None,
         seed: int = 0) -> TSNEResult:
    """Exact t-SNE of the rows of ``X``: returns the embedding and its KL divergence.

    The optimiser is van der Maaten's, as scikit-learn runs it: gradient descent
    with momentum and per-coordinate gains ("delta-bar-delta": a gain grows by
    0.2 while its gradient keeps its sign and shrinks by a factor 0.8 when it
    flips, never below ``min_gain``), in two phases:

    1. ``exaggeration_iter`` steps with momentum ``momentum[0]`` on
       ``early_exaggeration`` x P, which pulls clusters together early;
    2. steps with momentum ``momentum[1]`` on P up to ``n_iter`` in all.

    ``learning_rate="auto"`` is max(n / early_exaggeration / 4, 50). Every 50
    steps the KL divergence is recorded; phase 2 stops early when it has not
    improved for ``n_iter_without_progress`` steps or when the gradient norm
    falls below ``min_grad_norm``. ``init`` is ``"pca"`` (rescaled to standard
    deviation 1e-4), ``"random"`` (N(0, 1e-4^2), seeded by ``seed``) or an
    (n, n_components) array. The steps run in ``dtype`` (float32: half the
    memory traffic, ample for plotting) on ``device``; P and the final KL are
    float64 (float32 on Apple's MPS). Unlike scikit-learn, the Student-t kernel
    keeps one degree of freedom for every ``n_components``.
    """
    X = as_2d_array(X, "X")
    n = len(X)
    n_components = check_n_components(n_components, n - 1)
    perplexity = _check_perplexity(perplexity, n)
    early_exaggeration, learning_rate, min_gain = _check_schedule(
        n, n_iter, exaggeration_iter, n_iter_without_progress, early_exaggeration, learning_rate, momentum, min_gain)
    device = torch.device(device) if device is not None else get_device()
    if device.type == "mps" and dtype == torch.float64:
        dtype = torch.float32

    E0 = _initial_embedding(X, init, n_components, seed)
    P_cond, beta = conditional_probabilities(X, perplexity, device=device)
    P64 = _symmetrize(P_cond)
    del P_cond
    P = P64.to(dtype)
    exaggerated = {1.0: P}

    def gradient(E, exaggeration):
        if exaggeration not in exaggerated:
            exaggerated[exaggeration] = P * exaggeration
        return kl_gradient(exaggerated[exaggeration], E)

    E, it, kl_history = gradient_descent(
        gradient, _kl_monitor(P), torch.as_tensor(E0, dtype=dtype, device=device),
        n_iter=n_iter, exaggeration_iter=exaggeration_iter, early_exaggeration=early_exaggeration,
        learning_rate=learning_rate, momentum=momentum, min_gain=min_gain,
        n_iter_without_progress=n_iter_without_progress, min_grad_norm=min_grad_norm)
    final_kl = float(kl_divergence(P64, E.to(P64.dtype)))
    return TSNEResult(E.cpu().numpy().astype(np.float64), final_kl, it, kl_history,
                      beta.cpu().numpy())


def gradient_descent(gradient, kl, E: Tensor, *, n_iter: int, exaggeration_iter: int, early_exaggeration: float,
                     learning_rate: float, momentum, min_gain: float, n_iter_without_progress: int,
                     min_grad_norm: float) -> tuple[Tensor, int, list]:
    """t-SNE's two-phase optimiser (see :func:`tsne`), shared by every t-SNE in the course.

    ``gradient(E, exaggeration)`` returns dC/dE with P multiplied by ``exaggeration``,
    ``kl(E)`` returns KL(P || Q) as a float. Returns (E, steps taken, kl_history).
    """
    kl_history = []
    it = 0
    phases = ((min(exaggeration_iter, n_iter), early_exaggeration, momentum[0], None),
              (n_iter, 1.0, momentum[1], n_iter_without_progress))
    for stop, exaggeration, mom, patience in phases:
        update = torch.zeros_like(E)  # each phase starts afresh, as in scikit-learn
        gains = torch.ones_like(E)
        best_kl, best_it = math.inf, it
        while it < stop:
            grad = gradient(E, exaggeration)
            # delta-bar-delta: the last update went against the last gradient, so
            # update * grad < 0 means the gradient kept its sign: grow that gain, else shrink it.
            kept_sign = update * grad < 0.0
            gains = torch.where(kept_sign, gains + 0.2, gains * 0.8).clamp_min_(min_gain)
            grad = grad * gains
            update = mom * update - learning_rate * grad
            E = E + update
            it += 1
            if it % 50 == 0 or it == stop:
                value = kl(E)
                kl_history.append((it, value))
                if value < best_kl:
                    best_kl, best_it = value, it
                elif patience is not None and it - best_it > patience:
                    break
                if float(torch.linalg.vector_norm(grad)) <= min_grad_norm:
                    break
    return E, it, kl_history
