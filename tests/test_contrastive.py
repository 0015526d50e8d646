"""Tests of course_lib.contrastive: every loss against a second formulation (explicit loops over
matrix entries, cross-entropy over logits) and against lightly's implementations; the momentum
update and the queue against hand computations; alignment and uniformity against their
definitions; the augmentation against torchvision's resized crop; and short training runs."""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib import contrastive as C
from course_lib.training import fit
from course_lib.utils import seed_everything

lightly_loss = pytest.importorskip("lightly.loss")


def views(n=12, d=6, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(n, d, generator=g, dtype=torch.float64),
            scale * torch.randn(n, d, generator=g, dtype=torch.float64))


# ------------------------------------------------------------------ NT-Xent and InfoNCE

def nt_xent_by_loops(z1, z2, tau):
    """The definition, one view a at a time: -log exp(s(a, a+)/tau) / sum_{b != a} exp(s(a, b)/tau)."""
    u = torch.cat([z1, z2])
    n2 = len(u)
    total = 0.0
    for a in range(n2):
        partner = (a + n2 // 2) % n2
        sims = [F.cosine_similarity(u[a], u[b], dim=0) / tau for b in range(n2)]
        denominator = sum(math.exp(sims[b]) for b in range(n2) if b != a)
        total += -math.log(math.exp(sims[partner]) / denominator)
    return total / n2


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_nt_xent_against_loops_and_lightly(tau):
    z1, z2 = views()
    value = C.nt_xent(z1, z2, tau)
    assert value.item() == pytest.approx(nt_xent_by_loops(z1, z2, tau), rel=1e-10)
    # lightly's NTXentLoss (no memory bank) is SimCLR's loss; it runs in float32 on its own
    expected = lightly_loss.NTXentLoss(temperature=tau)(z1.float(), z2.float())
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)


