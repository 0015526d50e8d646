"""Tests of course_lib.autoencoders: shapes, argument checks, the linear
autoencoder against PCA (numpy's SVD), and the penalties doing their job when
trained with the shared loop."""
import numpy as np
import pytest
import torch
from scipy.linalg import subspace_angles
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader

from course_lib.autoencoders import (
    ContractiveAutoencoder,
    ConvAutoencoder,
    LinearAutoencoder,
    MLPAutoencoder,
    OvercompleteAutoencoder,
    SparseAutoencoder,
)
from course_lib.losses import (
    autoencoder_loss_fn,
    contractive_loss_fn,
    contractive_penalty,
    sparse_kl_loss_fn,
)
from course_lib.training import fit
from course_lib.utils import seed_everything


# One torch thread for these tiny models: see the autouse fixture in conftest.py.


MODELS = {
    "mlp-2d": lambda: MLPAutoencoder(784, (256, 64), 2),
    "mlp-sigmoid-out": lambda: MLPAutoencoder(784, (128,), 16, activation="tanh", sigmoid_output=True),
    "linear": lambda: LinearAutoencoder(784, 8),
    "overcomplete": lambda: OvercompleteAutoencoder(784, 1000),
    "sparse": lambda: SparseAutoencoder(784, (), 300),
    "contractive": lambda: ContractiveAutoencoder(784, 32),
    "conv": lambda: ConvAutoencoder(code_dim=10),
}


@pytest.fixture(scope="module")
def digits():
    """sklearn's 8x8 digits scaled to [0, 1], float32 (1797 x 64)."""
    data = load_digits()
    return (data.data / 16.0).astype(np.float32), data.target


@pytest.mark.parametrize("name", MODELS)
def test_every_model_maps_images_to_images_and_codes(name):
    model = MODELS[name]()
    x = torch.rand(5, 1, 28, 28)
    x_hat = model(x)
    assert x_hat.shape == x.shape
    z = model.encode(x)
    assert z.shape == (5, model.code_dim)
    assert torch.equal(x_hat, model.decode(z).reshape(x.shape))
    assert model.encode(x).shape == (5, model.code_dim)
    assert model.decode(z)[0].numel() == 784


@pytest.mark.parametrize("name", MODELS)
def test_every_model_also_takes_flat_inputs(name):
    model = MODELS[name]()
    x = torch.rand(3, 784)
    assert model(x).shape == (3, 784)


def test_codes_and_outputs_lie_where_the_penalties_need_them():
    x = torch.randn(6, 1, 28, 28) * 5
    z = SparseAutoencoder(784, (), 50).encode(x)
    assert torch.all((z > 0) & (z < 1))  # KL penalty reads z as Bernoulli means
    h = ContractiveAutoencoder(784, 20).encode(x)
    assert torch.all((h > 0) & (h < 1))
    assert torch.all(OvercompleteAutoencoder(784, 784).encode(x) >= 0)  # relu code
    x_hat = MLPAutoencoder(784, (32,), 4, sigmoid_output=True)(x)
    assert torch.all((x_hat >= 0) & (x_hat <= 1))


def test_mlp_layers_mirror_the_encoder():
    model = MLPAutoencoder(784, (256, 64), 2)
    enc = [(m.in_features, m.out_features) for m in model.encoder if isinstance(m, torch.nn.Linear)]
    dec = [(m.in_features, m.out_features) for m in model.decoder if isinstance(m, torch.nn.Linear)]
    assert enc == [(784, 256), (256, 64), (64, 2)]
    assert dec == [(2, 64), (64, 256), (256, 784)]


def test_linear_autoencoder_has_no_bias_and_no_activation():
    model = LinearAutoencoder(10, 3)
    assert [name for name, _ in model.named_parameters()] == ["encoder.1.weight", "decoder.weight"]
    x = torch.randn(4, 10)
    expected = x @ model.encoder_weight.T @ model.decoder_weight.T  # x_hat = W' W x
    torch.testing.assert_close(model(x), expected)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="784"):
        MLPAutoencoder(784, (32,), 2)(torch.rand(4, 100))
    with pytest.raises(ValueError, match="784"):
        ConvAutoencoder()(torch.rand(4, 1, 32, 32))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        LinearAutoencoder(4, 2).encode(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="code_dim >= input_dim"):
        OvercompleteAutoencoder(784, 100)
    with pytest.raises(ValueError, match="activation"):
        MLPAutoencoder(784, (32,), 2, activation="swish")
    with pytest.raises(ValueError, match="code_dim"):
        LinearAutoencoder(10, 0)
    with pytest.raises(ValueError, match="hidden_dims"):
        MLPAutoencoder(784, (32, -1), 2)
    with pytest.raises(ValueError, match="channels"):
        ConvAutoencoder(channels=(8, 16, 32))


