"""Tests of course_lib.vqvae against independent oracles: brute-force nearest codewords,
autograd for the straight-through estimator and the loss's stop-gradients, a hand computation
of the EMA step, closed forms of the perplexity, and autograd for the prior's causality."""
import math

import pytest
import torch

from course_lib.training import fit
from course_lib.utils import seed_everything
from course_lib.vqvae import (
    MaskedConv2d,
    PixelCNNPrior,
    VectorQuantizer,
    VQVAE,
    codebook_perplexity,
    encode_codes,
    nearest_codes,
    prior_nll,
    uniform_quantize,
    vqvae_loss,
    vqvae_loss_fn,
)


def test_nearest_codes_match_brute_force():
    g = torch.Generator().manual_seed(0)
    z, codebook = torch.randn(200, 5, generator=g), torch.randn(17, 5, generator=g)
    brute = torch.cdist(z.double(), codebook.double()).argmin(dim=1)
    assert torch.equal(nearest_codes(z, codebook), brute)


def test_quantizer_outputs_codewords_with_straight_through_values():
    quantizer = VectorQuantizer(8, 3)
    z_e = torch.randn(2, 3, 4, 5)
    q = quantizer(z_e)
    assert q.codes.shape == (2, 4, 5) and q.e.shape == z_e.shape
    expected = quantizer.codebook.detach()[q.codes].permute(0, 3, 1, 2)
    assert torch.equal(q.e.detach(), expected)
    assert torch.allclose(q.z_q, expected, atol=1e-6)   # z_e + (e - z_e): e up to rounding


def test_straight_through_gradient_equals_decoder_gradient_at_the_code():
    seed_everything(0)
    model = VQVAE(num_codes=16, code_dim=4, channels=(8, 8), ema=False)
    x = torch.rand(3, 1, 28, 28)
    out = model(x)
    out.z_e.retain_grad()
    ((x - out.x_hat) ** 2).sum().backward()
    # oracle: the decoder alone, differentiated at the quantised grid e
    e = out.e.detach().clone().requires_grad_()
    ((x - model.decode(e)) ** 2).sum().backward()
    assert torch.allclose(out.z_e.grad, e.grad, rtol=1e-5, atol=1e-7)
    assert model.quantizer.codebook.grad is None   # the reconstruction term never reaches the codebook


def test_each_loss_term_reaches_only_its_parameters():
    seed_everything(0)
    model = VQVAE(num_codes=16, code_dim=4, channels=(8, 8), ema=False)
    x = torch.rand(4, 1, 28, 28)
    groups = {"encoder": model.encoder, "decoder": model.decoder, "codebook": model.quantizer}
    expected = {"reconstruction": {"encoder", "decoder"}, "codebook": {"codebook"}, "commitment": {"encoder"}}
    for term, reached in expected.items():
        model.zero_grad(set_to_none=True)
        _, terms = vqvae_loss(x, model(x))
        terms[term].backward()
        for name, module in groups.items():
            grads = [p.grad for p in module.parameters()]
            has_grad = any(g is not None and g.abs().sum() > 0 for g in grads)
            assert has_grad == (name in reached), f"{term} term: gradient reaching the {name} is {has_grad}"


def test_loss_value_and_beta():
    g = torch.Generator().manual_seed(1)
    x, x_hat = torch.rand(2, 1, 28, 28, generator=g), torch.rand(2, 1, 28, 28, generator=g)
    z_e, e = torch.randn(2, 3, 7, 7, generator=g), torch.randn(2, 3, 7, 7, generator=g)
    out = type("Out", (), {"x_hat": x_hat, "z_e": z_e, "e": e})()
    loss, terms = vqvae_loss(x, out, beta=0.25)
    rec = sum(((x[i] - x_hat[i]) ** 2).sum() for i in range(2)) / 2
    dist = sum(((z_e[i] - e[i]) ** 2).sum() for i in range(2)) / 2
    assert torch.isclose(terms["reconstruction"], rec) and torch.isclose(terms["codebook"], dist)
    assert torch.isclose(loss, rec + 1.25 * dist)
    loss_no_commit, _ = vqvae_loss(x, out, beta=0.25, drop=("commitment",))
    assert torch.isclose(loss_no_commit, rec + dist)
    with pytest.raises(ValueError, match="drop"):
        vqvae_loss(x, out, drop=("kl",))
    with pytest.raises(ValueError, match="drop"):
        vqvae_loss_fn(drop="commitment")


