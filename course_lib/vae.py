"""The variational autoencoder: a latent-variable model trained through its ELBO.

The model (the book's notation):

    p(z) = N(0, I),                        the prior over the latent code z in R^L;
    p(x|z) = Bernoulli(sigmoid(f(z)))      pixels in {0, 1}, f(z) the decoder's logits;
          or N(g(z), sigma_x^2 I)          real-valued x, g(z) the decoder's means;
    q(z|x) = N(mu(x), diag(exp(logvar(x)))),  the encoder's approximate posterior.

The encoder outputs logvar = log sigma^2, not sigma: any real number is a valid
logvar, so no positivity constraint is needed, and exp() never under- or overflows
for the values a network produces.

Training maximises the evidence lower bound, i.e. minimises

    -ELBO(x) = KL(q(z|x) || p(z)) - E_q[log p(x|z)]  >=  -log p(x),

with the KL term in closed form (:func:`gaussian_kl`) and the expectation
estimated with one reparameterised sample z = mu + eps * exp(logvar / 2)
(:func:`reparameterize`). Every quantity is summed over the pixels and the
latent dimensions of a sample and averaged over the batch, so the numbers are
nats per image. :func:`iwae_bound` gives the tighter importance-weighted bound,
which tends to log p(x) as the number of samples k grows.

:class:`ProbabilisticPCA` is the linear-Gaussian special case, where log p(x)
and the posterior p(z|x) are known exactly: the book checks the ELBO against them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor
LIKELIHOODS = ("bernoulli", "gaussian")
LOG_2PI = math.log(2 * math.pi)


def _check_dim(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _check_likelihood(likelihood) -> str:
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    return likelihood


def _check_positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _check_beta(beta) -> float:
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta >= 0 or math.isinf(beta):
        raise ValueError(f"beta must be a non-negative finite number, got {beta!r}")
    return float(beta)


def _check_gaussian_params(mu, logvar) -> None:
    for name, t in (("mu", mu), ("logvar", logvar)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must have the same shape, got {tuple(mu.shape)} and {tuple(logvar.shape)}")


# ----------------------------------------------------------------------- the pieces
def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A sample z ~ N(mu, diag(exp(logvar))) written as a function of the parameters:

        z = mu + eps * exp(logvar / 2),     eps ~ N(0, I).

    The randomness sits in eps, which does not depend on (mu, logvar), so z is a
    differentiable function of them and gradients flow back into the encoder.
    ``mu`` and ``logvar`` have the same shape; leading dimensions are sample dimensions.
    """
    _check_gaussian_params(mu, logvar)
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    return mu + eps * torch.exp(0.5 * logvar)


def kl_per_dimension(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu_j, sigma_j^2) || N(0, 1)) of each latent coordinate j, entry by entry:

        KL_j = 1/2 (sigma_j^2 + mu_j^2 - 1 - log sigma_j^2),   sigma_j^2 = exp(logvar_j).

    A coordinate whose KL_j is ~0 for every x carries no information about x:
    its posterior is the prior (a collapsed, "inactive" unit).
    """
    _check_gaussian_params(mu, logvar)
    return 0.5 * (logvar.exp() + mu ** 2 - 1.0 - logvar)


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(sigma^2)) || N(0, I)) in closed form, one value per sample:

        KL = 1/2 sum_j (sigma_j^2 + mu_j^2 - 1 - log sigma_j^2),   sigma_j^2 = exp(logvar_j).

    Summed over the last (latent) dimension: the KL of independent coordinates
    is the sum of their KLs. Returns a tensor of shape ``mu.shape[:-1]``.
    """
    return kl_per_dimension(mu, logvar).sum(dim=-1)


