"""PCA, classical MDS and Laplacian eigenmaps against scikit-learn and closed forms.

Tolerances: all three are computed in float64 by LAPACK on both sides, so
results agree to rounding error. 1e-10 (absolute, on data of unit scale) leaves
a margin of about 1000x over the ~1e-13 differences actually observed while
still catching any real mistake (a missing centring changes entries at 1e-1).
"""
import numpy as np
import pytest
from sklearn.decomposition import PCA as SkPCA
from sklearn.manifold import ClassicalMDS, SpectralEmbedding

from course_lib import data
from course_lib.eigenmaps import heat_kernel_weights, knn_adjacency, laplacian_eigenmaps
from course_lib.mds import classical_mds, double_center, squared_distances
from course_lib.pca import PCA, linear_autoencoder_optimum, pca, principal_angles

TOL = 1e-10


def align_signs(A, B):
    """Flip the columns of A so that each has a positive dot product with B's."""
    return A * np.sign(np.sum(A * B, axis=0))


@pytest.fixture(scope="module")
def digits():
    d = data.load_digits()
    return d.X.astype(np.float64) / 16.0, d.y


def test_pca_matches_sklearn(digits):
    X, _ = digits
    ours = PCA(10).fit(X)
    ref = SkPCA(10, svd_solver="full").fit(X)
    Z, Z_ref = ours.transform(X), ref.transform(X)
    np.testing.assert_allclose(align_signs(Z, Z_ref), Z_ref, atol=TOL)
    np.testing.assert_allclose(ours.explained_variance, ref.explained_variance_, rtol=1e-10)
    np.testing.assert_allclose(ours.explained_variance_ratio, ref.explained_variance_ratio_, rtol=1e-10)
    np.testing.assert_allclose(ours.A.T @ ours.A, np.eye(10), atol=1e-12)
    np.testing.assert_allclose(ours.inverse_transform(Z), ref.inverse_transform(Z_ref), atol=TOL)


def test_pca_is_centred(digits):
    X, _ = digits
    shifted = X + 100.0  # a forgotten centring would make the first axis point at the mean
    np.testing.assert_allclose(np.abs(pca(shifted, 3)), np.abs(pca(X, 3)), atol=1e-8)


def test_pca_reconstruction_error_is_discarded_variance(digits):
    X, _ = digits
    model = PCA(5).fit(X)
    err = np.sum((X - model.reconstruct(X)) ** 2) / (len(X) - 1)
    total = np.sum(np.var(X, axis=0, ddof=1))
    np.testing.assert_allclose(err, total - model.explained_variance.sum(), rtol=1e-10)


def test_linear_autoencoder_optimum_is_pca_projection(digits):
    X, _ = digits
    W, W_prime = linear_autoencoder_optimum(X, 6)
    model = PCA(6).fit(X)
    np.testing.assert_allclose(W_prime @ W, model.A @ model.A.T, atol=TOL)
    assert np.max(principal_angles(W_prime, model.A)) < 1e-6


def test_classical_mds_matches_sklearn_and_pca(digits):
    X, _ = digits
    E = classical_mds(squared_distances(X), 4, squared=True)
    ref = ClassicalMDS(4).fit(X).embedding_
    np.testing.assert_allclose(align_signs(E, ref), ref, atol=TOL)
    Z = pca(X, 4)
    np.testing.assert_allclose(align_signs(E, Z), Z, atol=TOL)
    # non-squared distances give the same result
    np.testing.assert_allclose(classical_mds(np.sqrt(squared_distances(X)), 4), E, atol=1e-8)


def test_double_center_gives_gram_matrix(rng):
    X = rng.normal(size=(30, 4))
    Xc = X - X.mean(axis=0)
    np.testing.assert_allclose(double_center(squared_distances(X)), Xc @ Xc.T, atol=1e-12)


def test_classical_mds_rejects_bad_distance_matrices(rng):
    D = squared_distances(rng.normal(size=(10, 3)))
    with pytest.raises(ValueError, match="square"):
        classical_mds(D[:5], 2)
    asym = D.copy()
    asym[0, 1] += 1.0
    with pytest.raises(ValueError, match="symmetric"):
        classical_mds(asym, 2)
    with pytest.raises(ValueError, match="n_components"):
        classical_mds(D, 11)
    with pytest.warns(RuntimeWarning, match="not Euclidean"):
        bad = np.ones((4, 4)) - np.eye(4)
        bad[0, 1] = bad[1, 0] = 5.0  # violates the triangle inequality: K gets eigenvalue -5.5
        classical_mds(bad, 4)


def test_laplacian_eigenmaps_matches_sklearn_spectral_embedding():
    X = data.load_swiss_roll(800, seed=1).X.astype(np.float64)
    W = heat_kernel_weights(X, n_neighbors=10)
    E, eigenvalues = laplacian_eigenmaps(X, 3, n_neighbors=10, return_eigenvalues=True)
    ref = SpectralEmbedding(3, affinity="precomputed", random_state=0).fit_transform(W)
    # The generalised eigenvectors are unique up to sign when eigenvalues are distinct.
    assert np.all(np.diff(eigenvalues) > 1e-6)
    np.testing.assert_allclose(align_signs(E, ref), ref, atol=1e-7)
    # They solve L f = lambda D f and are D-orthonormal.
    degree = W.sum(axis=1)
    L = np.diag(degree) - W
    np.testing.assert_allclose(L @ E, (degree[:, None] * E) * eigenvalues, atol=1e-9)
    np.testing.assert_allclose(E.T @ (degree[:, None] * E), np.eye(3), atol=1e-9)


def test_laplacian_eigenmaps_drops_the_constant_eigenvector():
    X = data.load_swiss_roll(400, seed=2).X
    E = laplacian_eigenmaps(X, 2, n_neighbors=8)
    for column in E.T:
        assert np.std(column) > 1e-3  # a constant column would be the lambda_0 = 0 solution


def test_eigenmaps_unroll_the_swiss_roll_and_pca_does_not():
    from scipy.stats import spearmanr

    roll = data.load_swiss_roll(1000, seed=0)
    E = laplacian_eigenmaps(roll.X, 2, n_neighbors=10)
    Z = pca(roll.X, 2)
    best = lambda M: max(abs(spearmanr(M[:, j], roll.y)[0]) for j in range(2))
    assert best(E) > 0.95  # one eigenmap axis follows the position along the roll
    assert best(Z) < 0.8   # no linear projection does


def test_knn_adjacency_is_symmetric_with_k_neighbours(rng):
    X = rng.normal(size=(50, 3))
    A = knn_adjacency(X, 5)
    assert (A == A.T).all() and not A.diagonal().any()
    assert (A.sum(axis=1) >= 5).all()


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="X must be 2-D"):
        pca(np.arange(10.0), 2)
    with pytest.raises(ValueError, match="NaN"):
        pca(np.array([[1.0, np.nan], [2.0, 3.0]]), 1)
    with pytest.raises(TypeError, match="n_components must be an int"):
        pca(np.ones((5, 3)), 2.0)
    with pytest.raises(ValueError, match="n_components must be between 1 and 3"):
        PCA(4).fit(np.random.default_rng(0).normal(size=(10, 3)))
    with pytest.raises(ValueError, match="n_neighbors"):
        laplacian_eigenmaps(np.ones((5, 2)), 2, n_neighbors=5)
    with pytest.raises(RuntimeError, match="not fitted"):
        PCA(2).transform(np.ones((3, 3)))
