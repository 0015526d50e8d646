"""Tests of course_lib.anomaly: ROC AUC and ROC curve against scikit-learn, the
threshold's false-positive guarantee, the scores by hand, the split, and the
whole recipe on sklearn's digits."""
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve
from torch import nn

from course_lib.anomaly import (
    anomaly_split,
    choose_threshold,
    detection_rates,
    reconstruction_errors,
    roc_auc,
    roc_curve,
)
from course_lib.autoencoders import MLPAutoencoder
from course_lib.losses import autoencoder_loss_fn
from course_lib.training import fit
from course_lib.utils import seed_everything


# One torch thread for these tiny models: see the autouse fixture in conftest.py.



def random_scores(seed, n=300, ties=False):
    rng = np.random.default_rng(seed)
    is_anomaly = rng.random(n) < 0.3
    scores = rng.normal(size=n) + 0.8 * is_anomaly
    if ties:  # rounding creates many tied scores across both classes
        scores = np.round(scores, 1)
    return scores, is_anomaly


# ----------------------------------------------------------------------- ROC AUC
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [False, True])
def test_roc_auc_matches_sklearn(seed, ties):
    scores, is_anomaly = random_scores(seed, ties=ties)
    # Both are exact rank statistics in float64 (sums of at most 300 ranks, well
    # inside float64's exact integers); only the final division rounds.
    assert roc_auc(scores, is_anomaly) == pytest.approx(roc_auc_score(is_anomaly, scores), rel=1e-12)


def test_roc_auc_by_hand():
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0  # perfect
    assert roc_auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0  # perfectly wrong
    assert roc_auc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == 0.5  # all tied
    # pairs (anomaly, normal): (0.4 vs 0.1) win, (0.4 vs 0.5) loss,
    # (0.5 vs 0.1) win, (0.5 vs 0.5) tie = 1/2  ->  2.5 / 4
    assert roc_auc([0.1, 0.5, 0.4, 0.5], [0, 0, 1, 1]) == 0.625


@pytest.mark.parametrize("ties", [False, True])
def test_roc_curve_matches_sklearn_and_its_area_is_the_auc(ties):
    scores, is_anomaly = random_scores(11, ties=ties)
    fpr, tpr, thresholds = roc_curve(scores, is_anomaly)
    sk_fpr, sk_tpr, sk_thresholds = sk_roc_curve(is_anomaly, scores, drop_intermediate=False)
    # Counts over the same sorted scores divided by the same totals: identical
    # up to the rounding of one division.
    np.testing.assert_allclose(fpr, sk_fpr, rtol=0, atol=1e-15)
    np.testing.assert_allclose(tpr, sk_tpr, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(thresholds, sk_thresholds)
    # The trapezoid rule under the curve is the Mann-Whitney statistic exactly
    # (a tie is a diagonal step worth 1/2); sums of ~300 terms round to ~1e-14.
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(scores, is_anomaly), rel=1e-12)


def test_detection_rates_by_hand():
    scores = [0.1, 0.4, 0.6, 0.9, 0.3, 0.7]
    is_anomaly = [False, False, False, True, True, True]
    # threshold 0.5: anomalies flagged 0.9, 0.7 (2 of 3); normal flagged 0.6 (1 of 3)
    tpr, fpr = detection_rates(scores, is_anomaly, 0.5)
    assert tpr == pytest.approx(2 / 3) and fpr == pytest.approx(1 / 3)


# --------------------------------------------------------------------- threshold
@pytest.mark.parametrize("target", [0.01, 0.05, 0.1, 0.29, 0.5])
def test_threshold_flags_exactly_the_allowed_share_of_normal_scores(target):
    scores = np.random.default_rng(0).exponential(size=1000)  # distinct scores
    tau = choose_threshold(scores, false_positive_rate=target)
    # With 1000 distinct scores, the largest share <= target that a threshold
    # can give is target itself: exactly target * 1000 scores lie above tau.
    assert np.sum(scores > tau) == round(target * 1000)
    assert tau in scores
    assert tau == choose_threshold(scores, quantile=1 - target)


def test_threshold_never_exceeds_the_target_with_ties():
    scores = np.repeat([1.0, 2.0, 3.0, 4.0], 5)  # 20 scores in runs of 5
    for target in (0.1, 0.25, 0.3, 0.6):
        tau = choose_threshold(scores, false_positive_rate=target)
        assert np.mean(scores > tau) <= target
    # 0.3 allows 6 of 20: the run of 4s (5 scores) but not the 3s as well
    assert choose_threshold(scores, false_positive_rate=0.3) == 3.0


