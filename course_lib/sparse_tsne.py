"""t-SNE for large data sets: sparse affinities and repulsion by interpolation on a grid.

Exact t-SNE (:mod:`course_lib.tsne`) stores and sweeps n x n matrices: fine for
a few thousand points, impossible at 70,000 (39 GB per matrix in float64).
Each of its two pieces has a cheap approximation (van der Maaten, 2014;
Linderman et al., 2019).

1. Sparse P. A Gaussian of perplexity u puts almost all of row i's mass on
   its nearest points, so p_{j|i} is computed on the k = 3u nearest
   neighbours only (the perplexity search of :mod:`course_lib.tsne`, on n x k
   distances) and symmetrised, p_ij = (p_{j|i} + p_{i|j}) / (2n), on the
   union of the neighbour lists: O(nk) memory instead of O(n^2).

2. The gradient splits into attraction along P's edges and repulsion
   between all pairs, with w_ij = (1 + ||e_i - e_j||^2)^-1 and Z = sum_{k != l} w_kl:

       dC/de_i = 4 sum_j p_ij w_ij (e_i - e_j)  -  (4 / Z) sum_j w_ij^2 (e_i - e_j).

   Attraction costs O(nk): each edge once, pulling both its ends. The
   repulsion and Z are sums of smooth kernels, K(d) = (1 + ||d||^2)^-1 and
   K^2, over all pairs, written as potentials

       phi(e_i) = sum_j K(e_i - e_j) c_j,

   with charges c_j = 1 (for Z and sum_j w_ij^2) and c_j = e_j (for
   sum_j w_ij^2 e_j). Interpolation makes them cheap: on a regular grid of
   nodes y_m with spacing h (in the 2-D embedding), a point's charge is
   spread to the 4 x 4 nodes around it with cubic Lagrange weights L_m(e_j),
   the potential at every node is a discrete convolution of the node charges
   with K (one FFT, O(G^2 log G) for a G x G grid), and it is read back at
   each point with the same weights:

       phi(e_i) ~ sum_m L_m(e_i) sum_m' K(y_m - y_m') sum_j L_m'(e_j) c_j.

   Cost O(n + G^2 log G) per step instead of O(n^2). What it loses: K varies
   on a length scale of 1 (K^2 on about half that), so the interpolation error
   falls as h^4; with h = 0.5, Z is within ~1e-3 and the repulsive forces within
   1-4% of the all-pairs sums (measured in tests/test_sparse_tsne.py and chapter 3),
   and the final KL on digits within ~1% of exact t-SNE's.

The optimiser is :func:`course_lib.tsne.gradient_descent`, the same as exact t-SNE's.
"""
from __future__ import annotations

import functools
import math
import time

import numpy as np
import torch
from torch import Tensor

from .neighbors import nearest_neighbors
from .tsne import (TSNEResult, _check_perplexity, _check_positive, _check_schedule, _initial_embedding,
                   _search_beta, gradient_descent)
from .utils import as_2d_array, check_n_components, get_device


def sparse_joint_probabilities(X, perplexity: float = 30.0, *, n_neighbors: int | None = None,
                               device=None) -> Tensor:
    """t-SNE's joint P on the ``n_neighbors`` (default 3 x perplexity) nearest neighbours of each point.

    Returns a coalesced sparse (n, n) float64 tensor: symmetric, summing to 1, with
    p_ij = (p_{j|i} + p_{i|j}) / (2n) where p_{j|i} has perplexity ``perplexity``
    over i's neighbours (0 outside them).
    """
    X = as_2d_array(X, "X")
    perplexity = _check_perplexity(perplexity, len(X))
    n_neighbors = _check_n_neighbors(n_neighbors, perplexity, len(X))
    device = torch.device(device) if device is not None else get_device()
    return _affinities(*nearest_neighbors(X, n_neighbors, device=device), perplexity)


def _check_n_neighbors(n_neighbors, perplexity: float, n: int) -> int:
    if n_neighbors is None:
        return min(n - 1, int(3 * perplexity))
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, int) or not perplexity <= n_neighbors <= n - 1:
        raise ValueError(f"n_neighbors must be an int between perplexity ({perplexity:g}) and n_samples - 1 "
                         f"= {n - 1}, got {n_neighbors!r}")
    return n_neighbors