def test_ema_update_matches_hand_computation():
    quantizer = VectorQuantizer(3, 2, ema=True, decay=0.9, eps=0.0)
    codebook = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    quantizer.codebook.copy_(codebook)
    quantizer.ema_sum.copy_(codebook)              # N_k = 1, m_k = e_k
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [9.0, 1.0]])   # two vectors near e_0, one near e_1, none near e_2
    quantizer.train()
    q = quantizer(z.T.reshape(1, 2, 1, 3))
    assert q.codes.flatten().tolist() == [0, 0, 1]
    # by hand: N = 0.9 * 1 + 0.1 * (2, 1, 0) = (1.1, 1.0, 0.9)
    #          m_0 = 0.9 * (0, 0) + 0.1 * (1, 1) = (0.1, 0.1);  m_1 = 0.9 * (10, 0) + 0.1 * (9, 1) = (9.9, 0.1)
    #          m_2 = 0.9 * (0, 10) = (0, 9)
    count = torch.tensor([1.1, 1.0, 0.9])
    assert torch.allclose(quantizer.ema_count, count)
    expected = torch.tensor([[0.1 / 1.1, 0.1 / 1.1], [9.9, 0.1], [0.0, 9.0 / 0.9]])
    assert torch.allclose(quantizer.codebook, expected, atol=1e-6)


def test_ema_laplace_smoothing_by_hand():
    quantizer = VectorQuantizer(2, 1, ema=True, decay=0.5, eps=0.1)
    quantizer.ema_count.copy_(torch.tensor([1.0, 1.0]))
    quantizer.ema_sum.copy_(torch.tensor([[2.0], [4.0]]))
    quantizer.ema_update(torch.tensor([2.0, 0.0]), torch.tensor([[6.0], [0.0]]))
    # N = (1.5, 0.5), total 2; smoothed N = (N + 0.1) / (2 + 0.2) * 2; m = (4, 2)
    smoothed = (torch.tensor([1.5, 0.5]) + 0.1) / 2.2 * 2
    assert torch.allclose(quantizer.codebook.flatten(), torch.tensor([4.0, 2.0]) / smoothed)


def test_ema_codebook_is_not_a_parameter_and_eval_does_not_update():
    quantizer = VectorQuantizer(4, 2, ema=True)
    assert not any(p is quantizer.codebook for p in quantizer.parameters())
    before = quantizer.codebook.clone()
    quantizer.eval()
    quantizer(torch.randn(3, 2, 2, 2))
    assert torch.equal(quantizer.codebook, before)


def test_dead_codes_are_moved_onto_encoder_outputs():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(4, 2, dead_code_threshold=0.5)
    with torch.no_grad():
        quantizer.codebook.copy_(torch.tensor([[0.0, 0.0], [50.0, 50.0], [60.0, 60.0], [70.0, 70.0]]))
    quantizer.usage.copy_(torch.tensor([10.0, 0.1, 0.1, 0.1]))   # codes 1..3 have been unused for a long time
    z = torch.randn(1, 2, 4, 4) * 0.1
    quantizer.train()
    quantizer(z)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 2)
    for k in (1, 2, 3):                              # each revived codeword is now one of the batch's vectors
        assert (quantizer.codebook[k] - flat).abs().sum(dim=1).min() == 0
    assert int(quantizer.revived) == 3 and quantizer.codebook[0].abs().sum() == 0   # code 0 stays


def test_perplexity_closed_forms():
    assert codebook_perplexity(torch.arange(10).repeat(7), 10) == pytest.approx(10)     # uniform: K
    assert codebook_perplexity(torch.full((50,), 3), 10) == pytest.approx(1)            # one code: 1
    codes = torch.tensor([0, 0, 0, 1])                                                   # p = (3/4, 1/4)
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert codebook_perplexity(codes, 4) == pytest.approx(math.exp(entropy))
    with pytest.raises(ValueError, match="codes"):
        codebook_perplexity(torch.tensor([0, 5]), 4)


def _output_depends_on(prior, i, j):
    """Positions whose embedding the logits at (i, j) have a non-zero gradient with respect to."""
    h = torch.randn(1, prior.embed.embedding_dim, *prior.grid_shape, requires_grad=True)
    prior.logits_from_embeddings(h)[0, :, i, j].sum().backward()
    return h.grad[0].abs().sum(dim=0) > 0


