"""Losses, penalties and corruptions of the autoencoder chapter, one plain function each.

Notation (the book's): the encoder phi maps an input x to a code z = phi(x), the
decoder psi maps it back to a reconstruction x_hat = psi(z). Every loss averages
over the n samples of a batch and sums over the d entries of each sample,

    L = (1/n) sum_i l(x_i, x_hat_i),        l(x, x_hat) = sum_k l_k(x^(k) - x_hat^(k)),

so the numbers are those of the lecture's sum_i ||x_i - x_hat_i||^2 divided by n,
and a penalty weight lambda means the same thing whatever the batch size.

The last part of the module turns these pieces into ``loss_fn(model, batch)``
closures for :func:`course_lib.training.fit`, and writes a convolution as an
explicit matrix, to show that a transposed convolution multiplies by its transpose.
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Callable

import torch
from torch import nn

Tensor = torch.Tensor

# Keeps log(rho_hat) and log(1 - rho_hat) finite when a sigmoid saturates in float32.
_KL_EPS = 1e-6


# --------------------------------------------------------------------------- checks
def _check_tensor(t, name: str) -> Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    return t


def _check_pair(x_hat, x) -> None:
    _check_tensor(x_hat, "x_hat")
    _check_tensor(x, "x")
    # Broadcasting (n, 1) against (n,) would silently give an n x n loss.
    if x_hat.shape != x.shape:
        raise ValueError(
            f"x_hat and x must have the same shape, got {tuple(x_hat.shape)} and {tuple(x.shape)}"
        )
    if x.dim() < 2:
        raise ValueError(f"x must have a batch dimension first, shape (n, ...), got shape {tuple(x.shape)}")


def _check_real(value, name: str, *, low=None, high=None, low_open=False, high_open=False) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if math.isnan(value) or too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{name} must lie in {left}{lo}, {hi}{right}, got {value}")
    return value


def _per_sample_mean(entries: Tensor) -> Tensor:
    """Sum over every entry of a sample, then mean over the batch."""
    return entries.flatten(1).sum(dim=1).mean()


# ------------------------------------------------------------- reconstruction losses
def reconstruction_loss(x_hat: Tensor, x: Tensor) -> Tensor:
    """The autoencoder loss: mean squared reconstruction error per sample.

        L_AE = (1/n) sum_i ||x_i - x_hat_i||_2^2

    Summed over the entries of each sample (pixels), averaged over the batch.
    ``F.mse_loss`` averages over the pixels too, which divides this by d.
    """
    _check_pair(x_hat, x)
    return _per_sample_mean((x - x_hat) ** 2)


def absolute_loss(x_hat: Tensor, x: Tensor) -> Tensor:
    """The absolute-value loss, robust to outliers:

        L = (1/n) sum_i sum_k |x_i^(k) - x_hat_i^(k)|

    A residual r costs |r| instead of r^2, so a corrupted pixel pulls on the
    model linearly rather than quadratically.
    """
    _check_pair(x_hat, x)
    return _per_sample_mean((x - x_hat).abs())


def huber_loss(x_hat: Tensor, x: Tensor, delta: float = 1.0) -> Tensor:
    """The Huber loss: quadratic for small residuals, linear for large ones.

        L = (1/n) sum_i sum_k H_delta(x_i^(k) - x_hat_i^(k)),
        H_delta(r) = r^2 / 2                  if |r| <= delta,
                     delta (|r| - delta / 2)  otherwise.

    ``delta > 0`` is where the loss switches from squared to absolute error.
    """
    _check_pair(x_hat, x)
    delta = _check_real(delta, "delta", low=0.0, low_open=True)
    r = (x - x_hat).abs()
    quadratic = 0.5 * r**2
    linear = delta * (r - 0.5 * delta)
    return _per_sample_mean(torch.where(r <= delta, quadratic, linear))


def correntropy_loss(x_hat: Tensor, x: Tensor, sigma: float = 1.0) -> Tensor:
    """The correntropy loss, bounded so that an outlier costs at most 1 per entry.

    The lecture's correntropy sum_k exp(-(x^(k) - x_hat^(k))^2 / sigma) is a
    similarity: it is largest (d) for a perfect reconstruction and has to be
    MAXIMISED. The loss to minimise is d minus it,

        L = (1/n) sum_i sum_k [1 - exp(-(x_i^(k) - x_hat_i^(k))^2 / sigma)],

    which has the same minimisers. ``sigma > 0`` sets the residual size beyond
    which an entry counts as an outlier: its gradient vanishes for |r| >> sqrt(sigma).
    """
    _check_pair(x_hat, x)
    sigma = _check_real(sigma, "sigma", low=0.0, low_open=True)
    return _per_sample_mean(1.0 - torch.exp(-((x - x_hat) ** 2) / sigma))


# ------------------------------------------------------------------------ penalties
def sparse_kl_penalty(rho: float, rho_hat: Tensor) -> Tensor:
    """The sparsity penalty: KL divergence of each unit's mean activation from rho.

        Omega(z) = sum_j KL(rho || rho_hat_j)
                 = sum_j [rho log(rho / rho_hat_j) + (1 - rho) log((1 - rho) / (1 - rho_hat_j))]

    ``rho`` in (0, 1) is the target mean activation (small, e.g. 0.05) and
    ``rho_hat`` holds the mean activation of each code unit over the batch,
    rho_hat_j = (1/n) sum_i z_ij, so the code must lie in (0, 1) (a sigmoid).
    Both are read as the means of Bernoulli variables.
    """
    rho = _check_real(rho, "rho", low=0.0, high=1.0, low_open=True, high_open=True)
    _check_tensor(rho_hat, "rho_hat")
    if rho_hat.dim() != 1:
        raise ValueError(
            f"rho_hat must be 1-D (one mean activation per code unit), got shape {tuple(rho_hat.shape)}"
        )
    rho_hat = rho_hat.clamp(_KL_EPS, 1.0 - _KL_EPS)
    kl = rho * torch.log(rho / rho_hat) + (1.0 - rho) * torch.log((1.0 - rho) / (1.0 - rho_hat))
    return kl.sum()


def l1_activity_penalty(z: Tensor) -> Tensor:
    """The L1 sparsity penalty on the code, averaged over the batch:

        Omega(z) = (1/n) sum_i sum_j |z_ij|

    Multiply by lambda in the loss (:func:`l1_sparse_loss_fn` does).
    """
    _check_tensor(z, "z")
    if z.dim() < 2:
        raise ValueError(f"z must have a batch dimension first, shape (n, m), got shape {tuple(z.shape)}")
    return _per_sample_mean(z.abs())


def contractive_penalty(W: Tensor, h: Tensor) -> Tensor:
    """The contractive penalty ||J_phi(x)||_F^2 of a sigmoid encoder, in closed form.

    For one layer h = sigmoid(W x + b), dh_j/dx_i = h_j (1 - h_j) W_ji, hence

        ||J||_F^2 = sum_j sum_i (dh_j/dx_i)^2 = sum_j (h_j (1 - h_j))^2 sum_i W_ji^2.

    ``W`` is the encoder's weight matrix, shape (m, d) as in ``nn.Linear``;
    ``h`` the code, shape (m,) for one sample or (n, m) for a batch, in which
    case the penalty is averaged over the batch. Only valid for this encoder:
    any other needs the Jacobian itself (``torch.autograd.functional.jacobian``).
    """
    _check_tensor(W, "W")
    _check_tensor(h, "h")
    if W.dim() != 2:
        raise ValueError(f"W must be the (m, d) weight matrix of the encoder, got shape {tuple(W.shape)}")
    if h.dim() not in (1, 2) or h.shape[-1] != W.shape[0]:
        raise ValueError(
            f"h must have shape (m,) or (n, m) with m = {W.shape[0]} rows of W, got {tuple(h.shape)}"
        )
    sigmoid_slope_sq = (h * (1.0 - h)) ** 2  # (h_j (1 - h_j))^2
    row_norms_sq = (W**2).sum(dim=1)  # sum_i W_ji^2
    return (sigmoid_slope_sq @ row_norms_sq).mean()


# ---------------------------------------------------------------------- corruptions
def _draw(sampler, x: Tensor, generator: torch.Generator | None) -> Tensor:
    # Draw on the generator's device and move: a CPU generator then gives the same
    # noise whether x lives on the CPU or a GPU.
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    device = generator.device if generator is not None else x.device
    return sampler(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)


def gaussian_corruption(x: Tensor, sigma: float, generator: torch.Generator | None = None) -> Tensor:
    """Additive Gaussian noise: x_tilde = x + epsilon, epsilon ~ N(0, sigma^2 I).

    ``sigma >= 0`` is the noise's standard deviation (0 returns a copy of x).
    """
    _check_tensor(x, "x")
    sigma = _check_real(sigma, "sigma", low=0.0)
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    return x + sigma * _draw(torch.randn, x, generator)


def salt_and_pepper(x: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Salt-and-pepper noise: each entry is, with probability p, replaced by 0 or 1.

    Independently for every entry, with probability ``p`` it is corrupted, and a
    corrupted entry becomes 0 (pepper) or 1 (salt) with equal chance; the other
    entries are kept. Meant for images scaled to [0, 1].
    """
    _check_tensor(x, "x")
    p = _check_real(p, "p", low=0.0, high=1.0)
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    u = _draw(torch.rand, x, generator)
    # One uniform draw decides both: u < p/2 is pepper, p/2 <= u < p is salt.
    return torch.where(u < p, (u >= p / 2).to(x.dtype), x)


