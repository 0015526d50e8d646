"""The autoencoder family as ``nn.Module``s.

Every model has an encoder phi and a decoder psi, and three methods:

- ``encode(x)``  -> the code z = phi(x), shape (n, code_dim);
- ``decode(z)``  -> psi(z), shape (n, input_dim) for the fully connected
  models and (n, 1, 28, 28) for the convolutional one;
- ``forward(x)`` -> the reconstruction x_hat = psi(phi(x)), with x's own shape.
  (The penalties of :mod:`course_lib.losses` that need the code z call
  ``encode`` and ``decode`` themselves.)

The fully connected models accept flat inputs (n, d) as well as images
(n, 1, 28, 28), which they flatten. Train them with
:func:`course_lib.training.fit` and a loss function from :mod:`course_lib.losses`.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

Tensor = torch.Tensor

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU, "elu": nn.ELU}


def _check_dim(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _activation(name: str) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {name!r}")
    return _ACTIVATIONS[name]()


class Autoencoder(nn.Module):
    """Base class: x_hat = psi(phi(x)). Subclasses set ``self.encoder`` and ``self.decoder``."""

    input_dim: int
    code_dim: int

    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() < 2 or x[0].numel() != self.input_dim:
            raise ValueError(
                f"x must have shape (n, {self.input_dim}) or (n, ...) with {self.input_dim} entries "
                f"per sample, got shape {tuple(x.shape)}"
            )

    def encode(self, x: Tensor) -> Tensor:
        """The code z = phi(x)."""
        self._check_input(x)
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """The decoder's output psi(z)."""
        return self.decoder(z)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x)).reshape(x.shape)


def _mlp(sizes: Sequence[int], activation: str) -> list[nn.Module]:
    """Linear layers between consecutive sizes, with an activation after all but the last."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(_activation(activation))
    return layers


class MLPAutoencoder(Autoencoder):
    """A fully connected autoencoder, e.g. 784-256-64-2 for a 2-D latent space.

    The decoder mirrors the encoder: ``MLPAutoencoder(784, (256, 64), 2)`` is
    784 -> 256 -> 64 -> 2 -> 64 -> 256 -> 784, with ``activation`` between layers.

    Parameters
    ----------
    input_dim : d, the number of entries of x (784 for a 28 x 28 image).
    hidden_dims : the encoder's hidden sizes, from the input towards the code.
    code_dim : dim(z).
    activation : "relu", "tanh", "sigmoid", "gelu" or "elu".
    code_activation : None for a linear code, or one of the activations
        ("sigmoid" puts z in (0, 1), as the sparse KL penalty needs).
    sigmoid_output : squash x_hat into (0, 1), for images scaled to [0, 1].
    """

    def __init__(
        self,
        input_dim: int = 784,
        hidden_dims: Sequence[int] = (256, 64),
        code_dim: int = 2,
        activation: str = "relu",
        code_activation: str | None = None,
        sigmoid_output: bool = False,
    ):
        super().__init__()
        self.input_dim = _check_dim(input_dim, "input_dim")
        self.code_dim = _check_dim(code_dim, "code_dim")
        if isinstance(hidden_dims, int):
            hidden_dims = (hidden_dims,)
        hidden_dims = tuple(_check_dim(h, "each of hidden_dims") for h in hidden_dims)
        _activation(activation)  # fail early on a bad name

        sizes = (self.input_dim, *hidden_dims, self.code_dim)
        encoder = [nn.Flatten(), *_mlp(sizes, activation)]
        if code_activation is not None:
            encoder.append(_activation(code_activation))
        decoder = _mlp(sizes[::-1], activation)
        if sigmoid_output:
            decoder.append(nn.Sigmoid())
        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*decoder)


class LinearAutoencoder(Autoencoder):
    """The linear autoencoder x_hat = W' W x, the network that PCA solves in closed form.

    No activation anywhere. With ``bias=False`` (the default) it minimises the
    lecture's ||X - W'WX||_F^2, whose minimum is PCA's reconstruction error at
    k = code_dim on centred data, and the columns of W' then span the principal
    subspace. With ``bias=True`` it can also learn the mean, so uncentred data work.
    """

    def __init__(self, input_dim: int, code_dim: int, bias: bool = False):
        super().__init__()
        self.input_dim = _check_dim(input_dim, "input_dim")
        self.code_dim = _check_dim(code_dim, "code_dim")
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(self.input_dim, self.code_dim, bias=bias))
        self.decoder = nn.Linear(self.code_dim, self.input_dim, bias=bias)

    @property
    def encoder_weight(self) -> Tensor:
        """W, shape (code_dim, input_dim)."""
        return self.encoder[1].weight

    @property
    def decoder_weight(self) -> Tensor:
        """W', shape (input_dim, code_dim); its columns span the learnt subspace."""
        return self.decoder.weight