def test_threshold_extremes():
    scores = np.array([3.0, 1.0, 2.0])
    assert choose_threshold(scores, false_positive_rate=0.0) == 3.0  # flag nothing normal
    assert choose_threshold(scores, quantile=0.0) == 1.0  # flag all but the smallest
    assert choose_threshold(scores, quantile=0.5) == 2.0  # the median


# ------------------------------------------------------------------------ scores
class Zero(nn.Module):
    """Reconstructs every input as 0, so the score of x is ||x||^2."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.zeros_like(x)


def test_reconstruction_errors_are_per_sample_squared_norms():
    X = np.array([[[1.0, 2.0]], [[0.0, 0.0]], [[3.0, -4.0]]])  # (3, 1, 2), float64 into a float32 model
    np.testing.assert_array_equal(reconstruction_errors(Zero(), X), [5.0, 0.0, 25.0])


def test_reconstruction_errors_do_not_depend_on_batching():
    seed_everything(0)
    model = MLPAutoencoder(64, (16,), 4)
    X = torch.rand(50, 64)
    model.train()
    small = reconstruction_errors(model, X, batch_size=7)
    large = reconstruction_errors(model, X, batch_size=512)
    # Same arithmetic per sample; batched matrix products may sum in a
    # different order, float32 relative error ~1e-6.
    np.testing.assert_allclose(small, large, rtol=1e-5)
    assert small.shape == (50,) and small.dtype == np.float64
    assert model.training  # the mode is restored


# ------------------------------------------------------------------------- split
def test_anomaly_split_hides_the_class_from_training():
    rng = np.random.default_rng(0)
    X_train, y_train = rng.random((200, 1, 4, 4)), np.repeat(np.arange(10), 20)
    X_test, y_test = rng.random((50, 1, 4, 4)), np.repeat(np.arange(10), 5)
    split = anomaly_split(X_train, y_train, X_test, y_test, anomaly_class=3, val_fraction=0.1)
    assert split.X_train.shape == (162, 1, 4, 4) and split.X_val.shape == (18, 1, 4, 4)
    normal = X_train[y_train != 3].reshape(180, -1)
    used = np.concatenate([split.X_train, split.X_val]).reshape(180, -1)
    # train and validation are disjoint and together exactly the normal samples
    assert np.array_equal(np.unique(used, axis=0), np.unique(normal, axis=0))
    assert len(np.unique(used, axis=0)) == 180
    np.testing.assert_array_equal(split.is_anomaly, y_test == 3)
    assert split.X_test is not None and split.X_test.shape == X_test.shape


# ----------------------------------------------------------------- bad arguments
def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="both"):
        roc_auc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="is_anomaly"):
        roc_auc([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match="is_anomaly"):
        roc_auc([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([0.1, np.nan], [0, 1])
    with pytest.raises(ValueError, match="exactly one"):
        choose_threshold([1.0, 2.0])
    with pytest.raises(ValueError, match="exactly one"):
        choose_threshold([1.0, 2.0], quantile=0.9, false_positive_rate=0.1)
    with pytest.raises(ValueError, match="false_positive_rate"):
        choose_threshold([1.0, 2.0], false_positive_rate=1.5)
    with pytest.raises(ValueError, match="anomaly_class"):
        anomaly_split(np.zeros((4, 2)), np.arange(4), np.zeros((2, 2)), np.array([0, 1]), anomaly_class=7)
    with pytest.raises(ValueError, match="X_train"):
        anomaly_split(np.zeros((4, 2)), np.arange(3), np.zeros((2, 2)), np.array([0, 1]), anomaly_class=1)


# -------------------------------------------------------------------- the recipe
def test_recipe_on_digits_detects_the_held_out_digit():
    data = load_digits()
    X, y = (data.data / 16.0).astype(np.float32), data.target
    split = anomaly_split(X[:1200], y[:1200], X[1200:], y[1200:], anomaly_class=0, seed=0)
    seed_everything(0)
    model = MLPAutoencoder(64, (32,), 8)
    fit(
        model,
        autoencoder_loss_fn(),
        torch.tensor(split.X_train),
        torch.tensor(split.X_val),
        epochs=30,
        batch_size=64,
        lr=3e-3,
        device="cpu",
        progress=False,
    )
    test_scores = reconstruction_errors(model, split.X_test)
    auc = roc_auc(test_scores, split.is_anomaly)
    # A detector that ignores the data scores 0.5. Zeros look unlike every other
    # digit, and this small model reaches about 0.94; 0.85 leaves room for other
    # platforms and still proves the reconstruction error carries the signal.
    assert auc > 0.85
    tau = choose_threshold(reconstruction_errors(model, split.X_val), false_positive_rate=0.05)
    tpr, fpr = detection_rates(test_scores, split.is_anomaly, tau)
    assert tpr > fpr
