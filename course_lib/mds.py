"""Classical multidimensional scaling (Torgerson's scaling, principal coordinates).

Given squared distances D_ij = ||x_i - x_j||^2, find embeddings e_i with the same
distances. If the embeddings have mean 0, their Gram matrix K_ij = e_i . e_j is
recovered from D by double centring,

    K = -1/2 J D J,   J = I - (1/n) 1 1^T,

and the best rank-k embedding is E = V_k Lambda_k^{1/2} from the eigendecomposition
K = V Lambda V^T (largest eigenvalues first). When D holds Euclidean distances of
data X, K = X_c X_c^T, so the embedding equals PCA's codes up to the sign of each
axis.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.spatial.distance import pdist, squareform

from .utils import as_2d_array, check_n_components


def squared_distances(X) -> np.ndarray:
    """The n x n matrix of squared Euclidean distances between the rows of ``X``."""
    return squareform(pdist(as_2d_array(X, "X"), "sqeuclidean"))


def double_center(D_squared) -> np.ndarray:
    """K = -1/2 J D J: the Gram matrix of centred points from their squared distances."""
    D = as_2d_array(D_squared, "D_squared")
    n = D.shape[0]
    if D.shape != (n, n):
        raise ValueError(f"D_squared must be a square matrix, got shape {D.shape}")
    # J D J without forming J: subtract row means and column means, add back the grand mean.
    return -0.5 * (D - D.mean(axis=0, keepdims=True) - D.mean(axis=1, keepdims=True) + D.mean())


def classical_mds(D, n_components: int = 2, squared: bool = False, return_eigenvalues: bool = False):
    """Embed n points in ``n_components`` dimensions from their distance matrix ``D``.

    ``D`` is n x n, symmetric with a zero diagonal; pass ``squared=True`` when it
    already holds squared distances. Returns E (n x k); with
    ``return_eigenvalues=True`` also the top k eigenvalues of K. Negative
    eigenvalues (a non-Euclidean D) cannot be embedded: their axes are set to 0
    with a warning.
    """
    D = as_2d_array(D, "D")
    n = D.shape[0]
    if D.shape != (n, n):
        raise ValueError(f"D must be a square n x n distance matrix, got shape {D.shape}")
    scale = max(np.abs(D).max(), 1e-300)
    if np.abs(D - D.T).max() > 1e-8 * scale:
        raise ValueError("D must be symmetric (a distance matrix); got an asymmetric matrix")
    if np.abs(np.diag(D)).max() > 1e-8 * scale:
        raise ValueError("D must have a zero diagonal (the distance of a point to itself)")
    k = check_n_components(n_components, n)
    K = double_center(D if squared else D**2)
    eigenvalues, V = np.linalg.eigh(K)  # ascending order
    eigenvalues, V = eigenvalues[::-1][:k], V[:, ::-1][:, :k]
    if np.any(eigenvalues < -1e-9 * max(abs(eigenvalues[0]), 1e-300)):
        warnings.warn("D is not Euclidean: some of the top eigenvalues of K are negative; "
                      "those axes are set to 0", RuntimeWarning, stacklevel=2)
    E = V * np.sqrt(np.clip(eigenvalues, 0.0, None))
    # Same sign convention as course_lib.pca: largest |coordinate| positive on each axis.
    signs = np.sign(E[np.argmax(np.abs(E), axis=0), np.arange(k)])
    E = E * np.where(signs == 0, 1.0, signs)
    return (E, eigenvalues) if return_eigenvalues else E
