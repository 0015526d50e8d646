"""k-nearest neighbours: the graph that sparse t-SNE and UMAP start from.

Exact, in PyTorch, in blocks of rows: for each block the squared distances to
all n points are one matrix product, ||x_i||^2 + ||x_j||^2 - 2 x_i . x_j, and
``torch.topk`` keeps the k smallest. Time O(n^2 d), memory O(block n): 70,000
points in 50 dimensions take about 15 s on two CPU cores and well under a
second on a GPU. Beyond a few hundred thousand points the n^2 term wins, and
an approximate index takes over: NN-descent (Dong et al., 2011; the
``pynndescent`` package) starts from random neighbour lists and improves them
by asking each point's neighbours for their neighbours, in about O(n^1.14) time.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .utils import as_2d_array, get_device


EXACT_UP_TO = 300_000  # method="auto": exact search up to this many points (70,000 take 15 s on 2 cores)


def nearest_neighbors(X, n_neighbors: int, *, method: str = "auto", device=None, block_size: int = 2048,
                      dtype: torch.dtype = torch.float32, seed: int = 0) -> tuple[Tensor, Tensor]:
    """The ``n_neighbors`` nearest neighbours of every row of ``X``, itself excluded.

    Returns ``(distances, indices)``, both (n, n_neighbors), sorted nearest first:
    ``distances[i, m]`` is the squared Euclidean distance from x_i to its (m+1)-th
    neighbour ``indices[i, m]``, in float64. ``method`` is ``"exact"`` (the
    search runs in ``dtype``, float32: its rounding, ~1e-7 of ||x||^2, can swap
    two neighbours at almost equal distance, which no embedding notices),
    ``"nndescent"`` (approximate, needs ``pynndescent``; seeded by ``seed``) or
    ``"auto"`` (exact up to ``EXACT_UP_TO`` points, NN-descent beyond).
    """
    X = as_2d_array(X, "X")
    n = len(X)
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, int) or not 1 <= n_neighbors <= n - 1:
        raise ValueError(f"n_neighbors must be an int between 1 and n_samples - 1 = {n - 1}, got {n_neighbors!r}")
    if method not in ("auto", "exact", "nndescent"):
        raise ValueError(f'method must be "auto", "exact" or "nndescent", got {method!r}')
    device = torch.device(device) if device is not None else get_device()
    if method == "nndescent" or (method == "auto" and n > EXACT_UP_TO):
        indices = _nndescent(X, n_neighbors, seed).to(device)
    else:
        indices = _exact(X, n_neighbors, device, block_size, dtype)
    # The search's distances are float32 (the expansion loses ~1e-7 of ||x||^2, large next
    # to the distances between close points far from the origin): the neighbours found are
    # kept, their distances recomputed directly, in float64 (O(n k d), cheap).
    # In blocks of rows: the differences for all n k pairs at once would take n k d x 8 bytes
    # (2.5 GB for 70,000 points, 90 neighbours, 50 dimensions).
    X64 = torch.as_tensor(X, dtype=torch.float64, device=device)
    distances = torch.cat([((X64[rows, None, :] - X64[indices[rows]]) ** 2).sum(-1)
                           for rows in torch.arange(n, device=device).split(block_size)])
    distances, order = distances.sort(dim=1)
    return distances, indices.gather(1, order)


def _nndescent(X, n_neighbors: int, seed: int) -> Tensor:
    try:
        from pynndescent import NNDescent
    except ImportError as error:
        raise ImportError('method="nndescent" needs the pynndescent package: pip install pynndescent') from error
    indices, _ = NNDescent(X, n_neighbors=n_neighbors + 1, random_state=seed).neighbor_graph
    # Each row lists the point itself first (distance 0), unless duplicates tie with it: drop
    # the point wherever it is, else the row's farthest neighbour.
    indices = torch.as_tensor(indices.astype(np.int64))
    is_self = indices == torch.arange(len(indices))[:, None]
    is_self[~is_self.any(1), -1] = True
    return indices[~is_self].reshape(len(indices), n_neighbors)


def _exact(X, n_neighbors: int, device, block_size: int, dtype) -> Tensor:
    n = len(X)
    X = torch.as_tensor(X, dtype=dtype, device=device)
    X = X - X.mean(0)  # centring shrinks ||x||^2 and with it the rounding of the expansion
    sq = (X * X).sum(1)
    indices = []
    for start in range(0, n, block_size):
        block = X[start:start + block_size]
        D = torch.addmm(sq[None, :], block, X.T, alpha=-2.0).add_(sq[start:start + block_size, None])
        rows = torch.arange(len(block), device=device)
        D[rows, rows + start] = float("inf")  # a point is not its own neighbour
        indices.append(torch.topk(D, n_neighbors, dim=1, largest=False, sorted=False).indices)
    return torch.cat(indices)
