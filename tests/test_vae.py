"""course_lib.vae against independent oracles: torch.distributions, Monte Carlo with tolerances
from the standard error, probabilistic PCA's closed forms, autograd and the score-function estimator."""
import math

import pytest
import torch
from torch.distributions import Bernoulli, MultivariateNormal, Normal, kl_divergence

from course_lib.training import fit
from course_lib.vae import (VAE, ProbabilisticPCA, VAEOutput, binarize, evaluate_elbo, gaussian_kl, gradient_samples,
                            iwae_bound, kl_per_dimension, log_likelihood, negative_elbo, reparameterize, vae_loss_fn)

torch.set_default_dtype(torch.float32)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def random_gaussian(n=7, L=5, seed=0, dtype=torch.float64):
    g = gen(seed)
    return torch.randn(n, L, generator=g, dtype=dtype), torch.randn(n, L, generator=g, dtype=dtype)


# ------------------------------------------------------------------ closed forms vs torch.distributions
def test_gaussian_kl_matches_torch_distributions():
    mu, logvar = random_gaussian()
    expected = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(gaussian_kl(mu, logvar), expected, rtol=1e-12, atol=1e-12)
    assert gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)).abs().max() == 0  # q = p


def test_gaussian_kl_matches_monte_carlo_within_standard_error():
    mu, logvar = torch.tensor([0.7, -1.2]), torch.tensor([-0.5, 0.8])
    z = reparameterize(mu.expand(200_000, 2), logvar.expand(200_000, 2), generator=gen(1))
    q, p = Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)
    samples = (q.log_prob(z) - p.log_prob(z)).sum(-1).double()
    se = samples.std() / math.sqrt(len(samples))
    # 5 standard errors: a correct KL fails with probability below 1e-6
    assert abs(samples.mean() - gaussian_kl(mu, logvar)) < 5 * se


def test_reparameterize_draws_from_q_and_passes_gradients():
    mu, logvar = torch.tensor([1.5, -2.0], requires_grad=True), torch.tensor([0.4, -1.0], requires_grad=True)
    n = 100_000
    z = reparameterize(mu.expand(n, 2), logvar.expand(n, 2), generator=gen(2))
    sd = (0.5 * logvar).exp().detach()
    assert torch.all((z.mean(0) - mu).abs() < 5 * sd / math.sqrt(n))
    # sample variance: its standard error is about sigma^2 sqrt(2 / n) for a Gaussian
    assert torch.all((z.var(0) - sd ** 2).abs() < 5 * sd ** 2 * math.sqrt(2 / n))
    # dz/dmu = 1 and dz/dlogvar = eps sigma / 2 = (z - mu) / 2, sample by sample
    z.sum().backward()
    torch.testing.assert_close(mu.grad, torch.full((2,), float(n)))
    torch.testing.assert_close(logvar.grad, 0.5 * (z.detach() - mu.detach()).sum(0), rtol=1e-4, atol=1e-2)


def test_reparameterize_is_reproducible_and_checks_shapes():
    mu, logvar = random_gaussian(dtype=torch.float32)
    assert torch.equal(reparameterize(mu, logvar, gen(3)), reparameterize(mu, logvar, gen(3)))
    with pytest.raises(ValueError, match="same shape"):
        reparameterize(mu, logvar[:, :2])
    with pytest.raises(TypeError, match="mu"):
        gaussian_kl([0.0], logvar)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_log_likelihood_matches_torch_distributions(likelihood):
    g = gen(4)
    out = torch.randn(6, 784, generator=g, dtype=torch.float64)
    if likelihood == "bernoulli":
        x = (torch.rand(6, 1, 28, 28, generator=g) < 0.4).double()
        expected = Bernoulli(logits=out).log_prob(x.flatten(1)).sum(-1)
        value = log_likelihood(x, out, "bernoulli")
    else:
        x = torch.rand(6, 784, generator=g, dtype=torch.float64)
        expected = Normal(out, 0.3).log_prob(x).sum(-1)
        value = log_likelihood(x, out, "gaussian", sigma_x=0.3)
    torch.testing.assert_close(value, expected, rtol=1e-12, atol=1e-9)


