"""UMAP (McInnes, Healy and Melville, 2018) in PyTorch: a fuzzy k-NN graph, cross-entropy, negative sampling.

Graph. Each point i trusts its k - 1 nearest neighbours (k counts i itself, as
in umap-learn) with distances d_ij (not squared). With rho_i the distance to
its nearest neighbour and sigma_i set by a search so that

    sum_j exp(-(d_ij - rho_i) / sigma_i) = log2(k),

the directed weights are v_{j|i} = exp(-max(0, d_ij - rho_i) / sigma_i): the
nearest neighbour always gets weight 1 (every point is connected). The fuzzy
union symmetrises them: v_ij = v_{j|i} + v_{i|j} - v_{j|i} v_{i|j}.

Embedding. A curve fitted to ``min_dist`` gives the low-dimensional
similarity q_ij = (1 + a ||e_i - e_j||^(2b))^-1, and the loss is the
cross-entropy of two sets of fuzzy edges,

    C = sum_{i != j} v_ij log(v_ij / q_ij) + (1 - v_ij) log((1 - v_ij) / (1 - q_ij)).

Its first term pulls along the graph's edges; the second pushes all other
pairs apart. Unlike t-SNE's KL, C has no normaliser Z coupling all pairs, so
it is a sum of independent terms and stochastic gradient descent applies:
each epoch samples every edge with probability v_ij / max v (attraction on
both ends) and, per sampled edge, ``negative_sample_rate`` random points
treated as v = 0 (repulsion on the edge's head). Here all sampled edges of an
epoch move at once (tensor operations, GPU-ready) where umap-learn loops over
them one by one; the step size falls linearly from ``learning_rate`` to 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .neighbors import nearest_neighbors
from .pca import pca
from .utils import as_2d_array, check_n_components, get_device


def fit_ab(min_dist: float = 0.1, spread: float = 1.0) -> tuple[float, float]:
    """a, b of q(d) = (1 + a d^(2b))^-1 fitted (least squares) to 1 for d < min_dist, exp(-(d - min_dist) / spread) beyond."""
    from scipy.optimize import curve_fit

    d = np.linspace(0, 3 * spread, 300)
    target = np.where(d < min_dist, 1.0, np.exp(-(d - min_dist) / spread))
    (a, b), _ = curve_fit(lambda d, a, b: 1.0 / (1.0 + a * d ** (2 * b)), d, target)
    return float(a), float(b)


def smooth_knn_distances(distances: Tensor, n_neighbors: int, n_steps: int = 64,
                         tol: float = 1e-5) -> tuple[Tensor, Tensor]:
    """rho_i and sigma_i for the (n, k - 1) neighbour distances (self excluded), by bisection as in umap-learn.

    sigma_i solves sum_j exp(-max(0, d_ij - rho_i) / sigma_i) = log2(n_neighbors) to ``tol``;
    it is floored at 1e-3 x the mean neighbour distance, as umap-learn does.
    """
    target = math.log2(n_neighbors)
    positive = torch.where(distances > 0, distances, torch.full_like(distances, math.inf))
    rho = positive.min(1).values
    rho = torch.where(rho.isinf(), torch.zeros_like(rho), rho)  # all neighbours at distance 0
    excess = (distances - rho[:, None]).clamp_min(0.0)
    lo, hi = torch.zeros_like(rho), torch.full_like(rho, math.inf)
    sigma = torch.ones_like(rho)
    searching = torch.ones_like(rho, dtype=torch.bool)
    for _ in range(n_steps):
        total = torch.exp(-excess / sigma[:, None]).sum(1)
        searching &= (total - target).abs() >= tol
        too_wide = total > target
        hi = torch.where(searching & too_wide, sigma, hi)
        lo = torch.where(searching & ~too_wide, sigma, lo)
        bisected = torch.where(hi.isinf(), sigma * 2.0, (lo + hi) / 2.0)
        sigma = torch.where(searching, bisected, sigma)
    # umap-learn's means include the point itself (distance 0) among the k.
    floor = 1e-3 * torch.where(rho > 0, distances.sum(1), distances.sum() / len(distances)) / n_neighbors
    return rho, torch.maximum(sigma, floor)


def fuzzy_graph(distances: Tensor, indices: Tensor, n_neighbors: int | None = None) -> Tensor:
    """The symmetric fuzzy graph v_ij from neighbour distances (not squared) and indices, both (n, k - 1).

    ``n_neighbors`` (k) counts the point itself; by default k = columns + 1.
    Returns a coalesced sparse (n, n) tensor.
    """
    n, m = indices.shape
    n_neighbors = m + 1 if n_neighbors is None else n_neighbors
    rho, sigma = smooth_knn_distances(distances, n_neighbors)
    weights = torch.exp(-(distances - rho[:, None]).clamp_min(0.0) / sigma[:, None])
    rows = torch.arange(n, device=indices.device).repeat_interleave(m)
    V = torch.sparse_coo_tensor(torch.stack([rows, indices.reshape(-1)]), weights.reshape(-1), (n, n), check_invariants=False).coalesce()
    Vt = V.t().coalesce()
    return (V + Vt - V * Vt).coalesce()  # fuzzy union: a + b - ab


@dataclass
class UMAPResult:
    """What :func:`umap` returns."""

    embedding: np.ndarray  # (n, n_components)
    graph: Tensor  # the fuzzy graph v_ij, sparse (n, n)
    a: float
    b: float


def umap_gradient_coefficients(d2: Tensor, a: float, b: float) -> tuple[Tensor, Tensor]:
    """Per pair with squared embedding distance d2: the factors c with d(-log q)/de_i = c_att (e_i - e_j)
    and d(-log(1 - q))/de_i = -c_rep (e_i - e_j), q = (1 + a d2^b)^-1.

    c_att = 2ab d2^(b-1) / (1 + a d2^b), c_rep = 2b / ((0.001 + d2)(1 + a d2^b)); the 0.001 keeps
    coinciding points finite, as in umap-learn.
    """
    d2b = d2.pow(b)
    attract = 2.0 * a * b * d2.clamp_min(1e-12).pow(b - 1.0) / (1.0 + a * d2b)
    repel = 2.0 * b / ((1e-3 + d2) * (1.0 + a * d2b))
    return attract, repel


def umap(X, n_components: int = 2, n_neighbors: int = 15, *, min_dist: float = 0.1, n_epochs: int | None = None,
         learning_rate: float = 1.0, negative_sample_rate: int = 5, device=None, seed: int = 0) -> UMAPResult:
    """UMAP of the rows of ``X`` (see the module docstring).

    ``n_neighbors`` counts the point itself, as in umap-learn. ``n_epochs``
    defaults to 500 below 10,000 points and 200 above (umap-learn's choice).
    The start is PCA scaled to [-10, 10] (umap-learn starts from a spectral
    embedding of the graph).
    """
    X = as_2d_array(X, "X")
    n = len(X)
    n_components = check_n_components(n_components, n - 1)
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, int) or not 2 <= n_neighbors <= n:
        raise ValueError(f"n_neighbors must be an int between 2 and n_samples = {n}, got {n_neighbors!r}")
    if n_epochs is None:
        n_epochs = 500 if n <= 10_000 else 200
    device = torch.device(device) if device is not None else get_device()
    generator = torch.Generator(device=device).manual_seed(seed)

    distances, indices = nearest_neighbors(X, n_neighbors - 1, device=device)
    V = fuzzy_graph(distances.sqrt(), indices, n_neighbors)
    head, tail = V.indices()
    weight = V.values()
    keep = weight >= weight.max() / n_epochs  # umap-learn drops edges too weak to be sampled once
    head, tail, chance = head[keep], tail[keep], (weight[keep] / weight.max()).float()
    a, b = fit_ab(min_dist)

    E = torch.as_tensor(pca(X, n_components), dtype=torch.float32, device=device)
    E = 10.0 * E / E.abs().max()
    for epoch in range(n_epochs):
        alpha = learning_rate * (1.0 - epoch / n_epochs)
        sampled = torch.rand(len(chance), generator=generator, device=device) < chance
        i, j = head[sampled], tail[sampled]
        diff = E[i] - E[j]
        attract, _ = umap_gradient_coefficients((diff * diff).sum(1), a, b)
        move = (attract[:, None] * diff).clamp(-4.0, 4.0) * alpha
        update = torch.zeros_like(E).index_add_(0, i, -move).index_add_(0, j, move)
        # Negative samples: random points, pushed away from each sampled edge's head.
        i_neg = i.repeat_interleave(negative_sample_rate)
        k = torch.randint(0, n, (len(i_neg),), generator=generator, device=device)
        diff = E[i_neg] - E[k]
        _, repel = umap_gradient_coefficients((diff * diff).sum(1), a, b)
        repel = torch.where(k == i_neg, torch.zeros_like(repel), repel)
        update.index_add_(0, i_neg, (repel[:, None] * diff).clamp(-4.0, 4.0) * alpha)
        E = E + update
    return UMAPResult(E.cpu().numpy().astype(np.float64), V, a, b)
