"""Adversarial distribution matching: the GAN and ALI/BiGAN.

A **GAN** (Goodfellow et al., 2014) has a generator G, z ~ p(z) -> x = G(z), and a
discriminator D(x) in (0, 1), the probability that x is real. They play

    min_G max_D  V(D, G) = E_{x ~ p_data} log D(x) + E_{z ~ p(z)} log(1 - D(G(z))).   (value function)

For a fixed G the best discriminator is D*(x) = p_data(x) / (p_data(x) + p_G(x)), and
then V(D*, G) = 2 JS(p_data || p_G) - log 4, minimal exactly when p_G = p_data.

**ALI/BiGAN** (Dumoulin et al., 2017; Donahue et al., 2017) adds an encoder E, x -> z,
and lets the discriminator judge *pairs*: (x, E(x)) with x from the data against
(G(z), z) with z from the prior,

    V(D, E, G) = E_{x ~ p_data} log D(x, E(x)) + E_{z ~ p(z)} log(1 - D(G(z), z)).

Matching the two joint distributions forces E and G to invert each other.

Every discriminator here returns a **logit** a = log D / (1 - D), so D = sigmoid(a),
log D = -softplus(-a) and log(1 - D) = -softplus(a): the losses below are written
with softplus, which never takes the log of 0. The losses (plain functions of logits):

- :func:`discriminator_loss`             L_D = -V: what D minimises (GAN and ALI alike);
- :func:`saturating_generator_loss`      L_G^sat = E log(1 - D(G(z))): the minimax G loss;
- :func:`non_saturating_generator_loss`  L_G^NS = -E log D(G(z)): what G minimises in practice;
- :func:`ali_generator_loss`             L_EG = -E log(1 - D(x, E(x))) - E log D(G(z), z):
  the non-saturating loss of the encoder and generator (the labels of L_D swapped).

:func:`fit_adversarial` is the one alternating two-optimizer training loop; the
``*_loss_fn(model, x)`` functions are the per-batch losses it calls, in the
``loss_fn(model, batch)`` convention of :func:`course_lib.training.fit`.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .autoencoders import _check_dim
from .training import History, _append, _batch_len, _Sums, _unwrap_single, make_loader, split_loss, to_device
from .utils import get_device

Tensor = torch.Tensor


def _mlp(sizes: Sequence[int], slope: float = 0.2, dropout: float = 0.0) -> nn.Sequential:
    """Linear layers between consecutive sizes, LeakyReLU (and dropout) between them, none after the last."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(slope))
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def _hidden(hidden_dims) -> tuple:
    if isinstance(hidden_dims, int):
        hidden_dims = (hidden_dims,)
    return tuple(_check_dim(h, "each of hidden_dims") for h in hidden_dims)


def _flat(x: Tensor, dim: int, name: str) -> Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2 or x[0].numel() != dim:
        raise ValueError(f"{name} must have shape (n, {dim}) or (n, ...) with {dim} entries per sample, "
                         f"got shape {tuple(x.shape)}")
    return x.flatten(1)


# ------------------------------------------------------------------ the networks

class Generator(nn.Module):
    """The generator (ALI's decoder) G: z -> x, an MLP. ``forward(z)`` returns x, shape (n, data_dim).

    ``output`` is None for unbounded data (the 2-D mixture) or "sigmoid" for pixels in (0, 1).
    """

    def __init__(self, latent_dim: int, data_dim: int, hidden_dims=(128, 128), output: str | None = None):
        super().__init__()
        self.latent_dim = _check_dim(latent_dim, "latent_dim")
        self.data_dim = _check_dim(data_dim, "data_dim")
        if output not in (None, "sigmoid"):
            raise ValueError(f"output must be None or 'sigmoid', got {output!r}")
        self.net = _mlp((self.latent_dim, *_hidden(hidden_dims), self.data_dim))
        if output == "sigmoid":
            self.net.append(nn.Sigmoid())

    def forward(self, z: Tensor) -> Tensor:
        return self.net(_flat(z, self.latent_dim, "z"))


