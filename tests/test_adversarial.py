"""Tests of course_lib.adversarial, the grid mixture and the mode-coverage metric.

Oracles: hand computations of each loss (log D and log(1 - D) written out), the
closed-form optimal discriminator D* = p_data / (p_data + p_G) of two known 1-D
Gaussians, scipy's Jensen-Shannon distance for the identity V(D*, G) = 2 JS - log 4,
torch.distributions / scipy's normal CDF for the ALI encoder's samples, and
hand-made samples with a known number of modes covered.
"""
import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.spatial.distance import jensenshannon

from course_lib.adversarial import (
    ALI, GAN, Discriminator, Encoder, GaussianEncoder, Generator, JointDiscriminator, ali_discriminator_loss_fn,
    loss_fns, make_ali, make_gan,
    ali_generator_loss, ali_generator_loss_fn, discriminator_loss, fit_adversarial, gan_discriminator_loss_fn,
    gan_generator_loss_fn, non_saturating_generator_loss, saturating_generator_loss)
from course_lib.data import gaussian_grid_centres, load_gaussian_grid
from course_lib.metrics import mode_coverage
from course_lib.utils import seed_everything

LOGITS_REAL = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
LOGITS_FAKE = torch.tensor([-3.0, 0.0, 1.5, 0.2], dtype=torch.float64)


def _d(a):  # D = sigmoid(a), written out
    return 1.0 / (1.0 + np.exp(-np.asarray(a)))


# ---------------------------------------------------------------- losses by hand

def test_discriminator_loss_by_hand():
    expected = -np.mean(np.log(_d(LOGITS_REAL))) - np.mean(np.log(1 - _d(LOGITS_FAKE)))
    assert discriminator_loss(LOGITS_REAL, LOGITS_FAKE).item() == pytest.approx(expected, rel=1e-12)


def test_generator_losses_by_hand():
    assert saturating_generator_loss(LOGITS_FAKE).item() == pytest.approx(np.mean(np.log(1 - _d(LOGITS_FAKE))), rel=1e-12)
    assert non_saturating_generator_loss(LOGITS_FAKE).item() == pytest.approx(-np.mean(np.log(_d(LOGITS_FAKE))), rel=1e-12)
    # ALI: -E log(1 - D(x, E(x))) - E log D(G(z), z)
    expected = -np.mean(np.log(1 - _d(LOGITS_REAL))) - np.mean(np.log(_d(LOGITS_FAKE)))
    assert ali_generator_loss(LOGITS_REAL, LOGITS_FAKE).item() == pytest.approx(expected, rel=1e-12)


def test_losses_stay_finite_for_confident_discriminators():
    # log(sigmoid(-100)) underflows to log(0) when written naively; softplus does not
    huge = torch.tensor([100.0, -100.0])
    for value in (discriminator_loss(huge, huge), saturating_generator_loss(huge), non_saturating_generator_loss(huge)):
        assert torch.isfinite(value)
    assert non_saturating_generator_loss(torch.tensor([-100.0])).item() == pytest.approx(100.0)


def test_saturation_of_the_minimax_generator_loss():
    # where D(G(z)) ~ 0 (logit -8), the saturating loss's gradient vanishes, the non-saturating one's does not
    a = torch.tensor([-8.0], requires_grad=True)
    (g_sat,) = torch.autograd.grad(saturating_generator_loss(a), a)
    (g_ns,) = torch.autograd.grad(non_saturating_generator_loss(a), a)
    assert abs(g_sat.item()) == pytest.approx(_d(-8.0), rel=1e-6)      # d/da [-softplus(a)] = -sigmoid(a)
    assert abs(g_ns.item()) == pytest.approx(1 - _d(-8.0), rel=1e-6)
    assert abs(g_ns.item()) > 1000 * abs(g_sat.item())


@pytest.mark.parametrize("bad", [torch.zeros(2, 1), torch.zeros(0), [0.0, 1.0]])
def test_losses_reject_bad_logits(bad):
    with pytest.raises(ValueError, match="fake_logits"):
        non_saturating_generator_loss(bad)


# ---------------------------------------------------------------- the theory's closed forms