def test_info_nce_is_cross_entropy_with_one_hot_target():
    """InfoNCE = SNE's KL with a one-hot target: the cross-entropy of the softmax over similarity logits."""
    q, k = views(8, 5, seed=1)
    negatives = torch.randn(20, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    tau = 0.3
    loss = C.info_nce(q, k, negatives, tau)
    manual = 0.0
    for i in range(len(q)):
        logits = torch.cat([F.cosine_similarity(q[i], k[i], dim=0)[None],
                            F.cosine_similarity(q[i][None], negatives)]) / tau
        p = torch.softmax(logits, 0)
        target = torch.zeros_like(p); target[0] = 1
        manual += (target * (target.clamp_min(1e-300).log() - p.log())).sum()   # KL(target || p)
    assert loss.item() == pytest.approx(manual.item() / len(q), rel=1e-10)
    # with the other batch items' keys as the negatives and no queue, InfoNCE is the classifier view of CLIP's rows
    logits = C.similarity_logits(q, k, tau)
    assert F.cross_entropy(logits, torch.arange(8)).item() == pytest.approx(
        sum(-torch.log_softmax(logits[i], 0)[i].item() for i in range(8)) / 8, rel=1e-12)


def test_nt_xent_input_checks():
    z1, z2 = views()
    with pytest.raises(ValueError, match="temperature"):
        C.nt_xent(z1, z2, 0.0)
    with pytest.raises(ValueError, match="same number of rows"):
        C.nt_xent(z1, z2[:-1])
    with pytest.raises(ValueError, match="2-D"):
        C.nt_xent(z1[0], z2[0])


# ------------------------------------------------------------------ Barlow Twins, VICReg, SimSiam, CLIP

def barlow_twins_by_loops(z1, z2, lam):
    n, d = z1.shape
    a = (z1 - z1.mean(0)) / z1.std(0, correction=0)
    b = (z2 - z2.mean(0)) / z2.std(0, correction=0)
    loss = 0.0
    for k, l in itertools.product(range(d), range(d)):
        c_kl = sum(a[i, k] * b[i, l] for i in range(n)) / n
        loss += (1 - c_kl) ** 2 if k == l else lam * c_kl ** 2
    return float(loss)


def test_barlow_twins_against_loops_and_lightly():
    z1, z2 = views(10, 5)
    assert C.barlow_twins_loss(z1, z2, 0.01).item() == pytest.approx(barlow_twins_by_loops(z1, z2, 0.01), rel=1e-10)
    C_matrix = C.cross_correlation(z1, z2)
    assert C_matrix.abs().max() <= 1 + 1e-12   # Pearson correlations
    # lightly standardises with F.batch_norm, whose eps = 1e-5 is added to the variance: with
    # variances of 1e4 the eps changes the result by ~1e-9 relative, so 1e-7 is a safe tolerance
    z1, z2 = views(64, 16, seed=3, scale=100.0)
    expected = lightly_loss.BarlowTwinsLoss(lambda_param=5e-3)(z1, z2)
    assert C.barlow_twins_loss(z1, z2, 5e-3).item() == pytest.approx(expected.item(), rel=1e-7)


def vicreg_by_loops(z1, z2, lam, mu, nu, eps):
    n, d = z1.shape
    invariance = sum((z1[i, k] - z2[i, k]) ** 2 for i in range(n) for k in range(d)) / (n * d)
    variance, covariance = 0.0, 0.0
    for z in (z1, z2):
        mean = [sum(z[i, k] for i in range(n)) / n for k in range(d)]
        cov = [[sum((z[i, k] - mean[k]) * (z[i, l] - mean[l]) for i in range(n)) / (n - 1) for l in range(d)]
               for k in range(d)]
        variance += sum(max(0.0, 1 - math.sqrt(cov[k][k] + eps)) for k in range(d)) / d / 2
        covariance += sum(cov[k][l] ** 2 for k in range(d) for l in range(d) if k != l) / d
    return float(lam * invariance + mu * variance + nu * covariance)


def test_vicreg_against_loops_and_lightly():
    z1, z2 = views(9, 4, scale=0.5)   # small variance, so the hinge is active
    for weights in [(25.0, 25.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]:
        value = C.vicreg_loss(z1, z2, *weights)
        assert value.item() == pytest.approx(vicreg_by_loops(z1, z2, *weights, 1e-4), rel=1e-10, abs=1e-14)
    z1, z2 = views(32, 8, seed=4, scale=0.7)
    expected = lightly_loss.VICRegLoss()(z1, z2)
    assert C.vicreg_loss(z1, z2).item() == pytest.approx(expected.item(), rel=1e-12)


def test_simsiam_against_lightly_and_the_stop_gradient():
    p1, p2 = (v.requires_grad_() for v in views(8, 5, seed=5))
    z1, z2 = (v.requires_grad_() for v in views(8, 5, seed=6))
    expected = (lightly_loss.NegativeCosineSimilarity()(p1, z2) + lightly_loss.NegativeCosineSimilarity()(p2, z1)) / 2
    loss = C.simsiam_loss(p1, p2, z1, z2)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
    loss.backward()
    assert z1.grad is None and z2.grad is None            # the stop-gradient
    C.simsiam_loss(p1, p2, z1, z2, stop_gradient=False).backward()
    assert z1.grad is not None and z1.grad.abs().sum() > 0


def test_clip_loss_is_the_mean_of_two_cross_entropies_by_loops():
    a, b = views(7, 4, seed=7)
    tau = 0.2
    s = [[F.cosine_similarity(a[i], b[j], dim=0).item() / tau for j in range(7)] for i in range(7)]
    rows = sum(-s[i][i] + math.log(sum(math.exp(s[i][j]) for j in range(7))) for i in range(7)) / 7
    cols = sum(-s[j][j] + math.log(sum(math.exp(s[i][j]) for i in range(7))) for j in range(7)) / 7
    assert C.clip_loss(a, b, tau).item() == pytest.approx((rows + cols) / 2, rel=1e-10)


# ------------------------------------------------------------------ alignment and uniformity

def test_alignment_and_uniformity_by_definition():
    z1, z2 = views(6, 3, seed=8)
    f1, f2 = z1 / z1.norm(dim=1, keepdim=True), z2 / z2.norm(dim=1, keepdim=True)
    align = sum(((f1[i] - f2[i]) ** 2).sum() for i in range(6)) / 6
    assert C.alignment(z1, z2).item() == pytest.approx(align.item(), rel=1e-12)
    pairs = [(i, j) for i in range(6) for j in range(6) if i < j]
    uniform = math.log(sum(math.exp(-2 * ((f1[i] - f1[j]) ** 2).sum().item()) for i, j in pairs) / len(pairs))
    assert C.uniformity(z1).item() == pytest.approx(uniform, rel=1e-12)
    # extremes: identical views align perfectly; a collapsed embedding has uniformity log 1 = 0
    assert C.alignment(z1, 3 * z1).item() == pytest.approx(0, abs=1e-12)
    assert C.uniformity(torch.ones(5, 3)).item() == pytest.approx(0, abs=1e-6)


# ------------------------------------------------------------------ MoCo

def test_momentum_update_by_hand():
    online, target = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = [p.detach().clone() for p in target.parameters()]
    C.momentum_update(online, target, 0.9)
    for p_t, p_before, p_o in zip(target.parameters(), before, online.parameters()):
        assert torch.allclose(p_t, 0.9 * p_before + 0.1 * p_o)
    with pytest.raises(ValueError, match="momentum"):
        C.momentum_update(online, target, 1.5)


def test_queue_is_first_in_first_out():
    queue = C.KeyQueue(5, 2)
    keys = F.normalize(torch.randn(7, 2, generator=torch.Generator().manual_seed(0)), dim=1)
    queue.enqueue(keys[:3])
    assert torch.allclose(queue.keys[:3], keys[:3]) and int(queue.pointer) == 3
    queue.enqueue(keys[3:7])          # wraps around: rows 3, 4, then 0, 1
    expected = torch.stack([keys[5], keys[6], keys[2], keys[3], keys[4]])
    assert torch.allclose(queue.keys, expected) and int(queue.pointer) == 2


def test_moco_step_moves_key_network_and_fills_queue():
    seed_everything(0)
    model = C.MoCo(queue_size=64, momentum=0.9)
    key_before = [p.clone() for p in model.key.parameters()]
    images = torch.rand(16, 1, 28, 28)
    loss_fn = C.moco_loss_fn(C.Augment())
    model.train()
    loss, terms = loss_fn(model, images)
    loss.backward()
    assert all(p.grad is None for p in model.key.parameters())          # keys get no gradient
    assert int(model.queue.pointer) == 32                                 # two views of 16 images
    queries = [p.detach() for p in model.query.parameters()]
    for p, p0, q in zip(model.key.parameters(), key_before, queries):
        assert torch.allclose(p, 0.9 * p0 + 0.1 * q)


# ------------------------------------------------------------------ augmentation and models

def test_augment_warp_equals_torchvision_resized_crop():
    from torchvision.transforms.v2 import functional as TF

    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    # a box of 14 x 21 pixels starting at row 4, column 6, given as (centre_x, centre_y, width, height) / 28
    top, left, height, width = 4, 6, 21, 14
    boxes = torch.tensor([[(left + width / 2) / 28, (top + height / 2) / 28, width / 28, height / 28]] * 2,
                         dtype=torch.float64)
    warped = C.Augment.warp(x, boxes, torch.tensor([False, True]))
    reference = TF.resized_crop(x, top, left, height, width, [28, 28], antialias=False)
    # bilinear resampling at the same points. The outermost output pixels sample a quarter pixel
    # outside the crop, where resized_crop repeats the crop's edge and the warp reads the image's
    # next pixel; everything inside agrees to float64 rounding
    inner = (..., slice(1, -1), slice(1, -1))
    assert torch.allclose(warped[0][inner], reference[0][inner], atol=1e-12)
    assert torch.allclose(warped[1][inner], TF.horizontal_flip(reference[1])[inner], atol=1e-12)


def test_augment_draws_parameters_per_image():
    x = torch.rand(1, 1, 28, 28).repeat(8, 1, 1, 1)
    out = C.Augment()(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out[0], out[1])                 # same image, different views
    with pytest.raises(ValueError, match="n, c, h, w"):
        C.Augment()(x[0])


def test_models_shapes_and_errors():
    net = C.SiameseNetwork(predictor=C.ProjectionHead(64, 32, 64))
    x = torch.rand(4, 1, 28, 28)
    assert net(x).shape == (4, 64) and net.features(x).shape == (4, 128) and net.predict(net(x)).shape == (4, 64)
    with pytest.raises(ValueError, match="no predictor"):
        C.SiameseNetwork().predict(net(x))
    with pytest.raises(ValueError, match="28, 28"):
        net(torch.rand(4, 784))
    tokens = C.caption_tokens(["shoe feet", "bag handle"])
    clip = C.DualEncoder(C.SiameseNetwork(), C.BagOfWordsEncoder(len(C.caption_vocabulary())))
    assert clip(x[:2], tokens).shape == (2, 2)
    with pytest.raises(ValueError, match="vocabulary"):
        C.caption_tokens(["a purple hat"])


def test_random_captions_use_their_class_words():
    labels = torch.arange(10).repeat(3)
    tokens = C.random_captions(labels, seed=0)
    vocabulary = {i: w for w, i in C.caption_vocabulary().items()}
    for label, row in zip(labels.tolist(), tokens.tolist()):
        words = [vocabulary[i] for i in row if i]
        assert len(words) >= 2 and set(words) <= set(C.FASHION_DESCRIPTIONS[label].split())


@pytest.mark.parametrize("method", ["simclr", "barlow", "vicreg", "simsiam", "moco"])
def test_short_training_lowers_the_loss(method):
    seed_everything(0)
    images = torch.rand(128, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    augment = C.Augment()
    model = C.SiameseNetwork(predictor=C.ProjectionHead(64, 32, 64) if method == "simsiam" else None)
    loss_fn = {"simclr": lambda: C.simclr_loss_fn(augment), "barlow": lambda: C.barlow_twins_loss_fn(augment),
               "vicreg": lambda: C.vicreg_loss_fn(augment), "simsiam": lambda: C.simsiam_loss_fn(augment),
               "moco": lambda: C.moco_loss_fn(augment)}[method]()
    if method == "moco":
        model = C.MoCo(model, queue_size=128)
    history = fit(model, loss_fn, images, epochs=4, batch_size=64, progress=False)
    if method != "moco":   # MoCo's loss rises at first, as real keys replace the queue's random start
        assert history.step_loss[-1] < history.step_loss[0]
    assert {"alignment", "uniformity"} <= set(history.train_terms)
    assert C.encode_features(model, images[:5]).shape == (5, 128)


def test_simsiam_without_stop_gradient_collapses():
    seed_everything(0)
    images = torch.rand(256, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    model = C.SiameseNetwork(predictor=C.ProjectionHead(64, 32, 64))
    history = fit(model, C.simsiam_loss_fn(C.Augment(), stop_gradient=False), images, epochs=8, batch_size=128,
                  lr=3e-3, progress=False)
    # 1/sqrt(64) = 0.125 for an embedding spread over the sphere; collapse drives it towards 0
    assert history.train_terms["std_normalised"][0] > 0.05
    assert history.train_terms["std_normalised"][-1] < 0.2 / math.sqrt(64)


def test_clip_and_supervised_training_lower_their_loss():
    seed_everything(0)
    labels = torch.arange(10).repeat(13)
    noise = torch.rand(130, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    images = 0.3 * noise + 0.07 * labels[:, None, None, None]     # brightness tells the class
    pairs = torch.utils.data.TensorDataset(images, C.random_captions(labels, seed=1))
    clip = C.DualEncoder(C.SiameseNetwork(), C.BagOfWordsEncoder(len(C.caption_vocabulary())))
    history = fit(clip, C.clip_loss_fn(), pairs, epochs=5, batch_size=65, progress=False)
    assert history.train_loss[-1] < history.train_loss[0]
    supervised = C.SupervisedNetwork()
    history = fit(supervised, C.supervised_loss_fn(C.Augment()), torch.utils.data.TensorDataset(images, labels),
                  epochs=3, batch_size=65, progress=False)
    assert history.train_loss[-1] < history.train_loss[0]


def test_evaluate_representation_reads_features_codes_and_tuples():
    images = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    labels = torch.arange(4).repeat(10).numpy()

    class TupleEncoder(torch.nn.Module):   # like a VAE: encode(x) -> (mu, logvar)
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(784, 3)

        def encode(self, x):
            mu = self.linear(x.flatten(1))
            return mu, torch.zeros_like(mu)

    model = TupleEncoder()
    assert torch.allclose(C.encode_features(model, images), model.linear(images.flatten(1)).detach())
    scores = C.evaluate_representation(C.SiameseNetwork(), images[:20], labels[:20], images[20:], labels[20:],
                                       n_neighbors=3)
    assert set(scores) == {"linear probe", "k-NN"} and all(0 <= v <= 1 for v in scores.values())
