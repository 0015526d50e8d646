"""Laplacian eigenmaps (Belkin and Niyogi, 2003): keep neighbours close.

1. Build the k-nearest-neighbour graph: connect i and j when either is among
   the other's k nearest neighbours (so the graph is symmetric).
2. Weight each edge with the heat kernel W_ij = exp(-||x_i - x_j||^2 / t);
   pairs that are not neighbours get W_ij = 0.
3. With the degrees D_ii = sum_j W_ij and the graph Laplacian L = D - W, minimise

       sum_ij W_ij ||e_i - e_j||^2 = 2 tr(E^T L E)   subject to   E^T D E = I,

   whose solutions are the generalised eigenvectors L f = lambda D f with the
   smallest eigenvalues. The very smallest, lambda_0 = 0, has a constant f:
   it maps every point to the same place, so it is dropped, and the embedding
   is made of the next ``n_components`` eigenvectors.
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
from scipy.sparse.csgraph import connected_components
from scipy.spatial.distance import cdist

from .utils import as_2d_array, check_n_components


def knn_adjacency(X, n_neighbors: int = 10) -> np.ndarray:
    """Boolean n x n adjacency of the symmetrised k-nearest-neighbour graph."""
    X = as_2d_array(X, "X")
    return _knn_adjacency_from(cdist(X, X, "sqeuclidean"), n_neighbors)


def _knn_adjacency_from(D2: np.ndarray, n_neighbors: int) -> np.ndarray:
    n = len(D2)
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, (int, np.integer)) \
            or not 1 <= n_neighbors < n:
        raise ValueError(f"n_neighbors must be an int between 1 and {n - 1}, got {n_neighbors!r}")
    D2 = D2.copy()
    np.fill_diagonal(D2, np.inf)
    # argpartition finds the k smallest in O(n) per row; their order does not matter here
    neighbours = np.argpartition(D2, n_neighbors - 1, axis=1)[:, :n_neighbors]
    A = np.zeros((n, n), dtype=bool)
    A[np.arange(n)[:, None], neighbours] = True
    return A | A.T


def heat_kernel_weights(X, n_neighbors: int = 10, t: float | None = None) -> np.ndarray:
    """W_ij = exp(-||x_i - x_j||^2 / t) on the k-NN graph's edges, 0 elsewhere.

    ``t=None`` sets t to the median squared distance over the edges, a scale-free
    default; ``t=np.inf`` gives Belkin and Niyogi's "simple-minded" 0/1 weights.
    """
    X = as_2d_array(X, "X")
    D2 = cdist(X, X, "sqeuclidean")
    A = _knn_adjacency_from(D2, n_neighbors)
    if t is None:
        t = float(np.median(D2[A]))
    if not (isinstance(t, (int, float, np.floating)) and t > 0):
        raise ValueError(f"t (the heat-kernel width) must be a positive number or None, got {t!r}")
    W = np.where(A, np.exp(-D2 / t) if np.isfinite(t) else 1.0, 0.0)
    return W


def laplacian_eigenmaps(X, n_components: int = 2, n_neighbors: int = 10, t: float | None = None,
                        return_eigenvalues: bool = False):
    """Embed the rows of ``X`` with Laplacian eigenmaps; returns E (n x n_components).

    With ``return_eigenvalues=True`` also returns the eigenvalues lambda_1 ..
    lambda_k of the kept eigenvectors (lambda_0 = 0, the constant one, is dropped).
    The columns of E satisfy E^T D E = I (the generalised eigenvectors' normalisation).
    """
    X = as_2d_array(X, "X")
    n = len(X)
    k = check_n_components(n_components, n - 2)
    W = heat_kernel_weights(X, n_neighbors, t)
    n_parts, _ = connected_components(W > 0, directed=False)
    if n_parts > 1:
        warnings.warn(f"the {n_neighbors}-nearest-neighbour graph has {n_parts} disconnected parts: "
                      "the eigenmap cannot place them relative to each other; increase n_neighbors",
                      RuntimeWarning, stacklevel=2)
    degree = W.sum(axis=1)
    L = np.diag(degree) - W
    # Generalised symmetric problem L f = lambda D f; ask only for the k + 1 smallest.
    eigenvalues, F = scipy.linalg.eigh(L, np.diag(degree), subset_by_index=[0, k])
    E = F[:, 1:k + 1]  # drop f_0, the constant eigenvector
    signs = np.sign(E[np.argmax(np.abs(E), axis=0), np.arange(k)])
    E = E * np.where(signs == 0, 1.0, signs)
    return (E, eigenvalues[1:k + 1]) if return_eigenvalues else E
