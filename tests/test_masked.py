"""course_lib.masked: patches, masking rules, the MAE loss and the encoder that skips masked patches."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from course_lib.masked import (IGNORE, MaskedAutoencoder, MaskedLanguageModel, ViTEncoder, bert_mask,
                               mae_loss_fn, masked_reconstruction_loss, masked_token_loss, patchify,
                               random_masking, unpatchify)
from course_lib.training import fit

# Every statistical test below has a false-alarm rate of ALPHA (a correct implementation fails it with
# this probability); the seeds are fixed, so a run is reproducible, and the rate says how much a pass means.
ALPHA = 1e-6


@pytest.mark.parametrize("shape, p", [((5, 1, 28, 28), 4), ((2, 3, 12, 12), 3), ((1, 1, 28, 28), 7)])
def test_unpatchify_inverts_patchify(shape, p):
    x = torch.randn(shape)
    patches = patchify(x, p)
    assert patches.shape == (shape[0], (shape[2] // p) ** 2, p * p * shape[1])
    assert torch.equal(unpatchify(patches, p, shape[1]), x)


def test_patch_holds_its_pixels():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    # patch 1 is the top-right 2x2 block, read row by row
    assert patchify(x, 2)[0, 1].tolist() == [2.0, 3.0, 6.0, 7.0]


def test_patchify_rejects_bad_sizes():
    with pytest.raises(ValueError, match="patch_size"):
        patchify(torch.zeros(1, 1, 28, 28), 5)
    with pytest.raises(ValueError, match="images"):
        patchify(torch.zeros(28, 28), 4)


@pytest.mark.parametrize("length, ratio", [(49, 0.75), (49, 0.85), (49, 0.95), (16, 0.5), (10, 0.0)])
def test_random_masking_keeps_the_rounded_count_and_restores_the_order(length, ratio):
    x = torch.randn(64, length, 5)
    kept, mask, ids_restore = random_masking(x, ratio, torch.Generator().manual_seed(0))
    keep = round((1 - ratio) * length)
    assert kept.shape == (64, keep, 5)
    assert torch.all(mask.sum(1) == length - keep)
    # appending anything for the hidden tokens and gathering with ids_restore puts the kept ones back in place
    full = torch.cat([kept, torch.full((64, length - keep, 5), math.nan)], dim=1)
    restored = full.gather(1, ids_restore[:, :, None].expand(-1, -1, 5))
    visible = mask == 0
    assert torch.equal(restored[visible], x[visible])
    assert torch.isnan(restored[~visible]).all()
    assert torch.equal(ids_restore.sort(1).values, torch.arange(length).expand(64, -1))


def test_random_masking_masks_each_position_with_probability_r():
    n, length, ratio = 20000, 16, 0.75
    _, mask, _ = random_masking(torch.zeros(n, length, 1), ratio, torch.Generator().manual_seed(1))
    # Each position is masked in Binomial(n, r) samples; a two-sided test per position, Bonferroni over L.
    counts = mask.sum(0).numpy()
    sd = math.sqrt(n * ratio * (1 - ratio))
    z = stats.norm.isf(ALPHA / (2 * length))
    assert np.all(np.abs(counts - n * ratio) < z * sd), counts / n
    # and samples differ: the chance that 20000 independent masks of 16 choose 4 coincide is nil
    assert len({tuple(row) for row in mask[:100].int().tolist()}) > 90


def test_random_masking_rejects_bad_ratios():
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="mask_ratio"):
            random_masking(torch.zeros(2, 4, 1), bad)


def _chi_square_p(observed, probabilities):
    observed = np.asarray(observed, dtype=float)
    return stats.chisquare(observed, observed.sum() * np.asarray(probabilities)).pvalue


def test_bert_mask_proportions():
    vocab, mask_id, n = 1000, 1000, (400, 512)
    tokens = torch.randint(vocab, n, generator=torch.Generator().manual_seed(0))
    inputs, labels = bert_mask(tokens, vocab, mask_id, 0.15, torch.Generator().manual_seed(1))
    chosen = labels != IGNORE
    assert torch.equal(labels[chosen], tokens[chosen]) and torch.equal(inputs[~chosen], tokens[~chosen])
    # chosen ~ Binomial(N, 0.15)
    assert stats.binomtest(int(chosen.sum()), chosen.numel(), 0.15).pvalue > ALPHA
    is_mask = inputs[chosen] == mask_id
    same = inputs[chosen] == tokens[chosen]
    other = ~is_mask & ~same
    # among chosen: mask 0.8, unchanged 0.1 + 0.1/vocab (a random token can be the original), other word the rest
    p_same = 0.1 + 0.1 / vocab
    observed = [int(is_mask.sum()), int(same.sum()), int(other.sum())]
    assert _chi_square_p(observed, [0.8, p_same, 1 - 0.8 - p_same]) > ALPHA, observed
    # random tokens are uniform over the vocabulary (chi-square over 10 bins of 100 ids)
    bins = np.bincount(inputs[chosen][other].numpy() // 100, minlength=10)
    assert _chi_square_p(bins, np.full(10, 0.1)) > ALPHA, bins


def test_bert_mask_is_reproducible_and_checks_input():
    tokens = torch.randint(50, (4, 8))
    a = bert_mask(tokens, 50, 50, generator=torch.Generator().manual_seed(3))
    b = bert_mask(tokens, 50, 50, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    with pytest.raises(TypeError, match="tokens"):
        bert_mask(tokens.float(), 50, 50)
    with pytest.raises(ValueError, match="mask_prob"):
        bert_mask(tokens, 50, 50, mask_prob=1.5)


def test_bert_mask_agrees_with_hugging_face_collator():
    """The same proportions as transformers' DataCollatorForLanguageModeling, by a two-sample test."""
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    words = [f"w{i}" for i in range(200)]
    vocab = {w: i for i, w in enumerate(words)} | {"[MASK]": 200, "[PAD]": 201, "[UNK]": 202}
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, mask_token="[MASK]",
                                                     pad_token="[PAD]", unk_token="[UNK]")
    collator = transformers.DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=0.15,
                                                            return_tensors="pt")
    torch.manual_seed(0)
    tokens = torch.randint(200, (300, 256))
    batch = collator([{"input_ids": row} for row in tokens])
    ours_inputs, ours_labels = bert_mask(tokens, 200, 200, 0.15, torch.Generator().manual_seed(0))

    def outcome_counts(inputs, labels):
        chosen = labels != IGNORE
        kinds = [inputs[chosen] == 200, inputs[chosen] == tokens[chosen]]
        kinds.append(~kinds[0] & ~kinds[1])
        return [int((~chosen).sum())] + [int(k.sum()) for k in kinds]

    theirs = outcome_counts(batch["input_ids"], batch["labels"])
    ours = outcome_counts(ours_inputs, ours_labels)
    # Homogeneity of the two outcome distributions (not chosen / mask / unchanged / random).
    assert stats.chi2_contingency([theirs, ours]).pvalue > ALPHA, (theirs, ours)
    assert torch.equal(batch["labels"] != IGNORE, (batch["labels"] == tokens) & (batch["labels"] != IGNORE))


