"""How good is an embedding? Three measures the chapters use throughout.

- :func:`trustworthiness`: are the neighbours you see in the embedding real
  neighbours in the data? (Venna and Kaski, 2001)
- :func:`knn_accuracy`: is the embedding informative about the labels?
- :func:`reconstruction_error`: how much does a decoder lose?

and, for learnt features, :func:`linear_probe`: how much of the label does a
linear classifier read off frozen features? (the standard evaluation of
self-supervised representations)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.distance import cdist

from .utils import as_2d_array


def _check_pair(X, E):
    X, E = as_2d_array(X, "X"), as_2d_array(E, "E")
    if len(X) != len(E):
        raise ValueError(f"X and E must have the same number of rows, got {len(X)} and {len(E)}")
    return X, E


def _check_k(n_neighbors, n, name="n_neighbors", upper=None):
    upper = n - 1 if upper is None else upper
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(n_neighbors).__name__}")
    if not 1 <= n_neighbors <= upper:
        raise ValueError(f"{name} must be between 1 and {upper} for {n} samples, got {n_neighbors}")
    return int(n_neighbors)


def trustworthiness(X, E, n_neighbors: int = 10) -> float:
    """Trustworthiness T(k) of the embedding ``E`` of the data ``X`` (both one row per sample).

    T(k) = 1 - 2 / (n k (2n - 3k - 1)) * sum_i sum_{j in N_k^E(i)} max(0, r(i, j) - k),

    where N_k^E(i) are the k nearest neighbours of i in the embedding and r(i, j)
    is the rank of j among i's neighbours in the data (1 = nearest). T = 1 when
    every embedding neighbour is also a data neighbour. Needs k < n / 2.
    """
    X, E = _check_pair(X, E)
    n = len(X)
    k = _check_k(n_neighbors, n, upper=(n - 1) // 2)
    D_x = cdist(X, X, "sqeuclidean")
    D_e = cdist(E, E, "sqeuclidean")
    np.fill_diagonal(D_x, np.inf)  # a point is not its own neighbour
    np.fill_diagonal(D_e, np.inf)
    # rank[i, j] = position of j in i's neighbour list in data space (1-based)
    order = np.argsort(D_x, axis=1, kind="stable")
    rank = np.empty_like(order)
    rows = np.arange(n)[:, None]
    rank[rows, order] = np.arange(1, n + 1)[None, :]
    nn_e = np.argsort(D_e, axis=1, kind="stable")[:, :k]
    penalty = np.maximum(rank[rows, nn_e] - k, 0).sum()
    return float(1.0 - 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0)) * penalty)


def knn_accuracy(E, y, n_neighbors: int = 10, E_test=None, y_test=None) -> float:
    """Accuracy of a k-nearest-neighbour vote in the embedding.

    With only ``E`` and ``y`` it is the leave-one-out accuracy: each point is
    classified by the majority label of its ``n_neighbors`` nearest other
    points. With ``E_test`` and ``y_test`` the training points vote for the
    test points. Ties go to the smallest label, as in scikit-learn.
    """
    predicted = knn_predict(E, y, n_neighbors, E_test)
    truth = np.asarray(y if E_test is None else y_test)
    if truth.shape != predicted.shape:
        raise ValueError(f"y_test must have shape {predicted.shape}, one label per row of E_test, got {truth.shape}")
    return float(np.mean(predicted == truth))


def knn_predict(E, y, n_neighbors: int = 10, E_test=None) -> np.ndarray:
    """The labels :func:`knn_accuracy`'s vote predicts: for each row of ``E`` (leave one out) or of ``E_test``.

    A class's share of correct votes, ``np.mean(predicted[truth == c] == c)``, shows
    which classes the embedding keeps apart.
    """
    E = as_2d_array(E, "E")
    y = np.asarray(y)
    if y.shape != (len(E),):
        raise ValueError(f"y must have shape ({len(E)},), one label per row of E, got {y.shape}")
    labels, y_idx = np.unique(y, return_inverse=True)
    if E_test is None:
        k = _check_k(n_neighbors, len(E))
        queries = E
    else:
        E_test = as_2d_array(E_test, "E_test", min_rows=1)
        k = _check_k(n_neighbors, len(E) + 1)
        queries = E_test
    # 1,024 queries at a time: 60,000 training features against 10,000 test ones would be a 4.8 GB matrix
    predicted = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), 1024):
        D = cdist(queries[start:start + 1024], E, "sqeuclidean")
        if E_test is None:  # leave one out: a point is not its own neighbour
            D[np.arange(len(D)), np.arange(start, start + len(D))] = np.inf
        # The k nearest in any order (only their votes count), in O(n) per row: argsort's
        # O(n log n) took 30 s for 10,000 queries among 60,000 points.
        neighbours = np.argpartition(D, k - 1, axis=1)[:, :k]
        votes = np.zeros((len(D), len(labels)), dtype=np.int64)
        np.add.at(votes, (np.arange(len(D))[:, None], y_idx[neighbours]), 1)
        predicted[start:start + len(D)] = votes.argmax(axis=1)
    return labels[predicted]


def relative_neighbour_distance(E, n_neighbors: int = 10, n_pairs: int = 20_000, seed: int = 0) -> float:
    """Median distance from a point to its ``n_neighbors``-th nearest neighbour over the median distance of random pairs.

    How tightly points sit among their neighbours compared with the size of the
    whole map: smaller means tighter clusters with wider gaps between them. The
    pairs are ``n_pairs`` random pairs of distinct points (seeded by ``seed``); the
    neighbours come from a k-d tree, so a 70,000-point 2-D map takes a second.
    """
    from scipy.spatial import cKDTree

    E = as_2d_array(E, "E")
    k = _check_k(n_neighbors, len(E))
    kth, _ = cKDTree(E).query(E, k=[k + 1])  # the point itself is its own first neighbour
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(E), n_pairs)
    j = (i + rng.integers(1, len(E), n_pairs)) % len(E)  # j != i
    return float(np.median(kth) / np.median(np.linalg.norm(E[i] - E[j], axis=1)))


def reconstruction_error(X, X_hat) -> float:
    """Mean squared reconstruction error per sample: (1/n) sum_i ||x_i - x_hat_i||^2."""
    X = np.asarray(X.detach().cpu() if hasattr(X, "detach") else X, dtype=np.float64)
    X_hat = np.asarray(X_hat.detach().cpu() if hasattr(X_hat, "detach") else X_hat, dtype=np.float64)
    if X.shape != X_hat.shape:
        raise ValueError(f"X and X_hat must have the same shape, got {X.shape} and {X_hat.shape}")
    return float(np.mean(np.sum((X - X_hat).reshape(len(X), -1) ** 2, axis=1)))


def linear_probe(features_train, y_train, features_test, y_test, weight_decay: float = 1e-4,
                 max_iter: int = 500, device=None) -> float:
    """Test accuracy of a multinomial logistic regression trained on frozen features.

    The probe standardises the features with the training set's mean and standard
    deviation, then minimises the mean cross-entropy plus ``weight_decay / 2 * ||W||^2``
    (no penalty on the bias) over the whole training set with L-BFGS, on ``device``
    (the GPU when there is one). This is scikit-learn's ``LogisticRegression`` with
    ``C = 1 / (n_train * weight_decay)``, which the tests check.
    """
    from .utils import get_device

    F_train = torch.as_tensor(as_2d_array(features_train, "features_train"))
    F_test = torch.as_tensor(as_2d_array(features_test, "features_test", min_rows=1))
    if F_train.shape[1] != F_test.shape[1]:
        raise ValueError(f"features_train and features_test must have as many columns, got {F_train.shape[1]} "
                         f"and {F_test.shape[1]}")
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if y_train.shape != (len(F_train),) or y_test.shape != (len(F_test),):
        raise ValueError(f"y_train and y_test need one label per row: shapes {y_train.shape} and {y_test.shape} "
                         f"for {len(F_train)} and {len(F_test)} rows")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    labels, targets = np.unique(y_train, return_inverse=True)
    device = torch.device(device) if device is not None else get_device()
    mean, std = F_train.mean(0), F_train.std(0, correction=0).clamp_min(1e-12)
    X = ((F_train - mean) / std).to(device)
    t = torch.as_tensor(targets, device=device)
    W = torch.zeros(X.shape[1], len(labels), dtype=X.dtype, device=device, requires_grad=True)
    b = torch.zeros(len(labels), dtype=X.dtype, device=device, requires_grad=True)
    optimizer = torch.optim.LBFGS([W, b], lr=1, max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
                                  history_size=20, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(X @ W + b, t) + 0.5 * weight_decay * (W ** 2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        scores = ((F_test - mean) / std).to(device) @ W + b
    predicted = labels[scores.argmax(1).cpu().numpy()]
    return float(np.mean(predicted == y_test))


def normalised_reconstruction_error(X, X_hat) -> float:
    """The reconstruction error divided by the data's total variance, (1/n) sum_i ||x_i - x_bar||^2.

    0 for a perfect reconstruction, 1 for predicting the mean image every time: the share of the
    variance left unexplained, comparable across data sets and image sizes.
    """
    X = np.asarray(X.detach().cpu() if hasattr(X, "detach") else X, dtype=np.float64)
    return reconstruction_error(X, X_hat) / reconstruction_error(X, np.broadcast_to(X.mean(axis=0), X.shape))
@dataclass
class ModeCoverage:
    """What :func:`mode_coverage` measured: ``modes_covered`` of ``n_modes``, the share of
    high-quality samples, and ``counts[k]``, the high-quality samples assigned to mode k."""

    modes_covered: int
    n_modes: int
    high_quality_fraction: float
    counts: np.ndarray


def mode_coverage(samples, centres, std: float, n_std: float = 3.0, min_count: int = 20) -> ModeCoverage:
    """How many modes of a mixture of isotropic Gaussians N(c_k, std^2 I) a set of samples covers.

    The criterion, in three steps:

    1. each sample x is assigned to its nearest centre k(x) = argmin_k ||x - c_k||; for equal
       weights and equal isotropic covariances this is the component of largest responsibility;
    2. the sample is **high-quality** when it lies within ``n_std`` standard deviations of that
       centre, ||x - c_k(x)|| <= n_std * std;
    3. mode k is **covered** when at least ``min_count`` high-quality samples are assigned to it.

    With 10,000 samples and 25 modes, a mode gets 400 of them on average; the default
    ``min_count = 20`` (5% of that) ignores a handful of stray samples near a centre.
    """
    X = as_2d_array(samples, "samples", min_rows=1)
    C = as_2d_array(centres, "centres", min_rows=1)
    if X.shape[1] != C.shape[1]:
        raise ValueError(f"samples and centres must have as many columns, got {X.shape[1]} and {C.shape[1]}")
    if not std > 0 or not n_std > 0:
        raise ValueError(f"std and n_std must be positive, got std={std!r}, n_std={n_std!r}")
    if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 1:
        raise ValueError(f"min_count must be a positive int, got {min_count!r}")
    distances = cdist(X, C)
    nearest = distances.argmin(axis=1)
    high_quality = distances[np.arange(len(X)), nearest] <= n_std * std
    counts = np.bincount(nearest[high_quality], minlength=len(C))
    return ModeCoverage(int((counts >= min_count).sum()), len(C), float(high_quality.mean()), counts)