# ---------------------------------------------------- loss functions for the shared loop
LossFn = Callable[[nn.Module, object], Tensor]  # loss_fn(model, batch), what fit() calls
ReconLoss = Callable[[Tensor, Tensor], Tensor]  # recon(x_hat, x)


def _inputs(batch) -> Tensor:
    # Autoencoders ignore labels: a batch is x, or (x, y) from a labelled dataset.
    if isinstance(batch, (list, tuple)):
        batch = batch[0]
    return _check_tensor(batch, "batch")


def _check_lam(lam) -> float:
    return _check_real(lam, "lam", low=0.0)


def _check_recon(recon) -> None:
    if not callable(recon):
        raise TypeError("recon must be a function recon(x_hat, x) -> scalar tensor, e.g. reconstruction_loss")


def autoencoder_loss_fn(recon: ReconLoss = reconstruction_loss) -> LossFn:
    """``loss_fn(model, batch)`` for :func:`~course_lib.training.fit`: recon(psi(phi(x)), x).

    ``recon`` is any reconstruction loss of this module; pass extra arguments with
    a lambda, e.g. ``autoencoder_loss_fn(lambda x_hat, x: huber_loss(x_hat, x, delta=0.1))``.
    """
    _check_recon(recon)

    def loss_fn(model: nn.Module, batch) -> Tensor:
        x = _inputs(batch)
        return recon(model(x), x)

    return loss_fn