def test_masked_reconstruction_loss_counts_masked_patches_only():
    pred = torch.zeros(1, 4, 2)
    target = torch.tensor([[[1.0, 1.0], [2.0, 0.0], [3.0, 3.0], [100.0, 100.0]]])
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    # masked patches 0 and 1: per-patch MSEs (1 + 1) / 2 = 1 and (4 + 0) / 2 = 2, mean 1.5; patches 2, 3 ignored
    assert masked_reconstruction_loss(pred, target, mask).item() == pytest.approx(1.5)
    # normalised targets: each patch becomes (t - mean) / sqrt(var + eps); patch 0 is constant -> 0,
    # patch 1 = (2, 0) -> (1, -1)/sqrt(1 + eps): MSE 1 / (1 + eps); mean over the two: 0.5 / (1 + eps)
    eps = 1e-6
    assert masked_reconstruction_loss(pred, target, mask, norm_pix=True).item() == pytest.approx(0.5 / (1 + eps))


def test_masked_token_loss_ignores_unchosen_positions():
    logits = torch.zeros(1, 3, 4)
    logits[0, 0, 2] = 10.0
    labels = torch.tensor([[2, IGNORE, IGNORE]])
    expected = -torch.log_softmax(logits[0, 0], 0)[2]
    assert masked_token_loss(logits, labels).item() == pytest.approx(expected.item())


def test_encoder_output_for_visible_patches_does_not_depend_on_masked_ones():
    torch.manual_seed(0)
    encoder = ViTEncoder(image_size=28, patch_size=7, dim=32, depth=2, heads=4).eval()
    x = torch.rand(3, 1, 28, 28)
    out = encoder(x, 0.75, torch.Generator().manual_seed(5))
    # scramble every hidden patch
    hidden = out.mask.bool()
    patches = patchify(x, 7)
    patches[hidden] = torch.randn(int(hidden.sum()), 49) * 10
    out2 = encoder(unpatchify(patches, 7), 0.75, torch.Generator().manual_seed(5))
    assert torch.equal(out.mask, out2.mask)
    torch.testing.assert_close(out.latent, out2.latent, rtol=0, atol=1e-6)
    # while a visible patch does change the codes
    patches[~hidden] += 1.0
    out3 = encoder(unpatchify(patches, 7), 0.75, torch.Generator().manual_seed(5))
    assert not torch.allclose(out.latent, out3.latent)


@pytest.mark.parametrize("skip_masked", [True, False])
def test_mae_trains_through_fit(skip_masked):
    torch.manual_seed(0)
    x = torch.rand(64, 1, 28, 28)
    model = MaskedAutoencoder(ViTEncoder(patch_size=7, dim=32, depth=1), 16, 1, mask_ratio=0.75,
                              skip_masked=skip_masked)
    history = fit(model, mae_loss_fn(), x, epochs=15, batch_size=32, lr=3e-3, device="cpu", progress=False)
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    pred, mask = model(x[:2])
    assert pred.shape == (2, 16, 49) and torch.all(mask.sum(1) == 12)


def test_masked_language_model_shapes_and_errors():
    model = MaskedLanguageModel(30, max_len=8, dim=16, depth=1)
    assert model(torch.randint(31, (2, 8))).shape == (2, 8, 30)
    assert model.mask_id == 30 and model.word_vectors().shape == (30, 16)
    with pytest.raises(ValueError, match="tokens"):
        model(torch.randint(30, (2, 9)))
