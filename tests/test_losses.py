"""Tests of course_lib.losses: every loss and penalty against a hand computation or
an independent oracle (torch's own losses and distributions, autograd's Jacobian,
torch's convolutions)."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.autoencoders import ContractiveAutoencoder, SparseAutoencoder
from course_lib.losses import (
    absolute_loss,
    autoencoder_loss_fn,
    contractive_loss_fn,
    contractive_penalty,
    conv1d_matrix,
    conv2d_matrix,
    correntropy_loss,
    denoising_loss_fn,
    gaussian_corruption,
    huber_loss,
    l1_activity_penalty,
    l1_sparse_loss_fn,
    reconstruction_loss,
    salt_and_pepper,
    sparse_kl_loss_fn,
    sparse_kl_penalty,
)


# Hand computations below are exact in binary or involve a handful of float64
# operations, so they agree to ~1e-16 relative; 1e-12 leaves room for the order
# of summation and still catches any wrong factor, sign or reduction.
TIGHT = dict(rtol=1e-12, atol=1e-12)


def t64(values):
    return torch.tensor(values, dtype=torch.float64)


# A batch of n = 2 samples with d = 2 entries and a reconstruction with
# residuals x - x_hat = [[-1, 0], [0, 2]].
X = t64([[0.0, 1.0], [2.0, 3.0]])
X_HAT = t64([[1.0, 1.0], [2.0, 1.0]])


# ------------------------------------------------------------- reconstruction losses
def test_reconstruction_loss_is_mean_over_samples_of_sum_over_entries():
    # per sample: 1^2 + 0^2 = 1 and 0^2 + 2^2 = 4; mean over the batch 2.5
    torch.testing.assert_close(reconstruction_loss(X_HAT, X), t64(2.5), **TIGHT)
    torch_sum = F.mse_loss(X_HAT, X, reduction="sum")
    torch.testing.assert_close(reconstruction_loss(X_HAT, X), torch_sum / 2, **TIGHT)


def test_reconstruction_loss_sums_over_every_entry_of_an_image():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 4, 4, generator=g, dtype=torch.float64)
    x_hat = torch.rand(3, 1, 4, 4, generator=g, dtype=torch.float64)
    expected = sum(((x[i] - x_hat[i]) ** 2).sum() for i in range(3)) / 3
    torch.testing.assert_close(reconstruction_loss(x_hat, x), expected, **TIGHT)


def test_absolute_loss_by_hand():
    # per sample: |-1| + 0 = 1 and 0 + |2| = 2; mean 1.5
    torch.testing.assert_close(absolute_loss(X_HAT, X), t64(1.5), **TIGHT)


def test_huber_loss_by_hand_on_both_branches():
    x = torch.zeros(2, 2, dtype=torch.float64)
    x_hat = t64([[0.5, -3.0], [1.0, 0.0]])
    # delta = 1: |r| = 0.5 -> 0.5^2/2 = 0.125; |r| = 3 -> 1 * (3 - 0.5) = 2.5;
    # |r| = 1 sits on the switch, where both branches give 0.5; |r| = 0 -> 0.
    # per sample 2.625 and 0.5, mean 1.5625
    torch.testing.assert_close(huber_loss(x_hat, x, delta=1.0), t64(1.5625), **TIGHT)


def test_huber_loss_matches_torch():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 7, generator=g, dtype=torch.float64)
    x_hat = torch.randn(5, 7, generator=g, dtype=torch.float64)
    for delta in (0.3, 1.0, 2.5):
        expected = F.huber_loss(x_hat, x, delta=delta, reduction="sum") / 5
        torch.testing.assert_close(huber_loss(x_hat, x, delta=delta), expected, **TIGHT)


def test_correntropy_loss_by_hand():
    x = torch.zeros(1, 3, dtype=torch.float64)
    x_hat = t64([[0.0, 1.0, 2.0]])
    # sigma = 2: sum_k 1 - exp(-r_k^2 / 2) = 0 + (1 - e^{-1/2}) + (1 - e^{-2})
    expected = t64(2.0 - math.exp(-0.5) - math.exp(-2.0))
    torch.testing.assert_close(correntropy_loss(x_hat, x, sigma=2.0), expected, **TIGHT)


def test_correntropy_loss_is_d_minus_the_lectures_correntropy():
    # Minimising the loss must be maximising sum_k exp(-r_k^2 / sigma).
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 6, generator=g, dtype=torch.float64)
    x_hat = torch.randn(4, 6, generator=g, dtype=torch.float64)
    correntropy = torch.exp(-((x - x_hat) ** 2) / 0.5).sum(dim=1).mean()
    torch.testing.assert_close(correntropy_loss(x_hat, x, sigma=0.5), 6 - correntropy, **TIGHT)


def test_robust_losses_limit_the_pull_of_an_outlier():
    # One entry off by 100: the squared error's gradient on it is -2r = -200,
    # absolute and Huber are capped at 1 in magnitude, and correntropy's
    # 2r/sigma exp(-r^2/sigma) has vanished (exp(-10^4) underflows to 0).
    x = torch.zeros(1, 3, dtype=torch.float64)
    outlier = t64([[0.0, 0.1, 100.0]])
    grads = {}
    for name, loss in {
        "squared": reconstruction_loss,
        "absolute": absolute_loss,
        "huber": huber_loss,
        "correntropy": correntropy_loss,
    }.items():
        x_hat = outlier.clone().requires_grad_(True)
        loss(x_hat, x).backward()
        grads[name] = x_hat.grad[0, 2].item()
    assert grads["squared"] == pytest.approx(200.0, rel=1e-12)
    assert grads["absolute"] == pytest.approx(1.0, rel=1e-12)
    assert grads["huber"] == pytest.approx(1.0, rel=1e-12)
    assert grads["correntropy"] == 0.0
    assert correntropy_loss(outlier, x, sigma=1.0).item() <= 3.0  # at most 1 per entry


# ------------------------------------------------------------------------ penalties
def test_sparse_kl_penalty_by_hand():
    rho_hat = t64([0.1, 0.5])
    # KL(0.1 || 0.1) = 0; KL(0.1 || 0.5) = 0.1 ln(0.1/0.5) + 0.9 ln(0.9/0.5)
    expected = t64(0.1 * math.log(0.2) + 0.9 * math.log(1.8))
    torch.testing.assert_close(sparse_kl_penalty(0.1, rho_hat), expected, **TIGHT)


def test_sparse_kl_penalty_matches_torch_bernoulli_kl():
    rho_hat = t64([0.01, 0.05, 0.3, 0.77, 0.99])
    oracle = torch.distributions.kl_divergence(
        torch.distributions.Bernoulli(probs=torch.full_like(rho_hat, 0.05)),
        torch.distributions.Bernoulli(probs=rho_hat),
    ).sum()
    # torch clamps probabilities at float64 eps inside its logs; these are far
    # from the clamps, so the two agree to rounding (a few 1e-16).
    torch.testing.assert_close(sparse_kl_penalty(0.05, rho_hat), oracle, **TIGHT)


def test_sparse_kl_penalty_is_zero_only_at_the_target_and_pulls_towards_it():
    rho_hat = t64([0.2, 0.5, 0.02]).requires_grad_(True)
    penalty = sparse_kl_penalty(0.05, rho_hat)
    penalty.backward()
    assert penalty.item() > 0
    # d/d rho_hat KL = -rho/rho_hat + (1-rho)/(1-rho_hat): positive above rho, negative below
    assert rho_hat.grad[0] > 0 and rho_hat.grad[1] > 0 and rho_hat.grad[2] < 0
    at_target = sparse_kl_penalty(0.05, torch.full((4,), 0.05, dtype=torch.float64))
    assert at_target.item() == pytest.approx(0.0, abs=1e-15)


def test_sparse_kl_penalty_stays_finite_for_saturated_units():
    penalty = sparse_kl_penalty(0.05, torch.tensor([0.0, 1.0]))
    assert torch.isfinite(penalty)


def test_l1_activity_penalty_by_hand():
    z = t64([[1.0, -2.0], [0.0, 3.0]])
    # per sample 3 and 3, mean 3
    torch.testing.assert_close(l1_activity_penalty(z), t64(3.0), **TIGHT)


def test_contractive_penalty_by_hand():
    W = t64([[1.0, 2.0], [3.0, 0.0]])
    h = t64([0.5, 0.25])
    # (0.5 * 0.5)^2 (1 + 4) + (0.25 * 0.75)^2 (9 + 0) = 0.3125 + 0.31640625
    torch.testing.assert_close(contractive_penalty(W, h), t64(0.62890625), **TIGHT)


def _jacobian_frobenius_sq(encode, x):
    """||d encode / dx||_F^2 for one sample, from autograd."""
    J = torch.autograd.functional.jacobian(encode, x)
    return (J**2).sum()


def test_contractive_penalty_matches_autograd_jacobian():
    g = torch.Generator().manual_seed(3)
    d, m, n = 7, 5, 4
    W = torch.randn(m, d, generator=g, dtype=torch.float64)
    b = torch.randn(m, generator=g, dtype=torch.float64)
    X_batch = torch.randn(n, d, generator=g, dtype=torch.float64)

    def encode(x):
        return torch.sigmoid(W @ x + b)

    expected = [_jacobian_frobenius_sq(encode, x) for x in X_batch]
    # one sample, then a batch (averaged over samples)
    torch.testing.assert_close(contractive_penalty(W, encode(X_batch[0])), expected[0], **TIGHT)
    H = torch.sigmoid(X_batch @ W.T + b)
    torch.testing.assert_close(contractive_penalty(W, H), torch.stack(expected).mean(), **TIGHT)


def test_contractive_penalty_matches_autograd_on_the_model():
    torch.manual_seed(0)
    model = ContractiveAutoencoder(input_dim=12, code_dim=6).double()
    X_batch = torch.randn(3, 12, dtype=torch.float64)
    expected = torch.stack([_jacobian_frobenius_sq(lambda x: model.encode(x[None])[0], x) for x in X_batch])
    penalty = contractive_penalty(model.encoder_weight, model.encode(X_batch))
    torch.testing.assert_close(penalty, expected.mean(), **TIGHT)


# ---------------------------------------------------------------------- corruptions
def test_gaussian_corruption_noise_has_the_right_moments():
    N, sigma = 200_000, 0.3
    x = torch.full((N,), 0.5, dtype=torch.float64)[:, None]
    noise = gaussian_corruption(x, sigma, generator=torch.Generator().manual_seed(0)) - x
    # The sample mean has standard error sigma/sqrt(N) and the sample std
    # about sigma/sqrt(2N); 5 standard errors fail by chance with p < 1e-6.
    assert abs(noise.mean().item()) < 5 * sigma / math.sqrt(N)
    assert abs(noise.std().item() - sigma) < 5 * sigma / math.sqrt(2 * N)


def test_gaussian_corruption_is_reproducible_and_leaves_x_alone():
    x = torch.rand(4, 1, 5, 5)
    x_before = x.clone()
    a = gaussian_corruption(x, 0.2, generator=torch.Generator().manual_seed(7))
    b = gaussian_corruption(x, 0.2, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(x, x_before)
    assert not torch.equal(a, x)
    assert torch.equal(gaussian_corruption(x, 0.0), x)


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5])
def test_salt_and_pepper_corrupts_a_share_p_with_zeros_and_ones(p):
    N = 100_000
    # 0.5 is neither salt nor pepper, so every corrupted entry is visible.
    x = torch.full((100, N // 100), 0.5)
    x_tilde = salt_and_pepper(x, p, generator=torch.Generator().manual_seed(1))
    corrupted = x_tilde != 0.5
    assert set(torch.unique(x_tilde[corrupted]).tolist()) <= {0.0, 1.0}
    # The count of corrupted entries is Binomial(N, p): standard deviation
    # sqrt(p(1-p)/N) of the rate; 5 of them fail by chance with p < 1e-6.
    rate = corrupted.double().mean().item()
    assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / N)
    # Salt and pepper are equally likely: Binomial(K, 1/2) among K corrupted.
    K = int(corrupted.sum())
    salt_share = (x_tilde[corrupted] == 1.0).double().mean().item()
    assert abs(salt_share - 0.5) < 5 * math.sqrt(0.25 / K)


def test_salt_and_pepper_extremes_and_reproducibility():
    x = torch.rand(3, 1, 6, 6)
    assert torch.equal(salt_and_pepper(x, 0.0), x)
    everything = salt_and_pepper(x, 1.0)
    assert set(torch.unique(everything).tolist()) <= {0.0, 1.0}
    a = salt_and_pepper(x, 0.3, generator=torch.Generator().manual_seed(3))
    b = salt_and_pepper(x, 0.3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


# ------------------------------------------------------------------- loss functions
class Identity(nn.Module):
    """A "model" that copies its input: perfect on clean data, useless for denoising."""

    def encode(self, x):
        return x

    def decode(self, z):
        return z

    def forward(self, x):
        return x


def test_denoising_loss_is_measured_against_the_clean_input():
    x = torch.zeros(4, 3, dtype=torch.float64)
    loss_fn = denoising_loss_fn(lambda batch: batch + 1.0)
    # The copying model reproduces x_tilde = x + 1, so against clean x each
    # sample costs 3 * 1^2; against x_tilde it would cost 0.
    torch.testing.assert_close(loss_fn(Identity(), x), t64(3.0), **TIGHT)
    # Labels in the batch are ignored.
    torch.testing.assert_close(loss_fn(Identity(), (x, torch.arange(4))), t64(3.0), **TIGHT)


def test_autoencoder_loss_fn_uses_the_given_reconstruction_loss():
    model = nn.Linear(2, 2, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(t64([[1.0, 0.0], [1.0, 1.0]]))  # x -> (x1, x1 + x2)
    x = t64([[1.0, 2.0], [3.0, -1.0]])
    x_hat = model(x)
    torch.testing.assert_close(autoencoder_loss_fn()(model, x), reconstruction_loss(x_hat, x), **TIGHT)
    with_labels = autoencoder_loss_fn(absolute_loss)(model, (x, None))
    torch.testing.assert_close(with_labels, absolute_loss(x_hat, x), **TIGHT)


def test_sparse_loss_fns_add_the_weighted_penalty():
    torch.manual_seed(0)
    model = SparseAutoencoder(input_dim=6, code_dim=4).double()
    x = torch.rand(5, 6, dtype=torch.float64)
    z = model.encode(x)
    x_hat = model(x)
    recon = reconstruction_loss(x_hat, x)
    rho, lam = 0.1, 0.7
    rho_hat = [z[:, j].mean().item() for j in range(4)]
    kl = sum(rho * math.log(rho / r) + (1 - rho) * math.log((1 - rho) / (1 - r)) for r in rho_hat)
    torch.testing.assert_close(sparse_kl_loss_fn(rho, lam)(model, x), recon + lam * kl, **TIGHT)
    l1 = z.abs().sum().item() / 5
    torch.testing.assert_close(l1_sparse_loss_fn(lam)(model, x), recon + lam * l1, **TIGHT)


def test_contractive_loss_fn_adds_the_jacobian_norm_from_autograd():
    torch.manual_seed(1)
    model = ContractiveAutoencoder(input_dim=5, code_dim=3).double()
    x = torch.randn(4, 5, dtype=torch.float64)
    lam = 0.3
    jac = torch.stack([_jacobian_frobenius_sq(lambda v: model.encode(v[None])[0], v) for v in x]).mean()
    expected = reconstruction_loss(model(x), x) + lam * jac
    torch.testing.assert_close(contractive_loss_fn(lam)(model, x), expected, **TIGHT)
    with pytest.raises(TypeError, match="encoder_weight"):
        contractive_loss_fn(lam)(Identity(), x)


# ------------------------------------------------------------ convolution as a matrix
def test_conv1d_matrix_is_the_lectures_banded_matrix():
    w = t64([1.0, 2.0, 3.0])
    expected = t64(
        [
            [1, 2, 3, 0, 0, 0, 0],
            [0, 1, 2, 3, 0, 0, 0],
            [0, 0, 1, 2, 3, 0, 0],
            [0, 0, 0, 1, 2, 3, 0],
            [0, 0, 0, 0, 1, 2, 3],
        ]
    )
    assert torch.equal(conv1d_matrix(w, 7), expected)


# (n, k, stride, padding): plain, strided, padded, and strided with padding
# where the transposed convolution needs output_padding to get back to n.
CONV1D_CASES = [(7, 3, 1, 0), (7, 3, 2, 0), (8, 3, 1, 1), (8, 3, 2, 1), (10, 4, 3, 2)]


@pytest.mark.parametrize("n, k, stride, padding", CONV1D_CASES)
def test_conv1d_and_its_transpose_are_multiplications_by_C_and_C_transposed(n, k, stride, padding):
    g = torch.Generator().manual_seed(n * 100 + k * 10 + stride)
    w = torch.randn(k, generator=g, dtype=torch.float64)
    x = torch.randn(n, generator=g, dtype=torch.float64)
    C = conv1d_matrix(w, n, stride=stride, padding=padding)
    y_conv = F.conv1d(x[None, None], w[None, None], stride=stride, padding=padding)[0, 0]
    torch.testing.assert_close(C @ x, y_conv, **TIGHT)

    y = torch.randn(C.shape[0], generator=g, dtype=torch.float64)
    # conv_transpose1d returns (n_out - 1) stride + k - 2 padding entries; the
    # remainder of the forward floor division comes back as output_padding.
    output_padding = (n + 2 * padding - k) % stride
    x_back = F.conv_transpose1d(
        y[None, None], w[None, None], stride=stride, padding=padding, output_padding=output_padding
    )[0, 0]
    torch.testing.assert_close(C.T @ y, x_back, **TIGHT)


CONV2D_CASES = [((5, 6), 3, 1, 0), ((7, 7), 3, 2, 1), ((8, 6), 2, 2, 0)]


@pytest.mark.parametrize("shape, k, stride, padding", CONV2D_CASES)
def test_conv2d_and_its_transpose_are_multiplications_by_C_and_C_transposed(shape, k, stride, padding):
    g = torch.Generator().manual_seed(sum(shape) + k + stride)
    w = torch.randn(k, k, generator=g, dtype=torch.float64)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    C = conv2d_matrix(w, shape, stride=stride, padding=padding)
    y_conv = F.conv2d(x[None, None], w[None, None], stride=stride, padding=padding)[0, 0]
    torch.testing.assert_close(C @ x.flatten(), y_conv.flatten(), **TIGHT)

    y = torch.randn(*y_conv.shape, generator=g, dtype=torch.float64)
    output_padding = tuple((s + 2 * padding - k) % stride for s in shape)
    x_back = F.conv_transpose2d(
        y[None, None], w[None, None], stride=stride, padding=padding, output_padding=output_padding
    )[0, 0]
    torch.testing.assert_close(C.T @ y.flatten(), x_back.flatten(), **TIGHT)


# ------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize("rho", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_rho_outside_the_open_unit_interval_is_rejected(rho):
    with pytest.raises(ValueError, match="rho"):
        sparse_kl_penalty(rho, torch.full((3,), 0.5))
    with pytest.raises(ValueError, match="rho"):
        sparse_kl_loss_fn(rho, lam=1.0)


@pytest.mark.parametrize("sigma", [0.0, -1.0])
def test_correntropy_needs_a_positive_sigma(sigma):
    with pytest.raises(ValueError, match="sigma"):
        correntropy_loss(X_HAT, X, sigma=sigma)


@pytest.mark.parametrize("p", [-0.01, 1.01])
def test_salt_and_pepper_needs_p_in_the_unit_interval(p):
    with pytest.raises(ValueError, match="p must lie in"):
        salt_and_pepper(torch.rand(2, 3), p)


def test_other_bad_arguments_are_named():
    with pytest.raises(ValueError, match="sigma"):
        gaussian_corruption(torch.rand(2, 3), -0.1)
    with pytest.raises(TypeError, match="generator"):
        gaussian_corruption(torch.rand(2, 3), 0.1, generator=0)
    with pytest.raises(TypeError, match="rho"):
        sparse_kl_penalty(True, torch.full((3,), 0.5))
    with pytest.raises(ValueError, match="rho_hat"):
        sparse_kl_penalty(0.1, torch.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="same shape"):
        reconstruction_loss(torch.zeros(4, 1), torch.zeros(4))
    with pytest.raises(TypeError, match="x_hat"):
        absolute_loss([[0.0]], torch.zeros(1, 1))
    with pytest.raises(ValueError, match="delta"):
        huber_loss(X_HAT, X, delta=0.0)
    with pytest.raises(ValueError, match="lam"):
        l1_sparse_loss_fn(-1.0)
    with pytest.raises(ValueError, match="h must have shape"):
        contractive_penalty(torch.zeros(3, 4), torch.zeros(2, 4))
    with pytest.raises(TypeError, match="corrupt"):
        denoising_loss_fn(0.3)
    with pytest.raises(ValueError, match="stride"):
        conv1d_matrix(t64([1.0, 2.0]), 5, stride=0)
    with pytest.raises(ValueError, match="kernel"):
        conv1d_matrix(t64([1.0, 2.0, 3.0]), 2)