def denoising_loss_fn(
    corrupt: Callable[[Tensor], Tensor],
    recon: ReconLoss = reconstruction_loss,
) -> LossFn:
    """The denoising autoencoder's loss: reconstruct the CLEAN x from a corrupted x_tilde.

        L = (1/n) sum_i l(x_i, psi(phi(x_tilde_i))),   x_tilde_i = corrupt(x_i)

    Measured against x, not x_tilde: the model that copies its input is no
    longer optimal. ``corrupt`` maps a batch to a corrupted batch, e.g.
    ``lambda x: gaussian_corruption(x, 0.3)``. Fresh noise is drawn at every call,
    so the validation loss is also that of noisy inputs.
    """
    if not callable(corrupt):
        raise TypeError(
            "corrupt must be a function corrupt(x) -> x_tilde, e.g. lambda x: salt_and_pepper(x, 0.2)"
        )
    _check_recon(recon)

    def loss_fn(model: nn.Module, batch) -> Tensor:
        x = _inputs(batch)
        x_tilde = corrupt(x)
        return recon(model(x_tilde), x)

    return loss_fn


def _reconstruction_and_code(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """x_hat = psi(z) and z = phi(x), for the penalties that need the code."""
    z = model.encode(x)
    return model.decode(z).reshape(x.shape), z


def sparse_kl_loss_fn(
    rho: float,
    lam: float,
    recon: ReconLoss = reconstruction_loss,
) -> LossFn:
    """The sparse autoencoder's loss with the KL penalty:

        L = L_AE + lambda sum_j KL(rho || rho_hat_j),   rho_hat_j = (1/n) sum_i z_ij

    The model must have ``encode`` and ``decode`` methods and its code must lie in (0, 1), as :class:`~course_lib.autoencoders.SparseAutoencoder`'s does.
    """
    _check_real(rho, "rho", low=0.0, high=1.0, low_open=True, high_open=True)
    lam = _check_lam(lam)
    _check_recon(recon)

    def loss_fn(model: nn.Module, batch) -> Tensor:
        x = _inputs(batch)
        x_hat, z = _reconstruction_and_code(model, x)
        return recon(x_hat, x) + lam * sparse_kl_penalty(rho, z.mean(dim=0))

    return loss_fn


def l1_sparse_loss_fn(lam: float, recon: ReconLoss = reconstruction_loss) -> LossFn:
    """The sparse autoencoder's loss with the L1 penalty: L = L_AE + lambda (1/n) sum_i sum_j |z_ij|."""
    lam = _check_lam(lam)
    _check_recon(recon)

    def loss_fn(model: nn.Module, batch) -> Tensor:
        x = _inputs(batch)
        x_hat, z = _reconstruction_and_code(model, x)
        return recon(x_hat, x) + lam * l1_activity_penalty(z)

    return loss_fn


def contractive_loss_fn(lam: float, recon: ReconLoss = reconstruction_loss) -> LossFn:
    """The contractive autoencoder's loss: L = L_AE + lambda (1/n) sum_i ||J_phi(x_i)||_F^2.

    Uses the closed form of :func:`contractive_penalty`, so the model's encoder
    must be one sigmoid layer exposing its weight as ``model.encoder_weight``
    (:class:`~course_lib.autoencoders.ContractiveAutoencoder`).
    """
    lam = _check_lam(lam)
    _check_recon(recon)

    def loss_fn(model: nn.Module, batch) -> Tensor:
        if not hasattr(model, "encoder_weight"):
            raise TypeError(
                "contractive_loss_fn needs a one-layer sigmoid encoder with an `encoder_weight` "
                f"(a ContractiveAutoencoder), got {type(model).__name__}"
            )
        x = _inputs(batch)
        x_hat, h = _reconstruction_and_code(model, x)
        return recon(x_hat, x) + lam * contractive_penalty(model.encoder_weight, h)

    return loss_fn


# ------------------------------------------------------------ convolution as a matrix
def _check_conv_args(w, stride, padding, ndim: int) -> Tensor:
    w = torch.as_tensor(w)
    if w.dim() != ndim or min(w.shape) < 1:
        raise ValueError(f"w must be a non-empty {ndim}-D kernel, got shape {tuple(w.shape)}")
    if not w.is_floating_point():
        w = w.to(torch.get_default_dtype())
    for name, value, low in (("stride", stride, 1), ("padding", padding, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return w


def conv1d_matrix(w, n: int, stride: int = 1, padding: int = 0) -> Tensor:
    """The matrix C of a 1-D convolution with kernel w, so that conv1d(x, w) = C @ x.

    Row o holds the kernel shifted to the o-th window: C[o, o*stride + j - padding] = w[j]
    (a "convolution" in deep learning is a cross-correlation: the kernel is not
    flipped). Taps that fall on the zero padding are dropped. The shape is
    (n_out, n) with n_out = (n + 2 padding - k) // stride + 1.

    The transposed convolution ``conv_transpose1d(y, w, stride, padding)`` is
    multiplication by C.T: it maps n_out values back to n, spreading each y_o
    over the window it came from.
    """
    w = _check_conv_args(w, stride, padding, ndim=1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int (the input length), got {n!r}")
    k = w.shape[0]
    n_out = (n + 2 * padding - k) // stride + 1
    if n_out < 1:
        raise ValueError(f"kernel of size {k} is longer than the padded input ({n} + 2*{padding})")
    C = torch.zeros(n_out, n, dtype=w.dtype)
    for o in range(n_out):
        for j in range(k):
            i = o * stride + j - padding
            if 0 <= i < n:
                C[o, i] = w[j]
    return C


def conv2d_matrix(w, shape: tuple[int, int], stride: int = 1, padding: int = 0) -> Tensor:
    """The matrix C of a 2-D single-channel convolution: conv2d(x, w).flatten() = C @ x.flatten().

    Same construction as :func:`conv1d_matrix` on row-major flattened images:
    C[(a, b), (a*stride + u - padding, b*stride + v - padding)] = w[u, v].
    Shape (H_out * W_out, H * W). ``conv_transpose2d`` multiplies by C.T.
    """
    w = _check_conv_args(w, stride, padding, ndim=2)
    if (
        not isinstance(shape, (tuple, list))
        or len(shape) != 2
        or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape)
    ):
        raise ValueError(f"shape must be a pair of positive ints (H, W), got {shape!r}")
    H, W_in = shape
    kh, kw = w.shape
    H_out = (H + 2 * padding - kh) // stride + 1
    W_out = (W_in + 2 * padding - kw) // stride + 1
    if H_out < 1 or W_out < 1:
        raise ValueError(f"kernel of shape {tuple(w.shape)} is larger than the padded input {tuple(shape)}")
    C = torch.zeros(H_out * W_out, H * W_in, dtype=w.dtype)
    for a in range(H_out):
        for b in range(W_out):
            for u in range(kh):
                for v in range(kw):
                    i, j = a * stride + u - padding, b * stride + v - padding
                    if 0 <= i < H and 0 <= j < W_in:
                        C[a * W_out + b, i * W_in + j] = w[u, v]
    return C