def _affinities(distances: Tensor, indices: Tensor, perplexity: float) -> Tensor:
    # Measured from the nearest neighbour, as in the exact search (P does not change).
    P_cond, _ = _search_beta(distances - distances[:, :1], math.log(perplexity), 1e-10, 100, None)
    return _symmetrize_sparse(P_cond, indices)


def _symmetrize_sparse(P_cond: Tensor, indices: Tensor) -> Tensor:
    n, k = indices.shape
    rows = torch.arange(n, device=indices.device).repeat_interleave(k)
    P = torch.sparse_coo_tensor(torch.stack([rows, indices.reshape(-1)]), P_cond.reshape(-1), (n, n), check_invariants=False)
    P = (P + P.t()).coalesce()  # coalescing sums p_{j|i} + p_{i|j} on edges in both lists
    return P / P.values().sum()


def _cubic_weights(t: Tensor) -> Tensor:
    """Lagrange weights of the nodes at -1, 0, 1, 2 for a point at t in [0, 1): shape (..., 4)."""
    return torch.stack([-t * (t - 1) * (t - 2) / 6, (t + 1) * (t - 1) * (t - 2) / 2,
                        -(t + 1) * t * (t - 2) / 2, (t + 1) * t * (t - 1) / 6], dim=-1)


@functools.lru_cache(maxsize=4)
def _kernel_transforms(G: int, h: float, device, dtype) -> tuple[Tensor, Tensor]:
    """FFTs of K and K^2 at every node offset, laid out for a circular convolution of period 2G (no wrap-around)."""
    offsets = torch.arange(2 * G, device=device, dtype=dtype)
    offsets = torch.where(offsets < G, offsets, offsets - 2 * G) * h
    K = 1.0 / (1.0 + offsets[:, None] ** 2 + offsets[None, :] ** 2)
    return torch.fft.rfft2(K), torch.fft.rfft2(K * K)


def interpolated_repulsion(E: Tensor, spacing: float = 0.5, max_nodes: int = 1024) -> tuple[Tensor, Tensor]:
    """Z = sum_{i != j} w_ij and F_i = sum_j w_ij^2 (e_i - e_j), by interpolation on a grid (2-D ``E``).

    The grid's nodes are ``spacing`` apart (coarser when the embedding is wider
    than ``max_nodes`` nodes). Computed in float64; returns (Z, F) with F (n, 2).
    """
    if E.dim() != 2 or E.shape[1] != 2:
        raise ValueError(f"E must be a 2-D embedding of shape (n, 2), got shape {tuple(E.shape)}")
    E = E.double()
    n = len(E)
    low = E.min(0).values
    span = float((E.max(0).values - low).max())
    # Nodes per axis (4 more for the stencil). The spacing stays fixed while the grid
    # grows with the embedding, so the kernels' transforms are reused from step to step.
    # At least 16 intervals: a small embedding (early steps) gets a finer grid.
    h = min(max(spacing, span / (max_nodes - 4)), max(span, 1e-12) / 16)
    G = math.ceil(span / h) + 4
    u = (E - low) / h + 1.0  # grid coordinates: node m sits at u = m
    base = u.floor().clamp_(1, G - 3)
    weights = _cubic_weights(u - base)  # (n, 2, 4)
    node = base.long()[:, :, None] + torch.arange(-1, 3, device=E.device)  # (n, 2, 4) node indices per axis
    flat = (node[:, 0, :, None] * G + node[:, 1, None, :]).reshape(n, 16)
    w16 = (weights[:, 0, :, None] * weights[:, 1, None, :]).reshape(n, 16)
    # Spread the charges 1, e_x, e_y (relative to the grid's corner) onto the nodes.
    local = (E - low)
    charges = torch.cat([torch.ones(n, 1, dtype=E.dtype, device=E.device), local], dim=1)  # (n, 3)
    grid = torch.zeros(G * G, 3, dtype=E.dtype, device=E.device)
    grid.index_add_(0, flat.reshape(-1), (w16[:, :, None] * charges[:, None, :]).reshape(-1, 3))
    K_hat, K2_hat = _kernel_transforms(G, h, E.device, E.dtype)
    charges_hat = torch.fft.rfft2(grid.T.reshape(3, G, G), s=(2 * G, 2 * G))
    potentials = torch.fft.irfft2(torch.cat([K_hat * charges_hat[:1], K2_hat * charges_hat]), s=(2 * G, 2 * G))
    potentials = potentials[:, :G, :G].reshape(4, G * G).T  # node potentials: K*1, K^2*1, K^2*e_x, K^2*e_y
    at_points = (w16[:, :, None] * potentials[flat]).sum(1)  # (n, 4): read back with the same weights
    # Z leaves out i = j. Its interpolated term, w16_i . K_stencil w16_i, is subtracted rather
    # than K(0) = 1, so that the interpolation error of the n self-terms does not pile up in Z.
    # (In F the self-terms cancel exactly: e_i K^2_ii - K^2_ii e_i.)
    stencil = torch.arange(-1, 3, device=E.device).repeat_interleave(4), torch.arange(-1, 3, device=E.device).repeat(4)
    gap = (stencil[0][:, None] - stencil[0][None, :]) ** 2 + (stencil[1][:, None] - stencil[1][None, :]) ** 2
    K_stencil = 1.0 / (1.0 + h * h * gap.to(E.dtype))  # (16, 16): K between the nodes around one point
    Z = at_points[:, 0].sum() - torch.einsum("nm,mk,nk->", w16, K_stencil, w16)
    F = local * at_points[:, 1:2] - at_points[:, 2:]
    return Z, F