def test_prior_is_causal_in_raster_order():
    torch.manual_seed(0)
    prior = PixelCNNPrior(num_codes=8, grid_shape=(5, 6), channels=8, n_layers=3, first_kernel=5)
    for i, j in [(0, 0), (2, 3), (4, 5), (3, 0)]:
        seen = _output_depends_on(prior, i, j)
        position = torch.arange(30).reshape(5, 6)
        assert not seen[position >= i * 6 + j].any(), f"logits at {(i, j)} see the present or the future"
        if (i, j) != (0, 0):
            assert seen[i, j - 1] if j > 0 else seen[i - 1, j], "logits must see the previous position"


def test_masks_by_hand():
    a, b = MaskedConv2d("A", 1, 1, 3).mask, MaskedConv2d("B", 1, 1, 3).mask
    assert a.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert b.tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]


def test_prior_nll_is_cross_entropy_and_samples_have_the_grid_shape():
    torch.manual_seed(0)
    prior = PixelCNNPrior(num_codes=5, grid_shape=(3, 3), channels=8, n_layers=1, first_kernel=3)
    codes = torch.randint(0, 5, (4, 3, 3))
    log_p = torch.log_softmax(prior(codes).logits, dim=1).gather(1, codes[:, None]).squeeze(1)
    assert torch.isclose(prior_nll(prior, codes), -log_p.mean())
    samples = prior.sample(6, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (6, 3, 3) and samples.dtype == torch.long and 0 <= samples.min() and samples.max() < 5


def test_prior_learns_a_deterministic_pattern():
    # every grid is the same checkerboard given its first code: the prior must learn it and sample it back
    seed_everything(0)
    first = torch.randint(0, 2, (512,))
    board = (torch.arange(4)[:, None] + torch.arange(4)[None, :]) % 2
    grids = (board[None] + first[:, None, None]) % 2
    prior = PixelCNNPrior(num_codes=2, grid_shape=(4, 4), channels=16, n_layers=2, first_kernel=5)
    fit(prior, prior_nll, grids, epochs=30, batch_size=64, lr=3e-3, device="cpu", progress=False)
    samples = prior.sample(50, generator=torch.Generator().manual_seed(1))
    consistent = ((board[None] + samples[:, :1, :1]) % 2 == samples).flatten(1).all(dim=1)
    assert consistent.float().mean() > 0.9


@pytest.mark.parametrize("ema", [False, True])
def test_vqvae_trains_with_fit_and_records_the_terms(ema):
    seed_everything(0)
    x = torch.rand(256, 1, 28, 28).round()
    model = VQVAE(num_codes=8, code_dim=4, channels=(8, 8), ema=ema)
    history = fit(model, vqvae_loss_fn(), x[:192], x[192:], epochs=3, batch_size=64, device="cpu", progress=False)
    assert set(history.train_terms) == {"reconstruction", "codebook", "commitment"}
    assert history.train_terms["reconstruction"][-1] < history.train_terms["reconstruction"][0]
    codes = encode_codes(model, x)
    assert codes.shape == (256, 7, 7) and model.bits_per_image == 49 * 3
    assert model.decode_codes(codes[:2]).shape == (2, 1, 28, 28)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_codes"):
        VectorQuantizer(0, 2)
    with pytest.raises(ValueError, match="decay"):
        VectorQuantizer(4, 2, ema=True, decay=1.0)
    with pytest.raises(ValueError, match="z_e"):
        VectorQuantizer(4, 2)(torch.randn(3, 5, 2, 2))
    with pytest.raises(ValueError, match="x must be"):
        VQVAE()(torch.rand(2, 100))
    with pytest.raises(ValueError, match="codes"):
        PixelCNNPrior(4)(torch.rand(2, 7, 7))


def test_uniform_quantize_has_2_to_the_bits_levels_and_half_a_step_error():
    z = torch.linspace(-1.5, 2.5, 10001)
    q = uniform_quantize(z, 3, -1.0, 2.0)
    assert len(torch.unique(q)) == 8 and q.min() == -1.0 and q.max() == 2.0
    inside = (z >= -1) & (z <= 2)
    assert (q[inside] - z[inside]).abs().max() <= 3 / 7 / 2 + 1e-6
    with pytest.raises(ValueError, match="bits"):
        uniform_quantize(z, 0, 0.0, 1.0)


def test_normalised_error_is_one_for_the_mean_and_zero_for_a_copy():
    from course_lib.metrics import normalised_reconstruction_error

    X = torch.rand(50, 1, 4, 4)
    assert normalised_reconstruction_error(X, X) == 0
    assert normalised_reconstruction_error(X, X.mean(0, keepdim=True).expand_as(X)) == pytest.approx(1)