def test_value_at_optimal_discriminator_is_2_js_minus_log_4():
    """Discrete p_data and p_G, samples in exact proportions, logits of D* = log p - log q."""
    p = np.array([0.1, 0.4, 0.3, 0.2, 0.0])
    q = np.array([0.25, 0.25, 0.05, 0.15, 0.3])
    support = np.arange(5)
    real = np.repeat(support, np.round(p * 20).astype(int))      # 20 samples, exactly p's proportions
    fake = np.repeat(support, np.round(q * 20).astype(int))
    with np.errstate(divide="ignore"):
        logit_star = np.log(p) - np.log(q)                # D* = p / (p + q); -inf where p = 0
    value = -discriminator_loss(torch.tensor(logit_star[real]), torch.tensor(logit_star[fake])).item()
    js = jensenshannon(p, q) ** 2                        # scipy returns the distance sqrt(JS), natural log
    assert value == pytest.approx(2 * js - math.log(4), abs=1e-12)


def test_trained_discriminator_approaches_optimal_discriminator():
    """D trained with discriminator_loss on samples of N(0, 1) (real) and N(1.5, 0.5^2) (fake)."""
    seed_everything(0)
    real, fake = torch.randn(20000, 1), 1.5 + 0.5 * torch.randn(20000, 1)
    D = Discriminator(1, (32, 32))
    optimizer = torch.optim.Adam(D.parameters(), lr=3e-3)
    for step in range(1500):
        idx = torch.randint(0, 20000, (500,))
        loss = discriminator_loss(D(real[idx]), D(fake[idx]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x = np.linspace(-1.5, 2.5, 81)
    p_data, p_g = stats.norm.pdf(x, 0, 1), stats.norm.pdf(x, 1.5, 0.5)
    d_star = p_data / (p_data + p_g)
    with torch.no_grad():
        d_hat = torch.sigmoid(D(torch.tensor(x, dtype=torch.float32)[:, None])).numpy()
    # 20,000 samples a side: the estimate's noise is about 0.01; 0.05 also leaves room for the
    # network's approximation error, while the wrong sign (1 - D*) is off by up to 0.9
    assert np.max(np.abs(d_hat - d_star)) < 0.05


# ---------------------------------------------------------------- networks

def test_shapes_and_argument_checks():
    G, E, Q = Generator(3, 5, (8,)), Encoder(5, 3, (8,)), GaussianEncoder(5, 3, (8,))
    D, DJ = Discriminator(5, (8,)), JointDiscriminator(5, 3, (8,))
    z, x = torch.randn(4, 3), torch.randn(4, 5)
    assert G(z).shape == (4, 5) and E(x).shape == (4, 3) and Q(x).shape == (4, 3)
    assert D(x).shape == (4,) and DJ(x, z).shape == (4,)
    assert Generator(2, 784, output="sigmoid")(torch.randn(3, 2)).min() >= 0
    assert Encoder(784, 2)(torch.rand(3, 1, 28, 28)).shape == (3, 2)        # images are flattened
    with pytest.raises(ValueError, match="x must have shape"):
        D(torch.randn(4, 4))
    with pytest.raises(ValueError, match="as many rows"):
        DJ(x, z[:2])
    with pytest.raises(ValueError, match="latent_dim"):
        Generator(0, 2)
    with pytest.raises(ValueError, match="output"):
        Generator(2, 2, output="tanh")
    with pytest.raises(ValueError, match="encoder and generator"):
        ALI(Encoder(5, 2, (8,)), G, DJ)


def test_gaussian_encoder_samples_follow_its_distribution():
    seed_everything(0)
    Q = GaussianEncoder(4, 3, (16,))
    x = torch.randn(1, 4).repeat(40000, 1)
    with torch.no_grad():
        z = Q(x).double().numpy()
        q = Q.distribution(x[:1])
    mu, sigma = q.loc[0].double().numpy(), q.scale[0].double().numpy()
    # mean within 5 standard errors, std within 5 of its standard errors (sigma / sqrt(2n))
    assert np.all(np.abs(z.mean(0) - mu) < 5 * sigma / np.sqrt(len(z)))
    assert np.all(np.abs(z.std(0) - sigma) < 5 * sigma / np.sqrt(2 * len(z)))
    for j in range(3):   # and the whole distribution: Kolmogorov-Smirnov against N(mu_j, sigma_j^2)
        assert stats.kstest(z[:, j], "norm", args=(mu[j], sigma[j])).pvalue > 1e-4
    # log q(z | x) from torch.distributions against the normal density written out
    z0 = torch.tensor(z[:5], dtype=torch.float32)
    by_hand = stats.norm.logpdf(z[:5], mu, sigma).sum(1)
    assert np.allclose(q.log_prob(z0).sum(1).double().numpy(), by_hand, atol=1e-4)


def test_gaussian_encoder_is_reparameterised():
    # z = mu + sigma * eps: gradients reach the parameters, and dz/dmu = 1
    seed_everything(1)
    Q = GaussianEncoder(4, 2, (8,))
    x = torch.randn(6, 4)
    torch.manual_seed(5)
    z = Q(x)
    z.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in Q.parameters())
    torch.manual_seed(5)
    q = Q.distribution(x)
    eps = torch.randn_like(q.loc)
    assert torch.allclose(z, q.loc + q.scale * eps)


# ---------------------------------------------------------------- the grid and mode coverage

def test_grid_centres_and_samples():
    C = gaussian_grid_centres()
    assert C.shape == (25, 2) and set(C[:, 0]) == {-4, -2, 0, 2, 4}
    data = load_gaussian_grid(5000, std=0.05, seed=1)
    assert data.X.shape == (5000, 2) and data.X.dtype == np.float32
    residual = data.X - C[data.y]
    assert abs(residual.std() - 0.05) < 0.002
    with pytest.raises(ValueError, match="std"):
        load_gaussian_grid(10, std=0)


def test_mode_coverage_on_hand_made_samples():
    C, std = gaussian_grid_centres(), 0.05
    rng = np.random.default_rng(0)
    # 30 samples within 1 std of each of the first 7 modes, 5 near mode 7 (too few), and 40 far from any
    near = np.concatenate([C[k] + 0.5 * std * rng.uniform(-1, 1, (30, 2)) for k in range(7)])
    few = C[7] + 0.1 * std
    stray = np.full((5, 2), 1.0) * few
    far = C[12] + np.array([1.0, 0.0])          # halfway between two modes: 20 std from both
    samples = np.concatenate([near, stray, np.repeat(far[None], 40, axis=0)])
    result = mode_coverage(samples, C, std, n_std=3, min_count=20)
    assert result.modes_covered == 7 and result.n_modes == 25
    assert result.high_quality_fraction == pytest.approx((7 * 30 + 5) / len(samples))
    assert result.counts[7] == 5 and result.counts.sum() == 7 * 30 + 5
    assert mode_coverage(samples, C, std, min_count=5).modes_covered == 8


def test_mode_coverage_of_the_data_itself_and_a_collapsed_generator():
    data = load_gaussian_grid(10000, seed=2)
    full = mode_coverage(data.X, gaussian_grid_centres(), 0.05)
    assert full.modes_covered == 25 and full.high_quality_fraction > 0.98   # P(chi2_2 <= 9) = 0.989
    collapsed = np.repeat(gaussian_grid_centres()[[3]], 100, axis=0)
    assert mode_coverage(collapsed, gaussian_grid_centres(), 0.05).modes_covered == 1


def test_mode_coverage_argument_checks():
    with pytest.raises(ValueError, match="columns"):
        mode_coverage(np.zeros((3, 3)), gaussian_grid_centres(), 0.05)
    with pytest.raises(ValueError, match="min_count"):
        mode_coverage(np.zeros((3, 2)), gaussian_grid_centres(), 0.05, min_count=0)


# ---------------------------------------------------------------- the training loop

def _tiny_gan():
    return GAN(Generator(2, 2, (16,)), Discriminator(2, (16,)))


def test_discriminator_step_leaves_the_generator_alone():
    seed_everything(0)
    model = ALI(Encoder(2, 2, (8,)), Generator(2, 2, (8,)), JointDiscriminator(2, 2, (8,)))
    x = torch.randn(16, 2)
    loss, terms = ali_discriminator_loss_fn(model, x)
    loss.backward()
    assert all(p.grad is None for p in [*model.generator.parameters(), *model.encoder.parameters()])
    assert set(terms) == {"D(real)", "D(fake)"}
    gan = _tiny_gan()
    gan_discriminator_loss_fn(gan, x)[0].backward()
    assert all(p.grad is None for p in gan.generator.parameters())
    model.zero_grad()
    ali_generator_loss_fn(model, x).backward()      # the encoder/generator step reaches both
    assert all(p.grad is not None for p in [*model.generator.parameters(), *model.encoder.parameters()])


def test_fit_adversarial_records_each_term_and_is_reproducible():
    data = torch.from_numpy(load_gaussian_grid(512, seed=0).X)
    runs = []
    for _ in range(2):
        seed_everything(3)
        model = _tiny_gan()
        history = fit_adversarial(model, gan_discriminator_loss_fn, gan_generator_loss_fn, data, epochs=3,
                                  batch_size=128, device="cpu", progress=False)
        runs.append(history)
    history = runs[0]
    assert len(history.train_loss) == 3 and len(history.step_loss) == 3 * 4
    assert set(history.train_terms) == {"discriminator", "generator", "D(real)", "D(fake)"}
    assert history.train_terms["discriminator"] == pytest.approx(history.train_loss)
    assert runs[0].step_loss == runs[1].step_loss
    assert not model.training


def test_fit_adversarial_moves_the_discriminator_towards_the_data():
    # a few hundred steps against a frozen-at-start generator: D(real) rises above D(fake)
    seed_everything(0)
    model = _tiny_gan()
    data = torch.from_numpy(load_gaussian_grid(2048, seed=0).X)
    history = fit_adversarial(model, gan_discriminator_loss_fn, lambda m, x: 0.0 * m.generator(m.sample_prior(1)).sum(),
                              data, epochs=5, batch_size=64, lr=2e-3, device="cpu", progress=False)
    # (the untrained generator's blob overlaps the centre mode, so D cannot separate them fully)
    assert history.train_terms["D(real)"][-1] > history.train_terms["D(fake)"][-1] + 0.2
    assert history.train_loss[-1] < math.log(4) - 0.1 < history.train_loss[0] + 0.1


def test_fit_adversarial_argument_checks():
    data = torch.zeros(8, 2)
    with pytest.raises(TypeError, match="model"):
        fit_adversarial(Generator(2, 2), gan_discriminator_loss_fn, gan_generator_loss_fn, data)
    with pytest.raises(ValueError, match="epochs"):
        fit_adversarial(_tiny_gan(), gan_discriminator_loss_fn, gan_generator_loss_fn, data, epochs=0)
    with pytest.raises(TypeError, match="generator_loss_fn"):
        fit_adversarial(_tiny_gan(), gan_discriminator_loss_fn, None, data)


def test_ali_encode_and_reconstruct_shapes():
    model = ALI(GaussianEncoder(2, 2, (8,)), Generator(2, 2, (8,)), JointDiscriminator(2, 2, (8,)))
    x = torch.randn(5, 2)
    assert model.encode(x).shape == (5, 2) and model.reconstruct(x).shape == (5, 2)
    assert torch.equal(model.encode(x), model.encode(x))      # the mean of q(z | x): deterministic
    assert model.sample(7).shape == (7, 2)


def test_factories_and_loss_fns():
    gan, ali, bigan = make_gan(2, 3, (8,)), make_ali(2, 3, (8,)), make_ali(2, 3, (8,), stochastic=False)
    assert isinstance(ali.encoder, GaussianEncoder) and isinstance(bigan.encoder, Encoder)
    assert loss_fns(ali) == (ali_discriminator_loss_fn, ali_generator_loss_fn)
    assert loss_fns(gan) == (gan_discriminator_loss_fn, gan_generator_loss_fn)
    seed_everything(0)
    x = torch.randn(5, 2)
    _, saturating = loss_fns(gan, saturating=True)
    torch.manual_seed(1)
    expected = saturating_generator_loss(gan.discriminator(gan.generator(gan.sample_prior(5))))
    torch.manual_seed(1)
    assert torch.equal(saturating(gan, x), expected)
    with pytest.raises(ValueError, match="non-saturating"):
        loss_fns(ali, saturating=True)