def log_likelihood(x: Tensor, reconstruction: Tensor, likelihood: str = "bernoulli",
                   sigma_x: float = 1.0) -> Tensor:
    """log p(x|z), summed over the entries of each sample: shape ``x.shape[:1]`` (or the leading dims).

    - ``"bernoulli"``: ``reconstruction`` holds logits l, and
      log p(x|z) = sum_k [x_k log sigmoid(l_k) + (1 - x_k) log(1 - sigmoid(l_k))],
      minus the binary cross-entropy, computed from the logits for stability.
    - ``"gaussian"``: ``reconstruction`` holds means x_hat, and
      log p(x|z) = -||x - x_hat||^2 / (2 sigma_x^2) - d/2 log(2 pi sigma_x^2).

    ``x`` and ``reconstruction`` must have the same number of entries per sample;
    images (n, 1, 28, 28) and flat vectors (n, 784) may be mixed.
    """
    _check_likelihood(likelihood)
    if not isinstance(x, torch.Tensor) or not isinstance(reconstruction, torch.Tensor):
        raise TypeError("x and reconstruction must be torch.Tensors")
    if x.numel() != reconstruction.numel():
        raise ValueError(f"x ({tuple(x.shape)}) and reconstruction ({tuple(reconstruction.shape)}) "
                         "must hold the same number of entries")
    x = x.reshape(reconstruction.shape)
    if likelihood == "bernoulli":
        return -F.binary_cross_entropy_with_logits(reconstruction, x, reduction="none").sum(dim=-1)
    sigma_x = _check_positive(sigma_x, "sigma_x")
    d = reconstruction.shape[-1]
    squared = ((x - reconstruction) ** 2).sum(dim=-1)
    return -squared / (2 * sigma_x ** 2) - 0.5 * d * (LOG_2PI + 2 * math.log(sigma_x))


# ------------------------------------------------------------------------ the model
@dataclass
class VAEOutput:
    """What :meth:`VAE.forward` returns.

    reconstruction : the decoder's output at z, flat (n, input_dim): logits for a
        Bernoulli likelihood, means for a Gaussian one.
    mu, logvar : the parameters of q(z|x), shape (n, latent_dim).
    z : the reparameterised sample from q(z|x) the reconstruction was decoded from.
    """

    reconstruction: Tensor
    mu: Tensor
    logvar: Tensor
    z: Tensor