class Encoder(nn.Module):
    """The deterministic (BiGAN) encoder E: x -> z, an MLP. ``forward(x)`` returns z, shape (n, latent_dim)."""

    def __init__(self, data_dim: int, latent_dim: int, hidden_dims=(128, 128)):
        super().__init__()
        self.data_dim = _check_dim(data_dim, "data_dim")
        self.latent_dim = _check_dim(latent_dim, "latent_dim")
        self.net = _mlp((self.data_dim, *_hidden(hidden_dims), self.latent_dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(_flat(x, self.data_dim, "x"))


class GaussianEncoder(nn.Module):
    """The stochastic (ALI) encoder q(z | x) = N(mu(x), diag sigma(x)^2).

    ``forward(x)`` returns a **reparameterised sample** z = mu(x) + sigma(x) * eps with
    eps ~ N(0, I): z is random, yet a differentiable function of the encoder's
    parameters, so the discriminator's gradient reaches them. ``distribution(x)``
    returns q(z | x) itself as a ``torch.distributions.Normal``; its mean mu(x) is the
    encoder's feature for downstream tasks.
    """

    def __init__(self, data_dim: int, latent_dim: int, hidden_dims=(128, 128)):
        super().__init__()
        self.data_dim = _check_dim(data_dim, "data_dim")
        self.latent_dim = _check_dim(latent_dim, "latent_dim")
        self.net = _mlp((self.data_dim, *_hidden(hidden_dims), 2 * self.latent_dim))  # mu and log sigma

    def distribution(self, x: Tensor) -> torch.distributions.Normal:
        mu, log_sigma = self.net(_flat(x, self.data_dim, "x")).chunk(2, dim=1)
        return torch.distributions.Normal(mu, log_sigma.clamp(-10, 5).exp())

    def forward(self, x: Tensor) -> Tensor:
        q = self.distribution(x)
        return q.loc + q.scale * torch.randn_like(q.loc)


class Discriminator(nn.Module):
    """The GAN discriminator: ``forward(x)`` returns the logit a(x), with D(x) = sigmoid(a(x)), shape (n,)."""

    def __init__(self, data_dim: int, hidden_dims=(128, 128), dropout: float = 0.0):
        super().__init__()
        self.data_dim = _check_dim(data_dim, "data_dim")
        self.net = _mlp((self.data_dim, *_hidden(hidden_dims), 1), dropout=dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(_flat(x, self.data_dim, "x")).squeeze(1)


class JointDiscriminator(nn.Module):
    """The ALI/BiGAN discriminator on pairs: ``forward(x, z)`` returns the logit a(x, z), shape (n,).

    It reads the concatenation [x, z], so it can tell real pairs (x, E(x)) from
    generated ones (G(z), z) by how x and z go together, not only by x.
    """

    def __init__(self, data_dim: int, latent_dim: int, hidden_dims=(128, 128), dropout: float = 0.0):
        super().__init__()
        self.data_dim = _check_dim(data_dim, "data_dim")
        self.latent_dim = _check_dim(latent_dim, "latent_dim")
        self.net = _mlp((self.data_dim + self.latent_dim, *_hidden(hidden_dims), 1), dropout=dropout)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        x, z = _flat(x, self.data_dim, "x"), _flat(z, self.latent_dim, "z")
        if len(x) != len(z):
            raise ValueError(f"x and z must have as many rows, got {len(x)} and {len(z)}")
        return self.net(torch.cat([x, z], dim=1)).squeeze(1)


class GAN(nn.Module):
    """A generator and a discriminator, with the standard normal prior p(z) = N(0, I)."""

    def __init__(self, generator: Generator, discriminator: Discriminator):
        super().__init__()
        if generator.data_dim != discriminator.data_dim:
            raise ValueError(f"generator makes {generator.data_dim}-D data, discriminator reads {discriminator.data_dim}-D")
        self.generator, self.discriminator = generator, discriminator
        self.latent_dim = generator.latent_dim

    def sample_prior(self, n: int) -> Tensor:
        return torch.randn(n, self.latent_dim, device=next(self.parameters()).device)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """n generated samples G(z), z ~ p(z)."""
        return self.generator(self.sample_prior(n))


class ALI(GAN):
    """An encoder E, a generator G and a joint discriminator D(x, z): ALI (stochastic E) or BiGAN (deterministic E)."""

    def __init__(self, encoder: Encoder | GaussianEncoder, generator: Generator, discriminator: JointDiscriminator):
        super().__init__(generator, discriminator)
        if (encoder.data_dim, encoder.latent_dim) != (generator.data_dim, generator.latent_dim):
            raise ValueError("encoder and generator must map between the same data and latent dimensions")
        if discriminator.latent_dim != generator.latent_dim:
            raise ValueError("the discriminator must read codes of the generator's latent_dim")
        self.encoder = encoder

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """The code of x: E(x), or the mean of q(z | x) for the stochastic encoder."""
        if isinstance(self.encoder, GaussianEncoder):
            return self.encoder.distribution(x).loc
        return self.encoder(x)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """G(E(x)): ALI is never trained to reconstruct; this shows how far E inverts G."""
        return self.generator(self.encoder(x))


# ------------------------------------------------------------------ the losses (of logits)

def _check_logits(logits, name: str) -> Tensor:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 1 or len(logits) == 0:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"{name} must be a non-empty 1-D tensor of logits (one per sample), got {shape}")
    return logits


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """L_D = -E_real log D - E_fake log(1 - D) = mean softplus(-a_real) + mean softplus(a_fake).

    For the GAN, a_real = a(x) and a_fake = a(G(z)); for ALI, a(x, E(x)) and a(G(z), z).
    It is -V, the binary cross-entropy with real labelled 1 and generated labelled 0.
    """
    real_logits, fake_logits = _check_logits(real_logits, "real_logits"), _check_logits(fake_logits, "fake_logits")
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def saturating_generator_loss(fake_logits: Tensor) -> Tensor:
    """L_G^sat = E log(1 - D(G(z))) = -mean softplus(a(G(z))): the generator's side of the minimax game.

    Its gradient vanishes where D(G(z)) is near 0, i.e. early in training, when D wins easily.
    """
    return -F.softplus(_check_logits(fake_logits, "fake_logits")).mean()


def non_saturating_generator_loss(fake_logits: Tensor) -> Tensor:
    """L_G^NS = -E log D(G(z)) = mean softplus(-a(G(z))): same fixed point, strong gradient where D(G(z)) ~ 0."""
    return F.softplus(-_check_logits(fake_logits, "fake_logits")).mean()


def ali_generator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """L_EG = -E log(1 - D(x, E(x))) - E log D(G(z), z): the non-saturating loss of E and G.

    Equal to :func:`discriminator_loss` with the roles of the two pairs swapped.
    """
    return discriminator_loss(fake_logits, real_logits)


# ------------------------------------------------------------------ per-batch losses for fit_adversarial

def _d_terms(real_logits: Tensor, fake_logits: Tensor) -> dict:
    # the discriminator's mean verdicts, D(real) and D(fake): both tend to 1/2 at the equilibrium
    return {"D(real)": torch.sigmoid(real_logits).mean(), "D(fake)": torch.sigmoid(fake_logits).mean()}


def gan_discriminator_loss_fn(model: GAN, x: Tensor):
    """L_D on a batch: the real x against G(z), detached so that this step leaves G alone."""
    x_fake = model.generator(model.sample_prior(len(x))).detach()
    real, fake = model.discriminator(x), model.discriminator(x_fake)
    return discriminator_loss(real, fake), _d_terms(real, fake)


def gan_generator_loss_fn(model: GAN, x: Tensor, saturating: bool = False):
    """L_G^NS (or L_G^sat with ``saturating=True``) on a batch of len(x) generated samples."""
    fake = model.discriminator(model.generator(model.sample_prior(len(x))))
    return saturating_generator_loss(fake) if saturating else non_saturating_generator_loss(fake)


def _ali_logits(model: ALI, x: Tensor, detach: bool) -> tuple[Tensor, Tensor]:
    z = model.sample_prior(len(x))
    z_hat, x_tilde = model.encoder(x), model.generator(z)
    if detach:  # the discriminator's step must not move E or G
        z_hat, x_tilde = z_hat.detach(), x_tilde.detach()
    return model.discriminator(x, z_hat), model.discriminator(x_tilde, z)


def ali_discriminator_loss_fn(model: ALI, x: Tensor):
    """L_D on a batch of joint pairs: (x, E(x)) real, (G(z), z) generated, E and G detached."""
    real, fake = _ali_logits(model, x, detach=True)
    return discriminator_loss(real, fake), _d_terms(real, fake)


def ali_generator_loss_fn(model: ALI, x: Tensor):
    """L_EG on a batch: gradients flow into both E (through E(x)) and G (through G(z))."""
    return ali_generator_loss(*_ali_logits(model, x, detach=False))


def make_gan(data_dim: int, latent_dim: int, hidden_dims=(128, 128), output: str | None = None,
             dropout: float = 0.0) -> GAN:
    """A GAN of MLPs: G latent_dim -> hidden_dims -> data_dim, D data_dim -> hidden_dims -> 1."""
    return GAN(Generator(latent_dim, data_dim, hidden_dims, output), Discriminator(data_dim, hidden_dims, dropout))


def make_ali(data_dim: int, latent_dim: int, hidden_dims=(128, 128), output: str | None = None,
             dropout: float = 0.0, stochastic: bool = True) -> ALI:
    """ALI (``stochastic=True``, a :class:`GaussianEncoder`) or BiGAN (an :class:`Encoder`) of MLPs.

    E, G and D have the hidden sizes of :func:`make_gan`'s networks, so the two compare like for like.
    """
    encoder = (GaussianEncoder if stochastic else Encoder)(data_dim, latent_dim, hidden_dims)
    return ALI(encoder, Generator(latent_dim, data_dim, hidden_dims, output),
               JointDiscriminator(data_dim, latent_dim, hidden_dims, dropout))


def loss_fns(model: GAN, saturating: bool = False) -> tuple[Callable, Callable]:
    """The (discriminator, generator) per-batch losses of ``model``: ALI's on joint pairs, or the GAN's."""
    if isinstance(model, ALI):
        if saturating:
            raise ValueError("only the non-saturating encoder/generator loss is implemented for ALI")
        return ali_discriminator_loss_fn, ali_generator_loss_fn
    if saturating:
        return gan_discriminator_loss_fn, lambda m, x: gan_generator_loss_fn(m, x, saturating=True)
    return gan_discriminator_loss_fn, gan_generator_loss_fn


# ------------------------------------------------------------------ the training loop

def fit_adversarial(
    model: GAN,
    discriminator_loss_fn: Callable,
    generator_loss_fn: Callable,
    train_data,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 2e-4,
    lr_discriminator: float | None = None,
    betas: tuple = (0.5, 0.999),
    discriminator_steps: int = 1,
    device=None,
    seed: int = 0,
    progress: bool = True,
    callbacks=(),
) -> History:
    """Train a GAN or ALI by alternating steps of two optimizers.

    For every mini-batch x: ``discriminator_steps`` Adam steps on the discriminator's
    parameters minimising ``discriminator_loss_fn(model, x)``, then one Adam step on all
    the other parameters (G, and E for ALI) minimising ``generator_loss_fn(model, x)``.
    Both functions follow :func:`course_lib.training.fit`'s ``loss_fn(model, batch)``
    convention and may return ``(loss, terms)``.

    Adam with ``betas=(0.5, 0.999)`` and ``lr=2e-4`` are the usual GAN settings
    (Radford et al., 2016); ``lr_discriminator`` defaults to ``lr``.

    Returns a :class:`~course_lib.training.History` whose ``train_loss`` is the
    discriminator's loss per epoch (log 4 = 1.386 at the equilibrium, where D = 1/2
    everywhere) and whose ``train_terms`` hold a curve for "discriminator",
    "generator" and every term the loss functions return. ``step_loss`` holds the
    discriminator's loss at every step. There is no validation set and no "best
    epoch": a GAN's losses do not measure sample quality, so the last state is kept.
    ``callbacks(epoch, model, history)`` run after each epoch; one returning True stops.
    """
    if not isinstance(model, GAN) or not hasattr(model, "discriminator"):
        raise TypeError(f"model must be a course_lib.adversarial.GAN or ALI, got {type(model).__name__}")
    for fn, name in ((discriminator_loss_fn, "discriminator_loss_fn"), (generator_loss_fn, "generator_loss_fn")):
        if not callable(fn):
            raise TypeError(f"{name} must be a function {name}(model, x) -> scalar tensor")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if isinstance(discriminator_steps, bool) or not isinstance(discriminator_steps, int) or discriminator_steps < 1:
        raise ValueError(f"discriminator_steps must be a positive int, got {discriminator_steps!r}")
    callbacks = [callbacks] if callable(callbacks) else list(callbacks)
    device = torch.device(device) if device is not None else get_device()
    model.to(device)
    d_params = list(model.discriminator.parameters())
    d_ids = {id(p) for p in d_params}
    g_params = [p for p in model.parameters() if id(p) not in d_ids]
    d_optimizer = torch.optim.Adam(d_params, lr=lr_discriminator or lr, betas=betas)
    g_optimizer = torch.optim.Adam(g_params, lr=lr, betas=betas)
    loader = make_loader(train_data, batch_size=batch_size, shuffle=True, seed=seed)
    history = History()

    from tqdm.auto import trange

    bar = trange(epochs, desc="epochs", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        d_sums, g_sums, step_losses = _Sums(), _Sums(), []
        for batch in loader:
            x = _unwrap_single(to_device(batch, device))
            for _ in range(discriminator_steps):
                d_loss, d_terms = split_loss(discriminator_loss_fn(model, x))
                d_optimizer.zero_grad(set_to_none=True)
                d_loss.backward()
                d_optimizer.step()
            g_loss, g_terms = split_loss(generator_loss_fn(model, x))
            g_optimizer.zero_grad(set_to_none=True)
            g_loss.backward()
            g_optimizer.step()
            step_losses.append(d_loss.detach())
            n = _batch_len(x)
            d_sums.add(d_loss, {"discriminator": d_loss, **d_terms}, n)
            g_sums.add(g_loss, {"generator": g_loss, **g_terms}, n)
        if not step_losses:
            raise ValueError("train_data is empty: there is no batch to train on")
        history.step_loss += torch.stack(step_losses).tolist()
        d_mean, d_terms = d_sums.means()
        _, g_terms = g_sums.means()
        _append(history, "train", d_mean, {**d_terms, **g_terms})
        bar.set_postfix(D=f"{d_mean:.3g}", G=f"{g_terms['generator']:.3g}")
        if any([bool(cb(epoch + 1, model, history)) for cb in callbacks]) and epoch + 1 < epochs:
            history.stopped_early = True
            break
    history.best_epoch = len(history.train_loss)
    model.eval()
    return history