def test_negative_elbo_sums_over_pixels_and_latents_and_weights_the_kl_by_beta():
    torch.manual_seed(0)
    model = VAE(784, 32, 3).double()
    x = (torch.rand(5, 784, generator=gen(5)) < 0.3).double()
    out = model(x)
    loss, terms = negative_elbo(x, out, beta=2.5)
    rec = -Bernoulli(logits=out.reconstruction).log_prob(x).sum(-1).mean()
    kl = kl_divergence(Normal(out.mu, (0.5 * out.logvar).exp()), Normal(0.0, 1.0)).sum(-1).mean()
    torch.testing.assert_close(terms["reconstruction"], rec)
    torch.testing.assert_close(terms["kl"], kl)
    torch.testing.assert_close(loss, rec + 2.5 * kl)
    with pytest.raises(ValueError, match="beta"):
        negative_elbo(x, out, beta=-1.0)
    with pytest.raises(TypeError, match="VAEOutput"):
        negative_elbo(x, (out.reconstruction, out.mu))


def test_vae_interface_shapes_and_errors():
    model = VAE(likelihood="gaussian", sigma_x=0.5)
    out = model(torch.rand(4, 1, 28, 28))
    assert isinstance(out, VAEOutput)
    assert out.reconstruction.shape == (4, 784) and out.mu.shape == out.logvar.shape == out.z.shape == (4, 20)
    mu, logvar = model.encode(torch.rand(4, 784))
    assert mu.shape == logvar.shape == (4, 20)
    assert model.decode(torch.zeros(2, 3, 20)).shape == (2, 3, 784)
    assert model.sample(3, gen(0)).shape == (3, 784)
    with pytest.raises(ValueError, match="likelihood"):
        VAE(likelihood="poisson")
    with pytest.raises(ValueError, match="784"):
        model.encode(torch.rand(4, 100))
    with pytest.raises(ValueError, match="latent_dim"):
        VAE(latent_dim=0)
    with pytest.raises(ValueError, match="z must"):
        model.decode(torch.zeros(2, 3))


# --------------------------------------------------------- probabilistic PCA: the exact case
def ppca(d=6, L=2, seed=0, orthogonal=False):
    g = gen(seed)
    W = torch.randn(d, L, generator=g, dtype=torch.float64)
    if orthogonal:  # orthogonal columns of different lengths: the posterior is diagonal
        W = torch.linalg.qr(W).Q * torch.tensor([2.0, 0.7], dtype=torch.float64)
    b = torch.randn(d, generator=g, dtype=torch.float64)
    model = ProbabilisticPCA(W, b, 0.5)
    x = b + torch.randn(8, d, generator=g, dtype=torch.float64) * 1.5
    return model, x


def test_ppca_marginal_and_posterior_match_bayes_rule():
    """log p(x) = log p(x|z) + log p(z) - log p(z|x) for any z, with three independent densities."""
    model, x = ppca()
    mean, cov = model.posterior(x)
    z = torch.randn(8, 2, generator=gen(9), dtype=torch.float64)
    log_joint = Normal(model.decode(z), model.sigma_x).log_prob(x).sum(-1) + Normal(0.0, 1.0).log_prob(z).sum(-1)
    log_post = MultivariateNormal(mean, covariance_matrix=cov).log_prob(z)
    with torch.no_grad():
        torch.testing.assert_close(log_joint - log_post, model.log_marginal(x), rtol=1e-10, atol=1e-10)


def test_ppca_elbo_gap_is_the_kl_to_the_true_posterior():
    model, x = ppca()
    g = gen(10)
    mu, logvar = torch.randn(8, 2, generator=g, dtype=torch.float64), torch.randn(8, 2, generator=g, dtype=torch.float64)
    with torch.no_grad():
        gap = model.log_marginal(x) - model.elbo(x, mu, logvar)
        mean, cov = model.posterior(x)
        q = MultivariateNormal(mu, covariance_matrix=torch.diag_embed(logvar.exp()))
        expected = kl_divergence(q, MultivariateNormal(mean, covariance_matrix=cov))
    torch.testing.assert_close(gap, expected, rtol=1e-9, atol=1e-9)
    assert torch.all(gap > 0)


def test_ppca_closed_form_elbo_matches_a_monte_carlo_negative_elbo():
    model, x = ppca()
    mu, logvar = torch.zeros(8, 2, dtype=torch.float64), torch.full((8, 2), -0.5, dtype=torch.float64)
    n = 20_000
    with torch.no_grad():
        z = reparameterize(mu.expand(n, 8, 2), logvar.expand(n, 8, 2), generator=gen(11))
        samples = log_likelihood(x.expand(n, 8, 6), model.decode(z), "gaussian", model.sigma_x) - gaussian_kl(mu, logvar)
        exact = model.elbo(x, mu, logvar)
    se = samples.std(0) / math.sqrt(n)
    assert torch.all((samples.mean(0) - exact).abs() < 5 * se)