class VAE(nn.Module):
    """The MLP variational autoencoder of Kingma and Welling: 784-400-(20, 20) / 20-400-784.

    Encoder: x -> h = relu(W1 x + b1) -> (mu, logvar) by two linear heads.
    Decoder: z -> relu(W3 z + b3) -> W4 . + b4, the logits (Bernoulli) or the
    means (Gaussian) of p(x|z). No sigmoid in the model: the Bernoulli
    log-likelihood is computed from the logits, and ``decode(z).sigmoid()`` gives
    the pixel probabilities to show.

    ``sigma_x`` is the Gaussian likelihood's fixed standard deviation (unused
    for Bernoulli); :func:`negative_elbo` takes it from the model.
    """

    def __init__(self, input_dim: int = 784, hidden_dim: int = 400, latent_dim: int = 20,
                 likelihood: str = "bernoulli", sigma_x: float = 1.0):
        super().__init__()
        self.input_dim = _check_dim(input_dim, "input_dim")
        self.hidden_dim = _check_dim(hidden_dim, "hidden_dim")
        self.latent_dim = _check_dim(latent_dim, "latent_dim")
        self.likelihood = _check_likelihood(likelihood)
        self.sigma_x = _check_positive(sigma_x, "sigma_x")
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(input_dim, hidden_dim), nn.ReLU())
        self.to_mu = nn.Linear(hidden_dim, latent_dim)
        self.to_logvar = nn.Linear(hidden_dim, latent_dim)
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, input_dim))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The parameters (mu, logvar) of q(z|x), each (n, latent_dim); x is (n, 784) or (n, 1, 28, 28)."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() < 2 or x[0].numel() != self.input_dim:
            raise ValueError(f"x must have shape (n, {self.input_dim}) or (n, ...) with {self.input_dim} "
                             f"entries per sample, got shape {tuple(x.shape)}")
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: Tensor) -> Tensor:
        """The decoder's output for codes z (..., latent_dim): logits or means, shape (..., input_dim)."""
        if not isinstance(z, torch.Tensor) or z.shape[-1] != self.latent_dim:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"z must be a tensor of shape (..., {self.latent_dim}), got {shape}")
        return self.decoder(z)

    def forward(self, x: Tensor) -> VAEOutput:
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar)
        return VAEOutput(self.decode(z), mu, logvar, z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Decode n codes drawn from the prior N(0, I): pixel probabilities (Bernoulli) or means (Gaussian)."""
        device = next(self.parameters()).device
        z = torch.randn(_check_dim(n, "n"), self.latent_dim, generator=generator).to(device)
        out = self.decode(z)
        return out.sigmoid() if self.likelihood == "bernoulli" else out


# ------------------------------------------------------------------------- the loss
def negative_elbo(x: Tensor, output: VAEOutput, likelihood: str = "bernoulli", sigma_x: float = 1.0,
                  beta: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
    """The VAE's loss, -ELBO, with one sample z per x, in nats per sample:

        loss = (1/n) sum_i [ -log p(x_i|z_i) + beta KL(q(z|x_i) || p(z)) ],   z_i ~ q(z|x_i).

    beta = 1 is the ELBO; beta != 1 is the beta-VAE's weighting. Returns
    ``(loss, {"reconstruction": mean -log p(x|z), "kl": mean KL})``, the form
    :func:`course_lib.training.fit` records term by term.
    """
    if not isinstance(output, VAEOutput):
        raise TypeError(f"output must be the VAEOutput of a VAE's forward pass, got {type(output).__name__}")
    beta = _check_beta(beta)
    reconstruction = -log_likelihood(x, output.reconstruction, likelihood, sigma_x).mean()
    kl = gaussian_kl(output.mu, output.logvar).mean()
    return reconstruction + beta * kl, {"reconstruction": reconstruction, "kl": kl}


def _inputs(batch) -> Tensor:
    # A batch is x, or (x, y) from a labelled data set: the VAE ignores labels.
    return batch[0] if isinstance(batch, (list, tuple)) else batch


def vae_loss_fn(beta: float = 1.0) -> Callable:
    """``loss_fn(model, batch)`` for :func:`~course_lib.training.fit`: :func:`negative_elbo` of a VAE.

    The likelihood and sigma_x are the model's own.
    """
    beta = _check_beta(beta)

    def loss_fn(model, batch):
        x = _inputs(batch)
        return negative_elbo(x, model(x), model.likelihood, model.sigma_x, beta)

    return loss_fn


@torch.no_grad()
def evaluate_elbo(model: nn.Module, x: Tensor, beta: float = 1.0, batch_size: int = 1000) -> dict[str, float]:
    """The mean ``"negative_elbo"``, ``"reconstruction"`` (-E_q log p(x|z), the distortion) and
    ``"kl"`` (the rate) over the samples x, in nats, with one sample z per x, in evaluation mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sums = {"negative_elbo": 0.0, "reconstruction": 0.0, "kl": 0.0}
    for start in range(0, x.shape[0], batch_size):
        batch = x[start:start + batch_size].to(device)
        loss, terms = negative_elbo(batch, model(batch), model.likelihood, model.sigma_x, beta)
        for name, value in (("negative_elbo", loss), *terms.items()):
            sums[name] += float(value) * batch.shape[0]
    model.train(was_training)
    return {name: total / x.shape[0] for name, total in sums.items()}


# --------------------------------------------------------- the two gradient estimators
def gradient_samples(f: Callable[[Tensor], Tensor], mu: Tensor, logvar: Tensor, n: int,
                     generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """n single-sample estimates of the gradient of E_q[f(z)], q = N(mu, diag(exp(logvar))),
    with respect to (mu, logvar), by two estimators (rows: samples; columns: mu's then logvar's):

    - ``"reparameterised"``: grad f(mu + eps sigma), through the sample, by autograd;
    - ``"score_function"`` (REINFORCE): f(z) grad log q(z), which needs only values of f:
      d log q / d mu = (z - mu) / sigma^2,  d log q / d logvar = ((z - mu)^2 / sigma^2 - 1) / 2.

    Both are unbiased; ``f`` maps codes (n, L) to values (n,).
    """
    _check_gaussian_params(mu, logvar)
    mu_n = mu.detach().expand(_check_dim(n, "n"), -1).clone().requires_grad_()
    logvar_n = logvar.detach().expand(n, -1).clone().requires_grad_()
    z = reparameterize(mu_n, logvar_n, generator)
    values = f(z)
    grad_mu, grad_logvar = torch.autograd.grad(values.sum(), (mu_n, logvar_n))  # row i depends on sample i only
    eps_sq = ((z.detach() - mu_n.detach()) ** 2) / logvar_n.detach().exp()
    score = torch.cat([(z.detach() - mu_n.detach()) / logvar_n.detach().exp(), 0.5 * (eps_sq - 1.0)], dim=1)
    return {"reparameterised": torch.cat([grad_mu, grad_logvar], dim=1),
            "score_function": values.detach()[:, None] * score}


# ----------------------------------------------------------------- the IWAE bound
def log_importance_weights(model: nn.Module, x: Tensor, k: int, chunk: int = 256,
                           generator: torch.Generator | None = None) -> Tensor:
    """log w_s = log p(x, z_s) - log q(z_s|x) for k samples z_s ~ q(z|x): shape (n, k).

    ``model`` needs ``encode(x) -> (mu, logvar)``, ``decode(z)``, ``likelihood`` and
    ``sigma_x``, as :class:`VAE` and :class:`ProbabilisticPCA` have. The k samples are
    decoded ``chunk`` at a time, so k = 5000 fits in memory.
    """
    mu, logvar = model.encode(x)
    x = x.reshape(x.shape[0], -1)
    std = torch.exp(0.5 * logvar)
    pieces = []
    for start in range(0, k, chunk):
        c = min(chunk, k - start)
        eps = torch.randn((x.shape[0], c, mu.shape[-1]), generator=generator, dtype=mu.dtype).to(mu.device)
        z = mu[:, None] + eps * std[:, None]
        log_px_z = log_likelihood(x[:, None].expand(-1, c, -1), model.decode(z), model.likelihood, model.sigma_x)
        log_pz = -0.5 * (z ** 2 + LOG_2PI).sum(dim=-1)
        log_qz_x = -0.5 * (eps ** 2 + LOG_2PI + logvar[:, None]).sum(dim=-1)
        pieces.append(log_px_z + log_pz - log_qz_x)
    return torch.cat(pieces, dim=1)


@torch.no_grad()
def iwae_bound(model: nn.Module, x: Tensor, k: int, chunk: int = 256,
               generator: torch.Generator | None = None) -> Tensor:
    """The importance-weighted bound of Burda et al., one value per sample (n,):

        L_k(x) = log (1/k) sum_{s=1}^k p(x, z_s) / q(z_s|x),   z_s ~ q(z|x).

    E[L_1] is the ELBO, E[L_k] grows with k, and L_k -> log p(x) as k -> infinity.
    Computed with logsumexp, so the weights never leave log space.
    """
    k = _check_dim(k, "k")
    was_training = model.training
    model.eval()
    log_w = log_importance_weights(model, x, k, chunk, generator)
    model.train(was_training)
    return torch.logsumexp(log_w, dim=1) - math.log(k)


# ---------------------------------------------- probabilistic PCA: the exact case
class ProbabilisticPCA(nn.Module):
    """The linear-Gaussian latent-variable model of Tipping and Bishop:

        p(z) = N(0, I_L),   p(x|z) = N(W z + b, sigma_x^2 I_d),   so   p(x) = N(b, W W^T + sigma_x^2 I).

    Its posterior is Gaussian, with M = W^T W + sigma_x^2 I,

        p(z|x) = N(M^{-1} W^T (x - b), sigma_x^2 M^{-1}),

    so everything a VAE only bounds is exact here. ``encode`` returns the
    posterior's mean and the log of its covariance's diagonal: that is q(z|x) in
    the VAE's diagonal family, and the exact posterior when W's columns are
    orthogonal (then M is diagonal).
    """

    likelihood = "gaussian"

    def __init__(self, W: Tensor, b: Tensor, sigma_x: float):
        super().__init__()
        if not isinstance(W, torch.Tensor) or W.dim() != 2:
            raise ValueError(f"W must be a (d, L) tensor, got {W!r:.60}")
        if not isinstance(b, torch.Tensor) or b.shape != W.shape[:1]:
            raise ValueError(f"b must be a tensor of shape ({W.shape[0]},), got {getattr(b, 'shape', b)!r}")
        self.W, self.b = nn.Parameter(W.clone()), nn.Parameter(b.clone())
        self.sigma_x = _check_positive(sigma_x, "sigma_x")

    def decode(self, z: Tensor) -> Tensor:
        """The mean W z + b of p(x|z)."""
        return z @ self.W.T + self.b

    def marginal(self) -> torch.distributions.MultivariateNormal:
        """p(x) = N(b, W W^T + sigma_x^2 I)."""
        cov = self.W @ self.W.T + self.sigma_x ** 2 * torch.eye(self.W.shape[0], dtype=self.W.dtype)
        return torch.distributions.MultivariateNormal(self.b, covariance_matrix=cov)

    def log_marginal(self, x: Tensor) -> Tensor:
        """The exact log p(x), one value per row of x."""
        return self.marginal().log_prob(x)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The exact posterior p(z|x): its means (n, L) and its covariance (L, L), the same for every x."""
        L = self.W.shape[1]
        M = self.W.T @ self.W + self.sigma_x ** 2 * torch.eye(L, dtype=self.W.dtype)
        mean = torch.linalg.solve(M, self.W.T @ (x - self.b).T).T
        return mean, self.sigma_x ** 2 * torch.linalg.inv(M)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, logvar) of the posterior's diagonal approximation (exact for orthogonal columns of W)."""
        mean, cov = self.posterior(x)
        return mean, torch.diagonal(cov).log().expand_as(mean)

    def elbo(self, x: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
        """The ELBO of q = N(mu, diag(exp(logvar))) in closed form, one value per row of x:

            E_q[log p(x|z)] = -(||x - W mu - b||^2 + sum_j s_j^2 ||W_:,j||^2) / (2 sigma_x^2) - d/2 log(2 pi sigma_x^2),
            ELBO = E_q[log p(x|z)] - KL(q || N(0, I)).
        """
        d = self.W.shape[0]
        residual = ((x - self.decode(mu)) ** 2).sum(dim=-1)
        spread = (logvar.exp() * (self.W ** 2).sum(dim=0)).sum(dim=-1)
        expected_log_lik = -(residual + spread) / (2 * self.sigma_x ** 2) - 0.5 * d * (LOG_2PI + 2 * math.log(self.sigma_x))
        return expected_log_lik - gaussian_kl(mu, logvar)


def binarize(x: Tensor, seed: int = 0) -> Tensor:
    """A fixed stochastic binarisation: each pixel becomes 1 with probability equal to its intensity.

    Pixels in {0, 1} make the Bernoulli likelihood a true probability, so that
    -ELBO and the IWAE bound are log-likelihoods in nats. The same ``seed``
    gives the same binary images.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("x must be a floating-point tensor of intensities in [0, 1]")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError("x must hold intensities in [0, 1]")
    return (torch.rand(x.shape, generator=torch.Generator().manual_seed(seed)) < x).to(x.dtype)
