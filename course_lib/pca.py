"""Principal component analysis from the singular value decomposition.

With the data centred, X_c = X - mu = U S V^T. The principal directions are the
first k right singular vectors, the columns of A = V[:, :k] (d x k), and

    encoder         z = A^T (x - mu)
    reconstruction  x_hat = mu + A A^T (x - mu)
    variance        lambda_j = s_j^2 / (n - 1)

A's columns are orthonormal, so A A^T is the orthogonal projection onto the
k-dimensional subspace that keeps the most variance.
"""
from __future__ import annotations

import numpy as np

from .utils import as_2d_array, check_n_components


def _sign_convention(A: np.ndarray) -> np.ndarray:
    # Eigenvectors are only defined up to sign: make the largest |loading| of each
    # direction positive so that results are reproducible (scikit-learn does the same).
    signs = np.sign(A[np.argmax(np.abs(A), axis=0), np.arange(A.shape[1])])
    signs[signs == 0] = 1.0
    return A * signs


class PCA:
    """PCA with scikit-learn's ``fit`` / ``transform`` interface and the book's names.

    Attributes after :meth:`fit`: ``mean`` (mu, shape d), ``A`` (d x k, orthonormal
    principal directions), ``singular_values`` (s_1..s_k), ``explained_variance``
    (lambda_j) and ``explained_variance_ratio`` (lambda_j over the total variance).
    """

    def __init__(self, n_components: int = 2):
        self.n_components = n_components

    def fit(self, X) -> "PCA":
        X = as_2d_array(X, "X")
        n, d = X.shape
        k = check_n_components(self.n_components, min(n, d))
        self.mean = X.mean(axis=0)
        # full_matrices=False: the thin SVD is all we need and costs O(n d min(n, d)).
        _, s, Vt = np.linalg.svd(X - self.mean, full_matrices=False)
        self.A = _sign_convention(Vt[:k].T)
        self.singular_values = s[:k]
        all_variance = s**2 / (n - 1)
        self.explained_variance = all_variance[:k]
        self.explained_variance_ratio = self.explained_variance / all_variance.sum()
        return self

    def _check_fitted(self):
        if not hasattr(self, "A"):
            raise RuntimeError("this PCA is not fitted yet: call fit(X) first")

    def transform(self, X) -> np.ndarray:
        """Codes z = A^T (x - mu), one row per sample."""
        self._check_fitted()
        X = as_2d_array(X, "X", min_rows=1)
        if X.shape[1] != len(self.mean):
            raise ValueError(f"X must have {len(self.mean)} features, like the data PCA was fitted on, "
                             f"got {X.shape[1]}")
        return (X - self.mean) @ self.A

    def fit_transform(self, X) -> np.ndarray:
        return self.fit(X).transform(X)

    def inverse_transform(self, Z) -> np.ndarray:
        """Map codes back to data space: x_hat = mu + A z."""
        self._check_fitted()
        Z = as_2d_array(Z, "Z", min_rows=1)
        if Z.shape[1] != self.A.shape[1]:
            raise ValueError(f"Z must have {self.A.shape[1]} columns, got {Z.shape[1]}")
        return self.mean + Z @ self.A.T

    def reconstruct(self, X) -> np.ndarray:
        """x_hat = mu + A A^T (x - mu): the projection of x onto the principal subspace."""
        return self.inverse_transform(self.transform(X))


def pca(X, n_components: int = 2) -> np.ndarray:
    """The first ``n_components`` principal-component codes of ``X`` (n x k)."""
    return PCA(n_components).fit_transform(X)


def linear_autoencoder_optimum(X, n_components: int):
    """The linear autoencoder's closed-form optimum (seed 004's theorem).

    For data X (d x n, one column per sample, centred) with SVD X = U S V^T, the
    encoder W = S_k^{-1} U_k^T (k x d) and decoder W' = U_k S_k (d x k) minimise
    ||X - W' W X||_F^2. Here ``X`` is passed one row per sample, as everywhere
    in course_lib, and centred inside. Returns ``(W, W_prime)``; their product
    W' W = U_k U_k^T is PCA's projection.
    """
    X = as_2d_array(X, "X")
    k = check_n_components(n_components, min(X.shape))
    Xc = (X - X.mean(axis=0)).T  # d x n, the theorem's layout
    U, s, _ = np.linalg.svd(Xc, full_matrices=False)
    W = np.diag(1.0 / s[:k]) @ U[:, :k].T
    W_prime = U[:, :k] @ np.diag(s[:k])
    return W, W_prime


def principal_angles(A, B) -> np.ndarray:
    """Principal angles (radians) between the column spans of ``A`` and ``B``.

    All angles are 0 exactly when the two subspaces coincide; this is how the
    chapters compare subspaces whose bases are not unique.
    """
    Qa, _ = np.linalg.qr(np.asarray(A, dtype=np.float64))
    Qb, _ = np.linalg.qr(np.asarray(B, dtype=np.float64))
    cosines = np.linalg.svd(Qa.T @ Qb, compute_uv=False)
    return np.arccos(np.clip(cosines, -1.0, 1.0))