def test_linear_autoencoder_reaches_pca_and_spans_its_subspace(digits):
    X = digits[0].astype(np.float64)
    X = X - X.mean(axis=0)  # PCA centres; the bias-free linear AE needs centred data
    n, k = X.shape[0], 8
    _, s, Vt = np.linalg.svd(X, full_matrices=False)
    pca_error = (s[k:] ** 2).sum() / n  # mean squared error per sample of the rank-k projection

    seed_everything(0)
    model = LinearAutoencoder(64, k)
    X_t = torch.tensor(X, dtype=torch.float32)
    # Full-batch Adam: without minibatch noise the iterates settle on the
    # minimum instead of jittering around it. A DataLoader over the one-element
    # list [X_t] yields X_t itself each epoch (no per-row collation): ~1 s.
    full_batch = DataLoader([X_t], batch_size=None)
    fit(model, autoencoder_loss_fn(), full_batch, epochs=800, lr=2e-2, device="cpu", progress=False)
    with torch.no_grad():
        ae_error = float(((model(X_t) - X_t) ** 2).sum(dim=1).mean())

    # The criterion: within 2 % of PCA's error at the same k. PCA's error
    # is a lower bound for any rank-k linear map, so the ratio cannot go below 1
    # beyond float32 rounding of the model's output (~1e-6 relative).
    assert 1 - 1e-5 <= ae_error / pca_error <= 1.02

    # The decoder's columns span the principal subspace. Random 8-D subspaces of
    # R^64 have their largest principal angle near 90 degrees, and a decoder that
    # took the 9th principal direction instead of the 8th would show 90 degrees.
    # The 8th and 9th eigenvalues are close (0.172 vs 0.157), so the loss is
    # within 0.3 % of PCA's long before that direction settles (after 300 epochs
    # some seeds are still 30 degrees off); after 800 epochs seeds 0-5 all end
    # below 0.02 degrees, and 1 degree leaves a 50x margin for other platforms.
    angles = np.degrees(subspace_angles(model.decoder_weight.detach().double().numpy(), Vt[:k].T))
    assert angles.max() < 1.0


def test_contractive_penalty_makes_the_encoder_contract(digits):
    X = torch.tensor(digits[0][:600])

    def jacobian_norm(lam):
        seed_everything(0)
        model = ContractiveAutoencoder(64, 32)
        loss_fn = contractive_loss_fn(lam)
        fit(model, loss_fn, X, epochs=15, batch_size=64, lr=1e-2, device="cpu", progress=False)
        with torch.no_grad():
            return float(contractive_penalty(model.encoder_weight, model.encode(X)))

    free, contracted = jacobian_norm(0.0), jacobian_norm(1.0)
    # Same seed, same data, same steps: only the penalty differs. Unpenalised,
    # the encoder's Jacobian grows with training; penalised it must be markedly
    # smaller (this run: about 10x; we ask for 3x).
    assert contracted < free / 3


def test_sparse_kl_penalty_pulls_mean_activation_to_rho(digits):
    X = torch.tensor(digits[0][:600])
    rho = 0.05

    def mean_activation(lam):
        seed_everything(0)
        model = SparseAutoencoder(64, (), 100)
        loss_fn = sparse_kl_loss_fn(rho, lam)
        fit(model, loss_fn, X, epochs=15, batch_size=64, lr=1e-2, device="cpu", progress=False)
        with torch.no_grad():
            return model.encode(X).mean(dim=0)

    free, sparse = mean_activation(0.0), mean_activation(1.0)
    # Unpenalised, sigmoid units start near 0.5 and stay far from 0.05; with the
    # penalty the average unit's mean activation must come close to rho.
    assert (free - rho).abs().mean() > 0.2
    assert (sparse - rho).abs().mean() < 0.02
