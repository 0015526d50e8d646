"""The vector-quantised variational autoencoder (VQ-VAE) and a prior over its codes.

An encoder E maps an image x to a grid of vectors z_e = E(x), shape (n, D, H, W).
Each vector is replaced by its nearest codeword of a codebook {e_1, ..., e_K},

    k(i) = argmin_j ||z_e(i) - e_j||²,        z_q(i) = e_k(i),

and a decoder D reconstructs x from the quantised grid. The argmin has no
gradient, so the **straight-through estimator** copies the decoder's gradient at
z_q to z_e: in code, ``z_q = z_e + (e - z_e).detach()``, whose value is e and
whose derivative with respect to z_e is the identity.

The loss of one image (:func:`vqvae_loss`, sg = stop-gradient = ``.detach()``),

    L = ||x - D(z_q)||²  +  ||sg[z_e] - e||²  +  β ||sg[e] - z_e||²,     β = 0.25,
        reconstruction      codebook             commitment

trains the decoder and (through the straight-through copy) the encoder with the
first term, only the codebook with the second, and only the encoder with the
third. Instead of the codebook term, the codebook can follow exponential moving
averages of the encoder outputs assigned to each codeword (``ema=True``):

    N_k ← γ N_k + (1 - γ) n_k,    m_k ← γ m_k + (1 - γ) Σ_{i: k(i)=k} z_e(i),    e_k = m_k / N_k,

with γ = 0.99, n_k the number of vectors of the batch assigned to e_k, and N_k
Laplace-smoothed before the division so that an unused code never divides by 0.
A codeword that no encoder output comes near stops learning (a **dead code**);
``dead_code_threshold`` moves such codewords onto encoder outputs of the batch.
How many codes are in use is measured by the perplexity of their frequencies
(:func:`codebook_perplexity`): K when all K are used equally, 1 when one is.

New images come from a **prior** over the code grid: :class:`PixelCNNPrior`
models p(k) = Π_i p(k_i | k_<i) in raster order with masked convolutions;
sampling draws the codes one position at a time and the decoder turns them into
an image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor
TERMS = ("reconstruction", "codebook", "commitment")


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


# ---------------------------------------------------------------- the quantiser

@dataclass
class Quantized:
    """What :class:`VectorQuantizer` returns for a grid z_e of shape (n, D, H, W).

    ``e``: the nearest codewords (gradients reach the codebook), ``z_q``: the same
    values with the straight-through gradient to z_e, ``codes``: their indices (n, H, W).
    """

    z_q: Tensor
    e: Tensor
    codes: Tensor


def nearest_codes(z: Tensor, codebook: Tensor) -> Tensor:
    """k(i) = argmin_j ||z_i - e_j||² for the rows z_i of ``z`` (m, D) and a codebook (K, D)."""
    # ||z - e||² = ||z||² - 2 z·e + ||e||²: one matrix product instead of an (m, K, D) tensor
    distances = (z ** 2).sum(1, keepdim=True) - 2 * z @ codebook.T + (codebook ** 2).sum(1)
    return distances.argmin(dim=1)


class VectorQuantizer(nn.Module):
    """Nearest-codeword quantisation of a grid of vectors, with the straight-through estimator.

    Parameters
    ----------
    num_codes : K, the number of codewords.
    code_dim : D, the length of each codeword (the encoder's output channels).
    ema : learn the codebook by exponential moving averages (a buffer) instead of
        by the loss's codebook term (a parameter).
    decay : γ of the moving averages (0.99); also the decay of the usage counts.
    eps : Laplace smoothing of the EMA counts N_k.
    dead_code_threshold : when set, in training, a codeword whose moving-average
        count of assigned vectors per batch falls below it is moved onto a random
        encoder output of the current batch.
    """

    def __init__(self, num_codes: int, code_dim: int, ema: bool = False, decay: float = 0.99,
                 eps: float = 1e-5, dead_code_threshold: float | None = None):
        super().__init__()
        self.num_codes = _check_positive_int(num_codes, "num_codes")
        self.code_dim = _check_positive_int(code_dim, "code_dim")
        if not 0 < decay < 1:
            raise ValueError(f"decay must lie in (0, 1), got {decay!r}")
        if dead_code_threshold is not None and not dead_code_threshold > 0:
            raise ValueError(f"dead_code_threshold must be a positive number or None, got {dead_code_threshold!r}")
        self.ema, self.decay, self.eps, self.dead_code_threshold = ema, decay, eps, dead_code_threshold
        init = torch.empty(num_codes, code_dim).uniform_(-1 / num_codes, 1 / num_codes)
        if ema:
            self.register_buffer("codebook", init)
            self.register_buffer("ema_count", torch.ones(num_codes))   # N_k
            self.register_buffer("ema_sum", init.clone())              # m_k = N_k e_k
        else:
            self.codebook = nn.Parameter(init)
        self.register_buffer("usage", torch.ones(num_codes))  # moving average of n_k, for dead codes
        self.register_buffer("revived", torch.zeros((), dtype=torch.long))  # codewords moved so far

    def forward(self, z_e: Tensor) -> Quantized:
        if z_e.dim() != 4 or z_e.shape[1] != self.code_dim:
            raise ValueError(f"z_e must have shape (n, {self.code_dim}, H, W), got {tuple(z_e.shape)}")
        n, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)            # one row per grid position
        codes = nearest_codes(flat.detach(), self.codebook.detach())
        if self.training:
            self._update(flat.detach(), codes)
        e = self.codebook[codes].reshape(n, h, w, d).permute(0, 3, 1, 2)
        z_q = z_e + (e - z_e).detach()                            # value e, gradient to z_e
        return Quantized(z_q=z_q, e=e, codes=codes.reshape(n, h, w))

    @torch.no_grad()
    def _update(self, flat: Tensor, codes: Tensor) -> None:
        one_hot = F.one_hot(codes, self.num_codes).type_as(flat)   # (m, K)
        counts = one_hot.sum(0)                                    # n_k
        self.usage.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        if self.ema:
            self.ema_update(counts, one_hot.T @ flat)
        if self.dead_code_threshold is not None:
            self.revive_dead_codes(flat)

    @torch.no_grad()
    def ema_update(self, counts: Tensor, sums: Tensor) -> None:
        """One EMA step from the batch's counts n_k (K,) and sums Σ_{k(i)=k} z_i (K, D)."""
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (total + self.num_codes * self.eps) * total
        self.codebook.copy_(self.ema_sum / smoothed[:, None])

    @torch.no_grad()
    def revive_dead_codes(self, flat: Tensor) -> int:
        """Move every codeword used less than ``dead_code_threshold`` onto a random row of ``flat``."""
        dead = torch.nonzero(self.usage < self.dead_code_threshold).flatten()
        if len(dead) == 0:
            return 0
        picks = flat[torch.randint(len(flat), (len(dead),), device=flat.device)]
        self.codebook[dead] = picks
        self.usage[dead] = self.usage.mean()   # give it time to attract vectors before judging again
        if self.ema:
            self.ema_count[dead] = 1.0
            self.ema_sum[dead] = picks
        self.revived += len(dead)
        return len(dead)


def codebook_perplexity(codes: Tensor, num_codes: int) -> float:
    """exp(H(p)) of the codes' frequencies p_k = n_k / Σ n: K for uniform use, 1 for a single code.

    Natural logarithm and exponential (any base gives the same number if used in both).
    """
    num_codes = _check_positive_int(num_codes, "num_codes")
    codes = torch.as_tensor(codes).flatten()
    if codes.numel() == 0:
        raise ValueError("codes is empty")
    if codes.min() < 0 or codes.max() >= num_codes:
        raise ValueError(f"codes must lie in 0..{num_codes - 1}, got {int(codes.min())}..{int(codes.max())}")
    p = torch.bincount(codes.long(), minlength=num_codes).double() / codes.numel()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()   # 0 log 0 = 0
    return float(entropy.exp())


# ---------------------------------------------------------------- the model

@dataclass
class VQVAEOutput:
    """The forward pass: x_hat = D(z_q), the encoder's grid z_e, the codewords e and their indices."""

    x_hat: Tensor
    z_e: Tensor
    z_q: Tensor
    e: Tensor
    codes: Tensor


class VQVAE(nn.Module):
    """A small convolutional VQ-VAE for 1 x 28 x 28 images, with a 7 x 7 grid of codes.

    Encoder: two stride-2 convolutions (28 -> 14 -> 7) and a 1x1 convolution to D
    channels. Decoder: a 3x3 convolution and two stride-2 transposed convolutions
    (7 -> 14 -> 28), then a sigmoid. One image is 49 codes of log2(K) bits each.
    """

    image_shape = (1, 28, 28)
    grid_shape = (7, 7)

    def __init__(self, num_codes: int = 32, code_dim: int = 16, channels=(32, 64), ema: bool = True,
                 decay: float = 0.99, dead_code_threshold: float | None = None):
        super().__init__()
        if len(channels) != 2:
            raise ValueError(f"channels must be two ints, got {channels!r}")
        c1, c2 = (_check_positive_int(c, "each of channels") for c in channels)
        self.num_codes, self.code_dim = num_codes, code_dim
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 4, stride=2, padding=1), nn.ReLU(),      # 28 -> 14
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.ReLU(),     # 14 -> 7
            nn.Conv2d(c2, code_dim, 1),
        )
        self.quantizer = VectorQuantizer(num_codes, code_dim, ema, decay, dead_code_threshold=dead_code_threshold)
        self.decoder = nn.Sequential(
            nn.Conv2d(code_dim, c2, 3, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.ReLU(),   # 7 -> 14
            nn.ConvTranspose2d(c1, 1, 4, stride=2, padding=1), nn.Sigmoid(),  # 14 -> 28
        )

    @property
    def bits_per_image(self) -> float:
        """H x W x log2 K: what it takes to store the codes of one image."""
        return self.grid_shape[0] * self.grid_shape[1] * math.log2(self.num_codes)

    def encode(self, x: Tensor) -> Tensor:
        """z_e = E(x), shape (n, D, 7, 7); flat inputs (n, 784) are reshaped."""
        if not isinstance(x, torch.Tensor) or x.dim() < 2 or x[0].numel() != 784:
            raise ValueError(f"x must be images (n, 1, 28, 28) or (n, 784), got {getattr(x, 'shape', type(x))}")
        return self.encoder(x.reshape(-1, *self.image_shape))

    def decode(self, z_q: Tensor) -> Tensor:
        return self.decoder(z_q)

    def decode_codes(self, codes: Tensor) -> Tensor:
        """Images from a grid of code indices (n, 7, 7), e.g. samples of the prior."""
        return self.decode(self.quantizer.codebook[codes].permute(0, 3, 1, 2))

    @torch.no_grad()
    def codes(self, x: Tensor) -> Tensor:
        """The code indices (n, 7, 7) of images x."""
        return nearest_codes(self.encode(x).permute(0, 2, 3, 1).reshape(-1, self.code_dim),
                             self.quantizer.codebook).reshape(-1, *self.grid_shape)

    def forward(self, x: Tensor) -> VQVAEOutput:
        z_e = self.encode(x)
        q = self.quantizer(z_e)
        x_hat = self.decode(q.z_q).reshape(x.shape)
        return VQVAEOutput(x_hat=x_hat, z_e=z_e, z_q=q.z_q, e=q.e, codes=q.codes)


def _check_drop(drop) -> None:
    unknown = set(drop) - set(TERMS)
    if isinstance(drop, str) or unknown:
        raise ValueError(f"drop must be a tuple of terms among {TERMS}, got {drop!r}")


def vqvae_loss(x: Tensor, output: VQVAEOutput, beta: float = 0.25, drop=()) -> tuple[Tensor, dict]:
    """L = ||x - D(z_q)||² + ||sg[z_e] - e||² + β ||sg[e] - z_e||², summed per image, averaged over images.

    Returns ``(loss, {"reconstruction", "codebook", "commitment"})``; the commitment
    term is reported without its β. ``drop`` names terms to leave out of the loss
    (they are still reported), for the chapter's runs without each term. With an
    EMA codebook the codebook term has no gradient and only measures the distance.
    """
    _check_drop(drop)
    n = x.shape[0]
    terms = {
        "reconstruction": ((x - output.x_hat) ** 2).sum() / n,
        "codebook": ((output.z_e.detach() - output.e) ** 2).sum() / n,
        "commitment": ((output.e.detach() - output.z_e) ** 2).sum() / n,
    }
    weights = {"reconstruction": 1.0, "codebook": 1.0, "commitment": beta}
    loss = sum(weights[name] * terms[name] for name in TERMS if name not in drop)
    return loss, terms


def vqvae_loss_fn(beta: float = 0.25, drop=()):
    """:func:`vqvae_loss` as the ``loss_fn(model, x)`` that :func:`~course_lib.training.fit` calls."""
    _check_drop(drop)

    def loss_fn(model, x):
        return vqvae_loss(x, model(x), beta, drop)
    return loss_fn


@torch.no_grad()
def encode_codes(model: VQVAE, images: Tensor, batch_size: int = 1000) -> Tensor:
    """The code grids (n, 7, 7) of many images, in batches, on the model's device; returned on the CPU."""
    device = next(model.parameters()).device
    model.eval()
    return torch.cat([model.codes(images[i:i + batch_size].to(device)).cpu()
                      for i in range(0, len(images), batch_size)])


@torch.no_grad()
def reconstruct(model: nn.Module, images: Tensor, batch_size: int = 1000) -> Tensor:
    """x_hat of many images, in batches, on the model's device; returned on the CPU.

    Works for any model whose forward returns x_hat or an output with an ``x_hat`` field.
    """
    device = next(model.parameters()).device
    model.eval()
    parts = []
    for i in range(0, len(images), batch_size):
        out = model(images[i:i + batch_size].to(device))
        parts.append(getattr(out, "x_hat", out).cpu())
    return torch.cat(parts)


def uniform_quantize(z: Tensor, bits: int, low, high) -> Tensor:
    """Round z to the nearest of 2**bits evenly spaced levels from ``low`` to ``high`` (clipping outside).

    A continuous code stored with ``bits`` bits per number: what makes an autoencoder's
    code comparable, in bits, with the VQ-VAE's indices.
    """
    bits = _check_positive_int(bits, "bits")
    low, high = torch.as_tensor(low, dtype=z.dtype, device=z.device), torch.as_tensor(high, dtype=z.dtype, device=z.device)
    if not torch.all(high > low):
        raise ValueError("high must be greater than low")
    step = (high - low) / (2 ** bits - 1)
    return low + torch.round(((z - low) / step).clamp(0, 2 ** bits - 1)) * step


# ---------------------------------------------------------------- the prior

class MaskedConv2d(nn.Conv2d):
    """A convolution that sees only the positions before the centre in raster order.

    Mask ``"A"`` also hides the centre (the first layer: k_i must not see itself);
    mask ``"B"`` lets it through (later layers: their centre already summarises k_<i).
    """

    def __init__(self, mask_type: str, in_channels: int, out_channels: int, kernel_size: int):
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        mask = torch.zeros(kernel_size, kernel_size)
        c = kernel_size // 2
        mask[:c] = 1                                   # every row above the centre
        mask[c, :c + (mask_type == "B")] = 1           # left of the centre (and the centre for B)
        self.register_buffer("mask", mask)

    def forward(self, h: Tensor) -> Tensor:
        return F.conv2d(h, self.weight * self.mask, self.bias, padding=self.padding)


@dataclass
class PriorOutput:
    """logits (n, K, H, W): the prior's p(k_i | k_<i) at every position, before the softmax."""

    logits: Tensor


class PixelCNNPrior(nn.Module):
    """An autoregressive prior p(k) = Π_i p(k_i | k_<i) over a grid of codes (a small PixelCNN).

    The codes are embedded, passed through a mask-A convolution large enough to see
    the whole grid above, then mask-B convolutions with residual connections, and a
    1x1 convolution to K logits per position.
    """

    def __init__(self, num_codes: int, grid_shape=(7, 7), channels: int = 64, n_layers: int = 4,
                 first_kernel: int = 7):
        super().__init__()
        self.num_codes = _check_positive_int(num_codes, "num_codes")
        self.grid_shape = tuple(grid_shape)
        self.embed = nn.Embedding(num_codes, channels)
        self.first = MaskedConv2d("A", channels, channels, first_kernel)
        self.layers = nn.ModuleList(MaskedConv2d("B", channels, channels, 3) for _ in range(n_layers))
        self.out = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(),
                                 nn.Conv2d(channels, num_codes, 1))

    def logits_from_embeddings(self, h: Tensor) -> Tensor:
        """The logits from embedded codes h (n, C, H, W): split out for the causality test."""
        h = self.first(h)
        for layer in self.layers:
            h = h + layer(F.relu(h))
        return self.out(h)

    def forward(self, codes: Tensor) -> PriorOutput:
        if codes.dim() != 3 or codes.dtype != torch.long:
            raise ValueError(f"codes must be a long tensor (n, H, W), got {codes.dtype} {tuple(codes.shape)}")
        return PriorOutput(self.logits_from_embeddings(self.embed(codes).permute(0, 3, 1, 2)))

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """Draw n grids of codes, one position at a time in raster order."""
        device = self.embed.weight.device
        codes = torch.zeros(n, *self.grid_shape, dtype=torch.long, device=device)
        for i in range(self.grid_shape[0]):
            for j in range(self.grid_shape[1]):
                probs = F.softmax(self(codes).logits[:, :, i, j] / temperature, dim=1)
                codes[:, i, j] = torch.multinomial(probs.cpu(), 1, generator=generator).flatten().to(device)
        return codes


def prior_nll(model: PixelCNNPrior, codes: Tensor) -> Tensor:
    """-1/(n H W) Σ log p(k_i | k_<i): the prior's negative log-likelihood in nats per code."""
    return F.cross_entropy(model(codes).logits, codes)
