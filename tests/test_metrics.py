"""The embedding metrics against scikit-learn's implementations.

Continuous random data has no tied distances, so neighbour rankings are unique
and the results must agree exactly (up to float rounding).
"""
import numpy as np
import pytest
from sklearn.manifold import trustworthiness as sk_trustworthiness
from sklearn.neighbors import KNeighborsClassifier

from course_lib.metrics import knn_accuracy, knn_predict, reconstruction_error, relative_neighbour_distance, trustworthiness


@pytest.mark.parametrize("k", [1, 5, 12])
def test_trustworthiness_matches_sklearn(rng, k):
    X = rng.normal(size=(200, 8))
    E = X[:, :2] + 0.3 * rng.normal(size=(200, 2))
    assert trustworthiness(X, E, k) == pytest.approx(sk_trustworthiness(X, E, n_neighbors=k), abs=1e-12)


def test_trustworthiness_is_one_for_an_isometry(rng):
    X = rng.normal(size=(60, 3))
    Q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    assert trustworthiness(X, X @ Q, 5) == pytest.approx(1.0)


def test_knn_accuracy_train_test_matches_sklearn(rng):
    E = rng.normal(size=(300, 2))
    y = (E[:, 0] + 0.5 * rng.normal(size=300) > 0).astype(int) + (E[:, 1] > 1)
    E_test = rng.normal(size=(100, 2))
    y_test = (E_test[:, 0] > 0).astype(int)
    ref = KNeighborsClassifier(7).fit(E, y).score(E_test, y_test)
    assert knn_accuracy(E, y, 7, E_test, y_test) == pytest.approx(ref)


def test_knn_accuracy_leave_one_out_excludes_the_point_itself(rng):
    E = rng.normal(size=(100, 2))
    y = rng.integers(0, 2, size=100)
    # With k = 1 and itself included every point would be classified correctly.
    acc = knn_accuracy(E, y, 1)
    assert acc < 0.8
    # Reference: sklearn's neighbours of the training set, excluding self.
    from sklearn.neighbors import NearestNeighbors

    idx = NearestNeighbors(n_neighbors=5).fit(E).kneighbors(return_distance=False)
    votes = np.array([np.bincount(y[row], minlength=2).argmax() for row in idx])
    assert knn_accuracy(E, y, 5) == pytest.approx(np.mean(votes == y))


def test_reconstruction_error_is_mean_squared_norm():
    X = np.array([[0.0, 0.0], [1.0, 1.0]])
    X_hat = np.array([[1.0, 0.0], [1.0, 3.0]])
    assert reconstruction_error(X, X_hat) == pytest.approx((1.0 + 4.0) / 2)


def test_metric_errors_name_the_argument(rng):
    with pytest.raises(ValueError, match="same number of rows"):
        trustworthiness(rng.normal(size=(10, 2)), rng.normal(size=(9, 2)), 2)
    with pytest.raises(ValueError, match="n_neighbors must be between"):
        trustworthiness(rng.normal(size=(10, 2)), rng.normal(size=(10, 2)), 5)
    with pytest.raises(ValueError, match="y must have shape"):
        knn_accuracy(rng.normal(size=(10, 2)), np.zeros(9), 3)
    with pytest.raises(ValueError, match="same shape"):
        reconstruction_error(np.zeros((3, 2)), np.zeros((3, 3)))


def test_knn_accuracy_in_chunks_matches_sklearn(rng):
    # more queries than one 1,024-row chunk, in both modes
    E = rng.normal(size=(2500, 3))
    y = (E[:, 0] + 0.5 * rng.normal(size=2500) > 0).astype(int) + (E[:, 2] > 1)
    E_test = rng.normal(size=(1500, 3))
    y_test = (E_test[:, 0] > 0).astype(int)
    clf = KNeighborsClassifier(n_neighbors=7).fit(E, y)
    assert knn_accuracy(E, y, 7, E_test, y_test) == pytest.approx(clf.score(E_test, y_test), abs=1e-12)
    # leave-one-out: sklearn's 8 neighbours of each training point include itself; drop it
    neighbours = KNeighborsClassifier(n_neighbors=8).fit(E, y).kneighbors(E, return_distance=False)[:, 1:]
    votes = np.stack([np.bincount(row, minlength=3) for row in y[neighbours]])
    assert knn_accuracy(E, y, 7) == pytest.approx(np.mean(votes.argmax(1) == y), abs=1e-12)


def test_linear_probe_is_sklearns_logistic_regression():
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from course_lib.metrics import linear_probe

    X, y = load_digits(return_X_y=True)
    X_train, y_train, X_test, y_test = X[:1200], y[:1200], X[1200:], y[1200:]
    weight_decay = 1e-2
    scaler = StandardScaler().fit(X_train)
    reference = LogisticRegression(C=1 / (len(X_train) * weight_decay), tol=1e-10, max_iter=5000)
    reference.fit(scaler.transform(X_train), y_train)
    ours = linear_probe(X_train, y_train, X_test, y_test, weight_decay=weight_decay, device="cpu")
    # Both minimise the same strictly convex objective, to tight tolerances: the same predictions.
    assert ours == pytest.approx(reference.score(scaler.transform(X_test), y_test), abs=1e-12)
    assert ours > 0.9
    with pytest.raises(ValueError, match="as many columns"):
        linear_probe(X_train, y_train, X_test[:, :10], y_test)
    with pytest.raises(ValueError, match="one label per row"):
        linear_probe(X_train, y_train[:5], X_test, y_test)


def test_knn_predict_matches_sklearn_per_point(rng):
    from sklearn.neighbors import KNeighborsClassifier
    E, E_test = rng.normal(size=(300, 2)), rng.normal(size=(50, 2))
    y = np.array(["a", "b", "c"])[rng.integers(0, 3, 300)]  # labels come back as given, not as indices
    clf = KNeighborsClassifier(n_neighbors=7).fit(E, y)
    np.testing.assert_array_equal(knn_predict(E, y, 7, E_test), clf.predict(E_test))


def test_relative_neighbour_distance_by_brute_force(rng):
    from scipy.spatial.distance import cdist
    E = np.vstack([rng.normal(size=(200, 2)), rng.normal(size=(200, 2)) + 10.0])
    D = cdist(E, E)
    kth = np.sort(D, axis=1)[:, 5]  # column 0 is the point itself
    pairs = np.random.default_rng(0)
    i = pairs.integers(0, 400, 1000)
    j = (i + pairs.integers(1, 400, 1000)) % 400
    assert relative_neighbour_distance(E, 5, n_pairs=1000, seed=0) == pytest.approx(
        np.median(kth) / np.median(D[i, j]), rel=1e-12)
    # Tighter clusters, same gap: smaller.
    tight = np.vstack([0.5 * E[:200], 0.5 * (E[200:] - 10.0) + 10.0])
    assert relative_neighbour_distance(tight, 5) < relative_neighbour_distance(E, 5)