def upper_edges(P: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The edges i < j of the symmetric sparse ``P``, each once: (i, j, p_ij).

    Every pair appears twice in P (as ij and ji) with the same p_ij and w_ij, so the
    attraction and the KL sweep each pair once and credit both ends: half the work.
    """
    i, j = P.indices()
    keep = i < j
    return i[keep], j[keep], P.values()[keep]


def attraction(edges: tuple[Tensor, Tensor, Tensor], E: Tensor) -> Tensor:
    """A_i = sum_j p_ij w_ij (e_i - e_j) over P's ``edges`` (from :func:`upper_edges`), as (n, 2).

    The edge ij pulls e_i by +p_ij w_ij (e_i - e_j) and e_j by the opposite. Computed
    per coordinate in float32 (a (m, 2) array with its tiny last axis is 3x slower to
    sweep than two (m,) arrays, float64 2x slower than float32): the rounding, ~1e-6
    relative, is far below the repulsion's interpolation error (~1e-2).
    """
    i, j, p = edges
    x, y = E[:, 0].float(), E[:, 1].float()
    dx = x.index_select(0, i) - x.index_select(0, j)
    dy = y.index_select(0, i) - y.index_select(0, j)
    pw = p.float() / (1.0 + dx * dx + dy * dy)
    out = []
    for d in (dx, dy):
        f = pw * d
        out.append(torch.zeros_like(x).index_add_(0, i, f).index_add_(0, j, f, alpha=-1.0))
    return torch.stack(out, dim=1).to(E.dtype)


def sparse_kl_gradient(P: Tensor, E: Tensor, exaggeration: float = 1.0, spacing: float = 0.5, *,
                       edges: tuple[Tensor, Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """dC/dE for the sparse ``P`` (attraction on its edges, scaled by ``exaggeration``) and Z.

    dC/de_i = 4 exaggeration sum_j p_ij w_ij (e_i - e_j) - (4 / Z) sum_j w_ij^2 (e_i - e_j);
    the first sum is :func:`attraction`, the second and Z come from
    :func:`interpolated_repulsion`. ``edges`` are P's :func:`upper_edges`, if computed already.
    """
    A = attraction(upper_edges(P) if edges is None else edges, E)
    Z, repulsion = interpolated_repulsion(E, spacing)
    return 4.0 * (exaggeration * A - (repulsion / Z).to(E.dtype)), Z


def sparse_kl_divergence(P: Tensor, E: Tensor, Z: Tensor | float | None = None, *,
                         edges: tuple[Tensor, Tensor, Tensor] | None = None) -> float:
    """KL(P || Q) = sum p_ij log p_ij - sum p_ij log w_ij + log Z, summed over P's edges only.

    Exact for a sparse P (its other p_ij are 0), each pair counted twice (ij and ji):
    Z is all pairs' sum, from :func:`interpolated_repulsion` unless given.
    """
    i, j, p = upper_edges(P) if edges is None else edges
    E64 = E.double()
    w = 1.0 / (1.0 + ((E64[i] - E64[j]) ** 2).sum(1))
    if Z is None:
        Z, _ = interpolated_repulsion(E64)
    return float(2.0 * (p * (torch.log(p) - torch.log(w))).sum() + math.log(float(Z)) * 2.0 * p.sum())


def sparse_tsne(X, n_components: int = 2, perplexity: float = 30.0, *, n_neighbors: int | None = None,
                early_exaggeration: float = 12.0, n_iter: int = 750, learning_rate="auto", init="pca",
                exaggeration_iter: int = 250, momentum=(0.5, 0.8), min_gain: float = 0.01,
                n_iter_without_progress: int = 300, min_grad_norm: float = 1e-7, spacing: float = 0.5,
                device=None, seed: int = 0) -> TSNEResult:
    """t-SNE of the rows of ``X`` in O(n) memory and O(n k + G^2 log G) time per step.

    Arguments as in :func:`course_lib.tsne.tsne` (750 steps by default, as in
    openTSNE), plus ``n_neighbors`` (default 3 x perplexity) and the grid
    ``spacing`` of the repulsion. ``n_components`` must be 2 (the grid is 2-D).
    The reported ``kl_divergence`` is KL(P || Q) for the sparse P, with Z interpolated;
    ``seconds`` holds the wall time of the neighbour search, the affinities and the optimisation.
    """
    X = as_2d_array(X, "X")
    n = len(X)
    n_components = check_n_components(n_components, n - 1)
    if n_components != 2:
        raise ValueError(f"n_components must be 2 for sparse_tsne (its repulsion grid is 2-D), got {n_components}")
    perplexity = _check_perplexity(perplexity, n)
    n_neighbors = _check_n_neighbors(n_neighbors, perplexity, n)
    early_exaggeration, learning_rate, min_gain = _check_schedule(
        n, n_iter, exaggeration_iter, n_iter_without_progress, early_exaggeration, learning_rate, momentum, min_gain)
    spacing = _check_positive(spacing, "spacing")
    device = torch.device(device) if device is not None else get_device()
    dtype = torch.float32 if device.type == "mps" else torch.float64

    E0 = _initial_embedding(X, init, n_components, seed)
    seconds = {}  # wall time of each stage
    start = time.perf_counter()
    distances, indices = nearest_neighbors(X, n_neighbors, device=device)
    seconds["neighbours"] = time.perf_counter() - start
    P = _affinities(distances, indices, perplexity)
    edges = upper_edges(P)
    seconds["affinities"] = time.perf_counter() - start - seconds["neighbours"]
    start = time.perf_counter()
    E, it, kl_history = gradient_descent(
        lambda E, exaggeration: sparse_kl_gradient(P, E, exaggeration, spacing, edges=edges)[0],
        lambda E: sparse_kl_divergence(P, E, edges=edges), torch.as_tensor(E0, dtype=dtype, device=device),
        n_iter=n_iter, exaggeration_iter=exaggeration_iter, early_exaggeration=early_exaggeration,
        learning_rate=learning_rate, momentum=momentum, min_gain=min_gain,
        n_iter_without_progress=n_iter_without_progress, min_grad_norm=min_grad_norm)
    seconds["optimisation"] = time.perf_counter() - start
    return TSNEResult(E.cpu().numpy().astype(np.float64), sparse_kl_divergence(P, E, edges=edges), it, kl_history,
                      seconds=seconds)