def test_iwae_is_exact_when_q_is_the_true_posterior():
    """With orthogonal columns of W the posterior is diagonal: every weight p(x, z)/q(z|x) equals p(x)."""
    model, x = ppca(orthogonal=True)
    with torch.no_grad():
        for k in (1, 7):
            torch.testing.assert_close(iwae_bound(model, x, k, generator=gen(k)), model.log_marginal(x),
                                       rtol=1e-10, atol=1e-10)


class OffPosterior(ProbabilisticPCA):
    """Probabilistic PCA with a deliberately poor q(z|x): the posterior's mean shifted, its variance inflated."""

    def encode(self, x):
        mu, logvar = super().encode(x)
        return mu + 0.8, logvar + 1.0


def test_iwae_tightens_towards_log_p_x():
    base, x = ppca()
    model = OffPosterior(base.W.detach(), base.b.detach(), base.sigma_x)
    with torch.no_grad():
        exact = model.log_marginal(x)
        elbo = model.elbo(x, *model.encode(x))
        log_w = [iwae_bound(model, x, 1, generator=gen(s)) for s in range(2000)]
        bounds = {k: iwae_bound(model, x, k, generator=gen(k)).mean() for k in (10, 100, 3000)}
    # k = 1 is a one-sample estimate of the ELBO: its mean over 2000 draws agrees within 5 SE
    log_w = torch.stack(log_w)
    assert torch.all((log_w.mean(0) - elbo).abs() < 5 * log_w.std(0) / math.sqrt(len(log_w)))
    gap = (exact - elbo).mean()
    assert gap > 1.0
    assert elbo.mean() < bounds[10] < bounds[100] < bounds[3000] <= exact.mean()
    assert exact.mean() - bounds[3000] < 0.1 * gap


# ------------------------------------------------------- the gradient estimators
def test_reparameterised_and_score_function_gradients_agree_with_the_exact_gradient():
    """f(z) = sum(z^2): E_q f = sum(mu^2 + sigma^2), so the gradient is (2 mu, sigma^2) exactly."""
    mu, logvar = torch.tensor([0.5, -1.0], dtype=torch.float64), torch.tensor([0.3, -0.4], dtype=torch.float64)
    exact = torch.cat([2 * mu, logvar.exp()])
    n = 50_000
    samples = gradient_samples(lambda z: (z ** 2).sum(-1), mu, logvar, n, gen(12))
    for estimates in samples.values():
        assert estimates.shape == (n, 4)
        se = estimates.std(0) / math.sqrt(n)
        assert torch.all((estimates.mean(0) - exact).abs() < 5 * se)
    assert torch.all(samples["score_function"].var(0) > 2 * samples["reparameterised"].var(0))


def test_kl_per_dimension_sums_to_the_kl_and_evaluate_elbo_matches_negative_elbo():
    mu, logvar = random_gaussian()
    torch.testing.assert_close(kl_per_dimension(mu, logvar).sum(-1), gaussian_kl(mu, logvar))
    torch.manual_seed(0)
    model = VAE(784, 16, 2).double()
    x = (torch.rand(30, 784, generator=gen(6)) < 0.3).double()
    result = evaluate_elbo(model, x, batch_size=7)
    torch.manual_seed(1)
    first = evaluate_elbo(model, x, batch_size=30)
    assert math.isclose(result["kl"], first["kl"], rel_tol=1e-9)   # the KL has no sampling noise
    assert math.isclose(result["negative_elbo"], result["reconstruction"] + result["kl"], rel_tol=1e-9)


# ------------------------------------------------------------------------- training
def test_fit_records_reconstruction_and_kl_and_lowers_the_loss():
    torch.manual_seed(0)
    x = binarize(torch.rand(256, 784, generator=gen(13)) * 0.3 + torch.linspace(0, 0.6, 784), seed=1)
    model = VAE(784, 64, 4)
    history = fit(model, vae_loss_fn(), x[:224], x[224:], epochs=4, batch_size=32, lr=3e-3, device="cpu",
                  progress=False)
    assert set(history.train_terms) == {"reconstruction", "kl"} and len(history.val_terms["kl"]) == 4
    assert history.train_loss[-1] < history.train_loss[0]
    for e in range(4):
        assert math.isclose(history.train_terms["reconstruction"][e] + history.train_terms["kl"][e],
                            history.train_loss[e], rel_tol=1e-6)


def test_binarize_is_fixed_and_has_the_intensity_as_mean():
    x = torch.full((400, 784), 0.3)
    b = binarize(x, seed=0)
    assert torch.equal(b, binarize(x, seed=0)) and set(b.unique().tolist()) == {0.0, 1.0}
    assert abs(b.mean() - 0.3) < 5 * math.sqrt(0.3 * 0.7 / b.numel())
    with pytest.raises(ValueError, match="intensities"):
        binarize(x + 1)
