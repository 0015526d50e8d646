"""Anomaly detection by reconstruction error.

The recipe of the lecture: train an autoencoder on normal data x_1..x_n only;
it learns the manifold the normal data live on, so a new x that does not come
from that distribution is reconstructed badly. Flag x as an anomaly when

    s(x) = ||x - psi(phi(x))||^2 > tau.

This module holds each step: the split that hides one class from training
(:func:`anomaly_split`), the scores (:func:`reconstruction_errors`), the
threshold tau (:func:`choose_threshold`), and the evaluation (:func:`detection_rates`,
:func:`roc_curve`, :func:`roc_auc`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import numpy as np
import torch
from torch import nn

from .training import make_loader, to_device


def _scores_array(scores, name: str = "scores") -> np.ndarray:
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().numpy()
    try:
        arr = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a 1-D array of numbers: {err}") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _labels_array(is_anomaly, n: int) -> np.ndarray:
    if isinstance(is_anomaly, torch.Tensor):
        is_anomaly = is_anomaly.detach().cpu().numpy()
    arr = np.asarray(is_anomaly)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"is_anomaly must be 1-D with one entry per score ({n}), got shape {arr.shape}")
    if arr.dtype != bool:
        if not np.all(np.isin(arr, (0, 1))):
            raise ValueError("is_anomaly must hold booleans or 0/1 labels (1 = anomaly)")
        arr = arr.astype(bool)
    return arr


@torch.no_grad()
def reconstruction_errors(model: nn.Module, X, batch_size: int = 512, device=None) -> np.ndarray:
    """The anomaly score of every sample: s(x_i) = ||x_i - psi(phi(x_i))||^2.

    ``X`` is an array or tensor of inputs (n, ...) in the layout the model
    takes. Runs in evaluation mode, in batches, on ``device`` (default: where
    the model's parameters are). Returns a float64 array of shape (n,).
    The squared norm ranks samples exactly as the norm does, so the ROC AUC is
    the same for either; only the threshold's scale differs.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    param = next(model.parameters(), None)
    if not isinstance(X, torch.Tensor):
        # Arrays take the model's dtype: float64 data must not hit float32 weights.
        X = torch.as_tensor(np.asarray(X), dtype=param.dtype if param is not None else torch.float32)
    if X.dim() < 2 or X.shape[0] == 0:
        raise ValueError(f"X must have shape (n, ...) with n >= 1 samples, got {tuple(X.shape)}")
    device = device or (param.device if param is not None else torch.device("cpu"))
    was_training = model.training
    model.eval()
    scores = []
    for (x,) in make_loader(X, batch_size=batch_size):
        x = to_device(x, device)
        x_hat = model(x)
        scores.append(((x - x_hat) ** 2).flatten(1).sum(dim=1).double().cpu())
    model.train(was_training)
    return torch.cat(scores).numpy()


def choose_threshold(
    scores_normal, *, false_positive_rate: float | None = None, quantile: float | None = None
) -> float:
    """The threshold tau from the scores of NORMAL validation samples.

    Give exactly one of:

    - ``false_positive_rate``: the largest share of normal samples we accept to
      flag. With n scores, at most m = floor(false_positive_rate * n) of them
      may lie strictly above tau, so tau is the (m+1)-th largest score;
    - ``quantile``: the same with ``false_positive_rate = 1 - quantile``
      (tau is then that empirical quantile of the normal scores).

    tau is always one of the observed scores, and the validation false-positive
    rate never exceeds the target. Choosing tau from normal data alone is the
    point: anomalies are what we have no examples of.
    """
    scores = _scores_array(scores_normal, "scores_normal")
    if (quantile is None) == (false_positive_rate is None):
        raise ValueError("give exactly one of quantile or false_positive_rate")
    if quantile is not None:
        name, value = "quantile", quantile
    else:
        name, value = "false_positive_rate", false_positive_rate
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    rate = 1.0 - float(value) if quantile is not None else float(value)
    n = scores.size
    # round(): 0.29 * 100 is 28.999999999999996 in floating point, which must count as 29.
    allowed = min(math.floor(round(rate * n, 9)), n - 1)
    return float(np.sort(scores)[n - 1 - allowed])


def detection_rates(scores, is_anomaly, threshold: float) -> tuple[float, float]:
    """``(true_positive_rate, false_positive_rate)`` of the rule "anomaly if score > threshold".

    TPR: the share of anomalies flagged; FPR: the share of normal samples flagged.
    """
    scores = _scores_array(scores)
    labels = _labels_array(is_anomaly, scores.shape[0])
    _check_both_classes(labels)
    flagged = scores > threshold
    return float(flagged[labels].mean()), float(flagged[~labels].mean())


def _check_both_classes(labels: np.ndarray) -> None:
    if labels.all() or not labels.any():
        raise ValueError("is_anomaly must contain both anomalies (True) and normal samples (False)")


def roc_curve(scores, is_anomaly) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ROC curve: ``(fpr, tpr, thresholds)``, one point per distinct score.

    Sweeping tau from above the largest score down to the smallest, the point
    for tau = thresholds[t] is (FPR, TPR) of "anomaly if score >= tau". The
    curve starts at (0, 0) (threshold +inf) and ends at (1, 1).
    """
    scores = _scores_array(scores)
    labels = _labels_array(is_anomaly, scores.shape[0])
    _check_both_classes(labels)
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    # Tied scores must enter the curve together: keep the last index of each run.
    last_of_run = np.r_[np.flatnonzero(np.diff(sorted_scores)), sorted_scores.size - 1]
    true_pos = np.cumsum(sorted_labels)[last_of_run]
    false_pos = (last_of_run + 1) - true_pos
    tpr = np.r_[0.0, true_pos / labels.sum()]
    fpr = np.r_[0.0, false_pos / (~labels).sum()]
    thresholds = np.r_[np.inf, sorted_scores[last_of_run]]
    return fpr, tpr, thresholds


def roc_auc(scores, is_anomaly) -> float:
    """The area under the ROC curve, computed as a rank statistic.

    AUC = P(s(anomaly) > s(normal)) + 1/2 P(tie), the probability that a random
    anomaly scores above a random normal sample. With the average ranks R of
    all scores (ties share their mean rank), n_a anomalies and n_0 normal samples,

        AUC = (sum_{i anomaly} R_i - n_a (n_a + 1) / 2) / (n_a n_0),

    the Mann-Whitney U statistic divided by n_a n_0. 1 is a perfect detector,
    0.5 a random one.
    """
    scores = _scores_array(scores)
    labels = _labels_array(is_anomaly, scores.shape[0])
    _check_both_classes(labels)
    values, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    # Ranks 1..n in increasing order; a run of c tied values shares its middle rank.
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0
    ranks = average_rank[inverse]
    n_a = int(labels.sum())
    n_0 = labels.size - n_a
    u = ranks[labels].sum() - n_a * (n_a + 1) / 2.0
    return float(u / (n_a * n_0))


@dataclass
class AnomalySplit:
    """Data for anomaly detection with one class held out as the anomaly.

    X_train, X_val : normal samples only (for training and for the threshold);
    X_test : every test sample; is_anomaly : True where y_test is the held-out class;
    y_test : the original labels; anomaly_class : the held-out label.
    """

    X_train: np.ndarray
    X_val: np.ndarray
    X_test: np.ndarray
    is_anomaly: np.ndarray
    y_test: np.ndarray
    anomaly_class: int


def anomaly_split(
    X_train, y_train, X_test, y_test, anomaly_class: int, val_fraction: float = 0.1, seed: int = 0
) -> AnomalySplit:
    """Hide one class from training: it becomes the anomaly of the test set.

    The samples of ``X_train`` whose label is not ``anomaly_class`` are shuffled
    and split into training and validation parts (``val_fraction`` of them for
    validation, the threshold and early stopping). The test set is kept whole,
    labelled ``is_anomaly = (y_test == anomaly_class)``. Works with any arrays
    whose first axis indexes samples, e.g. Fashion-MNIST images (n, 1, 28, 28).
    """
    X_train, X_test = np.asarray(X_train), np.asarray(X_test)
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    for name, X, y in (("train", X_train, y_train), ("test", X_test, y_test)):
        if y.ndim != 1 or X.ndim < 2 or X.shape[0] != y.shape[0]:
            raise ValueError(
                f"X_{name} must be (n, ...) and y_{name} (n,) with the same n, got {X.shape} and {y.shape}"
            )
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction!r}")
    if not np.any(y_test == anomaly_class):
        raise ValueError(
            f"anomaly_class {anomaly_class!r} does not occur in y_test; its labels are {np.unique(y_test)}"
        )
    normal = np.flatnonzero(y_train != anomaly_class)
    if normal.size < 2:
        raise ValueError("y_train needs at least two samples outside anomaly_class")
    order = np.random.default_rng(seed).permutation(normal)
    n_val = max(1, int(round(val_fraction * order.size)))
    return AnomalySplit(
        X_train=X_train[order[n_val:]],
        X_val=X_train[order[:n_val]],
        X_test=X_test,
        is_anomaly=y_test == anomaly_class,
        y_test=y_test,
        anomaly_class=anomaly_class,
    )