class OvercompleteAutoencoder(MLPAutoencoder):
    """An autoencoder whose code is at least as large as its input: dim(z) >= dim(x).

    Without a penalty it can learn to copy x to x_hat and the reconstruction
    error says nothing about the features; train it with a regularised loss
    (:func:`~course_lib.losses.l1_sparse_loss_fn`, :func:`~course_lib.losses.denoising_loss_fn`, ...).
    One hidden layer of ``code_dim`` units by default: x -> z -> x_hat.
    """

    def __init__(
        self,
        input_dim: int = 784,
        code_dim: int = 1024,
        hidden_dims: Sequence[int] = (),
        activation: str = "relu",
        code_activation: str | None = "relu",
        sigmoid_output: bool = False,
    ):
        _check_dim(input_dim, "input_dim")
        _check_dim(code_dim, "code_dim")
        if code_dim < input_dim:
            raise ValueError(
                f"an overcomplete code needs code_dim >= input_dim = {input_dim}, got {code_dim}"
            )
        super().__init__(input_dim, hidden_dims, code_dim, activation, code_activation, sigmoid_output)


class SparseAutoencoder(MLPAutoencoder):
    """An autoencoder with a sigmoid code z in (0, 1), for the sparsity penalties.

    The KL penalty sum_j KL(rho || rho_hat_j) reads each unit's mean activation
    rho_hat_j as a Bernoulli mean, hence the sigmoid. Often overcomplete.
    """

    def __init__(
        self,
        input_dim: int = 784,
        hidden_dims: Sequence[int] = (),
        code_dim: int = 256,
        activation: str = "relu",
        sigmoid_output: bool = False,
    ):
        super().__init__(input_dim, hidden_dims, code_dim, activation, "sigmoid", sigmoid_output)


class ContractiveAutoencoder(Autoencoder):
    """An autoencoder whose encoder is one sigmoid layer, h = phi(x) = sigmoid(W x + b).

    That is the encoder for which the contractive penalty ||J_phi(x)||_F^2 has
    the closed form of :func:`~course_lib.losses.contractive_penalty`, which
    needs W: it is ``encoder_weight``. The decoder is one linear layer
    (followed by a sigmoid when ``sigmoid_output``).
    """

    def __init__(self, input_dim: int = 784, code_dim: int = 64, sigmoid_output: bool = False):
        super().__init__()
        self.input_dim = _check_dim(input_dim, "input_dim")
        self.code_dim = _check_dim(code_dim, "code_dim")
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(self.input_dim, self.code_dim), nn.Sigmoid())
        decoder: list[nn.Module] = [nn.Linear(self.code_dim, self.input_dim)]
        if sigmoid_output:
            decoder.append(nn.Sigmoid())
        self.decoder = nn.Sequential(*decoder)

    @property
    def encoder_weight(self) -> Tensor:
        """W, shape (code_dim, input_dim)."""
        return self.encoder[1].weight


class ConvAutoencoder(Autoencoder):
    """A convolutional autoencoder for 1 x 28 x 28 images.

    Encoder: two stride-2 3x3 convolutions (28 -> 14 -> 7 pixels a side), then a
    linear layer to the code. Decoder: the mirror image, a linear layer back to
    the 7 x 7 feature maps and two stride-2 transposed convolutions (7 -> 14 -> 28).
    ``output_padding=1`` picks 14 and 28 among the sizes a stride-2 transposed
    convolution can produce ((7 - 1) * 2 + 3 - 2 * 1 = 13, plus 1).

    Parameters
    ----------
    code_dim : dim(z).
    channels : the feature maps after the first and second convolution.
    sigmoid_output : squash x_hat into (0, 1), for images scaled to [0, 1].
    """

    image_shape = (1, 28, 28)

    def __init__(self, code_dim: int = 16, channels: Sequence[int] = (16, 32), sigmoid_output: bool = False):
        super().__init__()
        self.code_dim = _check_dim(code_dim, "code_dim")
        if len(channels) != 2:
            raise ValueError(f"channels must be two ints (first and second convolution), got {channels!r}")
        c1, c2 = (_check_dim(c, "each of channels") for c in channels)
        self.input_dim = 28 * 28
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, kernel_size=3, stride=2, padding=1),  # 28 -> 14
            nn.ReLU(),
            nn.Conv2d(c1, c2, kernel_size=3, stride=2, padding=1),  # 14 -> 7
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(c2 * 7 * 7, self.code_dim),
        )
        decoder: list[nn.Module] = [
            nn.Linear(self.code_dim, c2 * 7 * 7),
            nn.ReLU(),
            nn.Unflatten(1, (c2, 7, 7)),
            nn.ConvTranspose2d(c2, c1, kernel_size=3, stride=2, padding=1, output_padding=1),  # 7 -> 14
            nn.ReLU(),
            nn.ConvTranspose2d(c1, 1, kernel_size=3, stride=2, padding=1, output_padding=1),  # 14 -> 28
        ]
        if sigmoid_output:
            decoder.append(nn.Sigmoid())
        self.decoder = nn.Sequential(*decoder)

    def encode(self, x: Tensor) -> Tensor:
        """The code z = phi(x) of images (n, 1, 28, 28); flat inputs (n, 784) are reshaped."""
        self._check_input(x)
        return self.encoder(x.reshape(-1, *self.image_shape))
