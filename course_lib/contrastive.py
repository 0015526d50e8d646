"""Self-supervised learning by comparing two views: SimCLR, MoCo, SimSiam, Barlow Twins, VICReg, CLIP.

Every method here is a classical neighbour-embedding method with two changes:
the embedding is a parametric encoder f (amortisation), and the neighbours of
an image x are made by augmentation, x' = t(x), instead of found by k-NN.
Two views x1 = t1(x), x2 = t2(x) go through the same network, giving
z1, z2 of shape (n, d); each loss below compares them (rows i of z1 and z2
come from the same image).

Losses, named after the book's equations (z normalised means z / ||z||):

- :func:`nt_xent` (SimCLR)  for each of the 2n views, the cross-entropy of picking its
  partner among the other 2n - 1 views, with logits sim(a, b) / tau;
- :func:`info_nce` (MoCo)   -log exp(q.k+ / tau) / (exp(q.k+ / tau) + sum_neg exp(q.k- / tau));
- :func:`simsiam_loss`       D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2, D = -cosine similarity;
- :func:`barlow_twins_loss`  sum_k (1 - C_kk)^2 + lambda sum_{k != l} C_kl^2, C the
  cross-correlation matrix of the two views' standardised embeddings;
- :func:`vicreg_loss`        lambda * invariance + mu * variance + nu * covariance (:func:`vicreg_terms`);
- :func:`clip_loss`          the InfoNCE of images given texts and of texts given images, averaged;
- :func:`alignment`, :func:`uniformity` (Wang and Isola): E ||f(x) - f(y)||^2 over positive
  pairs, and log E exp(-2 ||f(x) - f(y)||^2) over all pairs.

Models: :class:`ConvEncoder` (the backbone, its output h is the representation
we evaluate), :class:`ProjectionHead`, :class:`SiameseNetwork` (encoder +
projector [+ SimSiam predictor]) and :class:`MoCo` (a query network, its
momentum copy and the queue of keys). :class:`Augment` makes the views.
``*_loss_fn`` build the ``loss_fn(model, batch)`` that :func:`course_lib.training.fit` calls.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor


def _check_views(z1: Tensor, z2: Tensor, names=("z1", "z2"), min_rows: int = 2) -> None:
    for name, z in zip(names, (z1, z2)):
        if not isinstance(z, torch.Tensor) or z.dim() != 2:
            raise ValueError(f"{name} must be a 2-D tensor (n, d), got "
                             f"{tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}")
    if z1.shape[0] != z2.shape[0]:
        raise ValueError(f"{names[0]} and {names[1]} must have the same number of rows (one per image), "
                         f"got {z1.shape[0]} and {z2.shape[0]}")
    if z1.shape[0] < min_rows:
        raise ValueError(f"{names[0]} and {names[1]} need at least {min_rows} rows, got {z1.shape[0]}")


def _check_temperature(temperature) -> float:
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    return float(temperature)


# ------------------------------------------------------------------ losses

def similarity_logits(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """sim(z1_i, z2_j) / tau for all pairs: cosine similarities of the rows, divided by tau, (n1, n2)."""
    return F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T / _check_temperature(temperature)


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.5) -> Tensor:
    """SimCLR's normalised temperature-scaled cross-entropy.

    Stack the 2n views u = [z1; z2]. View a's partner is a + n (mod 2n); its
    loss is -log softmax over the other 2n - 1 views b != a of sim(u_a, u_b) / tau,
    read at the partner. The result is the mean over all 2n views:

        l(a) = -log exp(s_{a,a+}/tau) / sum_{b != a} exp(s_{a,b}/tau),   L = (1/2n) sum_a l(a).
    """
    _check_views(z1, z2)
    n = z1.shape[0]
    u = torch.cat([z1, z2])
    logits = similarity_logits(u, u, temperature)
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=u.device), float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(u.device)
    return F.cross_entropy(logits, partner)


def info_nce(query: Tensor, positive_key: Tensor, negative_keys: Tensor, temperature: float = 0.2) -> Tensor:
    """InfoNCE with explicit negatives (MoCo): query i's positive is positive_key i, the negatives are shared.

        L = -(1/n) sum_i log exp(q_i.k_i / tau) / (exp(q_i.k_i / tau) + sum_m exp(q_i.k-_m / tau)),

    with q, k, k- normalised. ``negative_keys`` has shape (M, d), e.g. MoCo's queue.
    """
    _check_views(query, positive_key, ("query", "positive_key"), min_rows=1)
    if negative_keys.dim() != 2 or negative_keys.shape[1] != query.shape[1]:
        raise ValueError(f"negative_keys must have shape (M, {query.shape[1]}), got {tuple(negative_keys.shape)}")
    tau = _check_temperature(temperature)
    q, k = F.normalize(query, dim=1), F.normalize(positive_key, dim=1)
    positive = (q * k).sum(dim=1, keepdim=True)
    negative = q @ F.normalize(negative_keys, dim=1).T
    logits = torch.cat([positive, negative], dim=1) / tau
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


def negative_cosine(p: Tensor, z: Tensor) -> Tensor:
    """D(p, z) = -(1/n) sum_i p_i.z_i / (||p_i|| ||z_i||)."""
    return -F.cosine_similarity(p, z, dim=1).mean()


def simsiam_loss(p1: Tensor, p2: Tensor, z1: Tensor, z2: Tensor, stop_gradient: bool = True) -> Tensor:
    """SimSiam: L = D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2, p = h(z) the predictor's output.

    sg is the stop-gradient (``detach``); ``stop_gradient=False`` removes it, which
    lets both branches collapse to one constant vector.
    """
    _check_views(p1, z2, ("p1", "z2"), min_rows=1)
    _check_views(p2, z1, ("p2", "z1"), min_rows=1)
    if stop_gradient:
        z1, z2 = z1.detach(), z2.detach()
    return negative_cosine(p1, z2) / 2 + negative_cosine(p2, z1) / 2


def cross_correlation(z1: Tensor, z2: Tensor) -> Tensor:
    """C_kl = (1/n) sum_i a_ik b_il, with a, b the columns of z1, z2 standardised over the batch.

    Standardised with the batch's mean and (biased, 1/n) standard deviation, as a
    BatchNorm without affine parameters does, so C is the matrix of Pearson correlations.
    """
    _check_views(z1, z2)
    a = (z1 - z1.mean(0)) / z1.std(0, correction=0).clamp_min(1e-12)
    b = (z2 - z2.mean(0)) / z2.std(0, correction=0).clamp_min(1e-12)
    return a.T @ b / z1.shape[0]


def barlow_twins_loss(z1: Tensor, z2: Tensor, lambda_offdiag: float = 5e-3) -> Tensor:
    """Barlow Twins: L_BT = sum_k (1 - C_kk)^2 + lambda sum_{k != l} C_kl^2, C = :func:`cross_correlation`.

    The first term makes each feature invariant to the augmentation (correlation 1
    between the views, as CCA asks), the second decorrelates different features.
    """
    C = cross_correlation(z1, z2)
    on_diagonal = ((1 - torch.diagonal(C)) ** 2).sum()
    off_diagonal = (C ** 2).sum() - (torch.diagonal(C) ** 2).sum()
    return on_diagonal + lambda_offdiag * off_diagonal


def vicreg_terms(z1: Tensor, z2: Tensor, eps: float = 1e-4) -> dict:
    """VICReg's three terms, as named scalars.

    - invariance  s(z1, z2) = (1/n) sum_i ||z1_i - z2_i||^2 / d   (the mean squared error);
    - variance    v(z) = (1/d) sum_k max(0, 1 - sqrt(Var(z_:,k) + eps)), averaged over the two views;
    - covariance  c(z) = (1/d) sum_{k != l} Cov(z)_kl^2, summed over the two views,

    with Var and Cov over the batch (unbiased, 1/(n - 1)), as in the paper's code.
    """
    _check_views(z1, z2)
    d = z1.shape[1]
    invariance = F.mse_loss(z1, z2)
    variance = sum(F.relu(1 - torch.sqrt(z.var(dim=0) + eps)).mean() for z in (z1, z2)) / 2
    covariance = 0.0
    for z in (z1, z2):
        centred = z - z.mean(0)
        cov = centred.T @ centred / (z.shape[0] - 1)
        covariance = covariance + ((cov ** 2).sum() - (torch.diagonal(cov) ** 2).sum()) / d
    return {"invariance": invariance, "variance": variance, "covariance": covariance}


def vicreg_loss(z1: Tensor, z2: Tensor, lambda_: float = 25.0, mu: float = 25.0, nu: float = 1.0,
                eps: float = 1e-4) -> Tensor:
    """L_VIC = lambda * invariance + mu * variance + nu * covariance (see :func:`vicreg_terms`)."""
    terms = vicreg_terms(z1, z2, eps)
    return lambda_ * terms["invariance"] + mu * terms["variance"] + nu * terms["covariance"]


def clip_loss(image_embedding: Tensor, text_embedding: Tensor, temperature: float = 0.1) -> Tensor:
    """CLIP: with logits s_ij = sim(image_i, text_j) / tau, the mean of the cross-entropy of each image
    picking its text (rows) and of each text picking its image (columns)."""
    _check_views(image_embedding, text_embedding, ("image_embedding", "text_embedding"))
    logits = similarity_logits(image_embedding, text_embedding, temperature)
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def alignment(z1: Tensor, z2: Tensor) -> Tensor:
    """align = E ||f(x) - f(y)||^2 over positive pairs, rows of z1, z2 normalised first."""
    _check_views(z1, z2, min_rows=1)
    return (F.normalize(z1, dim=1) - F.normalize(z2, dim=1)).pow(2).sum(dim=1).mean()


def uniformity(z: Tensor, t: float = 2.0) -> Tensor:
    """uniform = log E exp(-t ||f(x) - f(y)||^2) over all pairs x != y, rows of z normalised first."""
    _check_views(z, z, ("z", "z"))
    return torch.pdist(F.normalize(z, dim=1)).pow(2).mul(-t).exp().mean().log()


# ------------------------------------------------------------------ augmentation

class Augment(nn.Module):
    """Random views of a batch of images (n, c, h, w), each image with its own random parameters.

    A random resized crop (area share in ``scale``, aspect ratio in ``ratio``), a
    horizontal flip with probability 1/2, a brightness and contrast jitter and
    Gaussian pixel noise, all as tensor operations on the batch's device. The crop
    and the flip are one affine warp per image (``affine_grid`` + ``grid_sample``,
    bilinear), the same resampling as ``torchvision.transforms.v2.functional.resized_crop``
    followed by ``horizontal_flip``; a ``v2`` transform applied to a batch tensor
    would instead draw one set of parameters for the whole batch.
    """

    def __init__(self, scale=(0.4, 1.0), ratio=(3 / 4, 4 / 3), flip: bool = True, brightness: float = 0.4,
                 contrast: float = 0.4, noise: float = 0.05):
        super().__init__()
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high <= 1, got {scale}")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must be (low, high) with 0 < low <= high, got {ratio}")
        self.scale, self.ratio, self.flip = tuple(scale), tuple(ratio), flip
        self.brightness, self.contrast, self.noise = brightness, contrast, noise

    def crop_boxes(self, n: int, device=None, generator=None) -> Tensor:
        """Random crop boxes (n, 4) as (centre_x, centre_y, width, height), in units of the image side."""
        u = torch.rand(n, 3, generator=generator).to(device)
        area = self.scale[0] + (self.scale[1] - self.scale[0]) * u[:, 0]
        log_r = math.log(self.ratio[0]) + (math.log(self.ratio[1]) - math.log(self.ratio[0])) * u[:, 1]
        w = torch.sqrt(area * log_r.exp()).clamp(max=1.0)
        h = torch.sqrt(area / log_r.exp()).clamp(max=1.0)
        cx = w / 2 + (1 - w) * u[:, 2]
        cy = h / 2 + (1 - h) * torch.rand(n, generator=generator).to(device)
        return torch.stack([cx, cy, w, h], dim=1)

    @staticmethod
    def warp(x: Tensor, boxes: Tensor, flipped: Tensor) -> Tensor:
        """Crop each image to its box, resize to the full size (bilinear), mirror it where ``flipped``."""
        cx, cy, w, h = boxes.unbind(1)
        sign = 1.0 - 2.0 * flipped.to(x.dtype)
        theta = torch.zeros(len(x), 2, 3, dtype=x.dtype, device=x.device)
        # affine_grid works in [-1, 1] coordinates: output pixel u maps to input cx' + w * u
        theta[:, 0, 0], theta[:, 0, 2] = w * sign, 2 * cx - 1
        theta[:, 1, 1], theta[:, 1, 2] = h, 2 * cy - 1
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def forward(self, x: Tensor, generator=None) -> Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError(f"x must be a batch of images (n, c, h, w), got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        n = len(x)
        boxes = self.crop_boxes(n, x.device, generator)
        flipped = (torch.rand(n, generator=generator) < 0.5).to(x.device) & self.flip
        views = self.warp(x, boxes, flipped)
        shape = (n, 1, 1, 1)
        jitter = torch.rand(2, *shape, generator=generator).to(x.device) * 2 - 1
        mean = views.mean(dim=(1, 2, 3), keepdim=True)
        views = (views - mean) * (1 + self.contrast * jitter[1]) + mean   # contrast around each image's mean
        views = views * (1 + self.brightness * jitter[0])                # brightness
        views = views + self.noise * torch.randn(views.shape, generator=generator).to(x.device)
        return views.clamp(0, 1)


# ------------------------------------------------------------------ models

class ConvEncoder(nn.Module):
    """The backbone f: a 1 x 28 x 28 image -> a representation h of ``feature_dim`` numbers.

    Two stride-2 3x3 convolutions (28 -> 14 -> 7), a third 3x3 convolution and a
    linear layer, with batch normalisation and ReLUs. The same architecture serves
    every method and the supervised baseline (:class:`SupervisedNetwork`). Small
    channel counts by default, so that a few epochs of every method fit a 2-core CPU.
    """

    def __init__(self, feature_dim: int = 128, channels=(16, 32, 32)):
        super().__init__()
        c1, c2, c3 = channels
        self.feature_dim = feature_dim
        self.net = nn.Sequential(
            nn.Conv2d(1, c1, 3, stride=2, padding=1), nn.BatchNorm2d(c1), nn.ReLU(),   # 28 -> 14
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.BatchNorm2d(c2), nn.ReLU(),  # 14 -> 7
            nn.Conv2d(c2, c3, 3, padding=1), nn.BatchNorm2d(c3), nn.ReLU(),
            nn.Flatten(), nn.Linear(c3 * 7 * 7, feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU(),
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"x must be images of shape (n, 1, 28, 28), got {tuple(x.shape)}")
        return self.net(x)


class ProjectionHead(nn.Module):
    """g: h -> z, a two-layer MLP (Linear, BatchNorm, ReLU, Linear). The losses act on z."""

    def __init__(self, in_dim: int = 128, hidden_dim: int = 256, out_dim: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(),
                                 nn.Linear(hidden_dim, out_dim))

    def forward(self, h: Tensor) -> Tensor:
        return self.net(h)


class SiameseNetwork(nn.Module):
    """z = g(f(x)): an encoder f and a projection head g, shared by both views.

    ``forward(x)`` returns the projection z. ``features(x)`` returns h = f(x), the
    representation that is evaluated. SimSiam adds a ``predictor`` h(z), a small
    MLP, reached through ``predict(z)``.
    """

    def __init__(self, encoder: nn.Module | None = None, projector: nn.Module | None = None,
                 predictor: nn.Module | None = None):
        super().__init__()
        self.encoder = encoder if encoder is not None else ConvEncoder()
        self.projector = projector if projector is not None else ProjectionHead(self.encoder.feature_dim)
        self.predictor = predictor

    def features(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.projector(self.encoder(x))

    def predict(self, z: Tensor) -> Tensor:
        if self.predictor is None:
            raise ValueError("this network has no predictor: pass predictor=ProjectionHead(...) for SimSiam")
        return self.predictor(z)


@torch.no_grad()
def momentum_update(online: nn.Module, target: nn.Module, momentum: float) -> None:
    """theta_target <- m * theta_target + (1 - m) * theta_online, parameter by parameter.

    Buffers (BatchNorm's running statistics) are copied, as in MoCo's code.
    """
    if not 0 <= momentum <= 1:
        raise ValueError(f"momentum must lie in [0, 1], got {momentum!r}")
    for p_online, p_target in zip(online.parameters(), target.parameters()):
        p_target.mul_(momentum).add_(p_online.detach(), alpha=1 - momentum)
    for b_online, b_target in zip(online.buffers(), target.buffers()):
        b_target.copy_(b_online)


class KeyQueue(nn.Module):
    """MoCo's first-in, first-out queue of the K most recent keys (K, d), kept as a buffer.

    ``enqueue(keys)`` overwrites the oldest entries; the queue starts with random
    unit vectors. The negatives of a batch are the queue's content *before* the
    batch's own keys are added.
    """

    def __init__(self, size: int, dim: int, seed: int = 0):
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"size and dim must be positive, got {size} and {dim}")
        start = torch.randn(size, dim, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("keys", F.normalize(start, dim=1))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, new_keys: Tensor) -> None:
        if new_keys.dim() != 2 or new_keys.shape[1] != self.keys.shape[1]:
            raise ValueError(f"new_keys must have shape (n, {self.keys.shape[1]}), got {tuple(new_keys.shape)}")
        size = len(self.keys)
        new_keys = new_keys[-size:]
        rows = (self.pointer + torch.arange(len(new_keys), device=self.keys.device)) % size
        self.keys[rows] = F.normalize(new_keys.detach(), dim=1).to(self.keys.dtype)
        self.pointer.copy_((self.pointer + len(new_keys)) % size)


class MoCo(nn.Module):
    """Momentum contrast: a query network (trained), a key network (its moving average) and a queue.

    ``forward(x)`` is the query network's projection; ``features(x)`` its encoder's
    representation. The key network gets no gradients: after each step it moves
    towards the query network by :func:`momentum_update`, so keys computed a few
    steps apart stay comparable, and the queue holds ``queue_size`` of them as negatives
    while only the current batch is held in memory with its activations.
    """

    def __init__(self, network: SiameseNetwork | None = None, queue_size: int = 4096, momentum: float = 0.99):
        super().__init__()
        self.query = network if network is not None else SiameseNetwork()
        self.key = copy.deepcopy(self.query)
        self.key.requires_grad_(False)
        out_dim = self.query.projector.net[-1].out_features
        self.queue = KeyQueue(queue_size, out_dim)
        self.momentum = momentum

    def features(self, x: Tensor) -> Tensor:
        return self.query.features(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.query(x)


# ------------------------------------------------------------------ CLIP: images and words

# What each Fashion-MNIST class looks like, in words: the text side of the paired data set.
# A caption is a random subset of its class's words in random order; related classes share words
# ("shoe", "feet", "sleeves"), so the text encoder has to learn what the words have in common.
FASHION_DESCRIPTIONS = [
    "top upper body short sleeves light cotton",         # T-shirt/top
    "trousers legs lower body long pair",                # Trouser
    "pullover upper body long sleeves warm knitted",     # Pullover
    "dress full body one piece skirt",                   # Dress
    "coat upper body long sleeves warm buttons outer",   # Coat
    "sandal shoe feet open straps summer",               # Sandal
    "shirt upper body collar buttons sleeves",           # Shirt
    "sneaker shoe feet closed low sport laces",          # Sneaker
    "bag carried handle hand strap",                     # Bag
    "boot shoe feet closed high ankle heel",             # Ankle boot
]


def caption_vocabulary(descriptions=FASHION_DESCRIPTIONS) -> dict:
    """word -> index (from 1; 0 pads a caption)."""
    words = sorted({w for d in descriptions for w in d.split()})
    return {w: i + 1 for i, w in enumerate(words)}


def random_captions(labels, descriptions=FASHION_DESCRIPTIONS, min_words: int = 2, seed: int = 0) -> Tensor:
    """One caption per label, as word indices (n, L) padded with 0: a random subset of at least
    ``min_words`` of the label's description words, so that no two pairs need share a caption."""
    vocabulary = caption_vocabulary(descriptions)
    word_lists = [d.split() for d in descriptions]
    length = max(len(w) for w in word_lists)
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.zeros(len(labels), length, dtype=torch.long)
    for row, label in enumerate(torch.as_tensor(labels).tolist()):
        words = word_lists[label]
        k = int(torch.randint(min_words, len(words) + 1, (1,), generator=generator))
        chosen = torch.randperm(len(words), generator=generator)[:k]
        tokens[row, :k] = torch.tensor([vocabulary[words[i]] for i in chosen])
    return tokens


def caption_tokens(texts, descriptions=FASHION_DESCRIPTIONS) -> Tensor:
    """Word indices (n, L) of captions given as strings (zero-shot prompts); unknown words raise."""
    vocabulary = caption_vocabulary(descriptions)
    lists = [t.split() for t in texts]
    unknown = sorted({w for words in lists for w in words if w not in vocabulary})
    if unknown:
        raise ValueError(f"texts use words outside the caption vocabulary: {unknown}")
    tokens = torch.zeros(len(lists), max(len(w) for w in lists), dtype=torch.long)
    for row, words in enumerate(lists):
        tokens[row, :len(words)] = torch.tensor([vocabulary[w] for w in words])
    return tokens


class BagOfWordsEncoder(nn.Module):
    """A text encoder: the mean of the caption's word embeddings, then a two-layer MLP."""

    def __init__(self, vocabulary_size: int, embedding_dim: int = 64, out_dim: int = 64):
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocabulary_size + 1, embedding_dim, mode="mean", padding_idx=0)
        self.mlp = nn.Sequential(nn.Linear(embedding_dim, 128), nn.ReLU(), nn.Linear(128, out_dim))

    def forward(self, tokens: Tensor) -> Tensor:
        return self.mlp(self.embedding(tokens))


class DualEncoder(nn.Module):
    """CLIP's two encoders: images -> ``encode_image``, captions -> ``encode_text``, into one space.

    ``forward(images, tokens)`` returns the (n_images, n_texts) similarity logits
    sim(image_i, text_j) / tau; zero-shot classification takes each image's argmax
    over the class prompts.
    """

    def __init__(self, image_encoder: nn.Module, text_encoder: nn.Module, temperature: float = 0.1):
        super().__init__()
        self.image_encoder, self.text_encoder = image_encoder, text_encoder
        self.temperature = _check_temperature(temperature)

    def features(self, images: Tensor) -> Tensor:
        return self.image_encoder.features(images)

    def encode_image(self, images: Tensor) -> Tensor:
        return self.image_encoder(images)

    def encode_text(self, tokens: Tensor) -> Tensor:
        return self.text_encoder(tokens)

    def forward(self, images: Tensor, tokens: Tensor) -> Tensor:
        return similarity_logits(self.encode_image(images), self.encode_text(tokens), self.temperature)


def clip_loss_fn(augment: nn.Module | None = None):
    """loss_fn(model, (images, tokens)) for :func:`fit`: :func:`clip_loss` of a :class:`DualEncoder`."""
    def loss_fn(model, batch):
        images, tokens = batch
        if augment is not None and model.training:
            images = augment(images)
        a, b = model.encode_image(images), model.encode_text(tokens)
        return _with_geometry(clip_loss(a, b, model.temperature), a, b)
    return loss_fn


# ------------------------------------------------------------------ loss functions for fit

def two_views(batch, augment: nn.Module) -> tuple[Tensor, Tensor]:
    """Two independent random views of the images in ``batch`` (a tensor, or (images, labels))."""
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    return augment(x), augment(x)


def _with_geometry(loss: Tensor, z1: Tensor, z2: Tensor, extra: dict | None = None):
    # alignment and uniformity of the projections, recorded as terms of every method's loss
    with torch.no_grad():
        terms = {"alignment": alignment(z1, z2), "uniformity": uniformity(torch.cat([z1, z2]))}
    terms.update(extra or {})
    return loss, terms


def simclr_loss_fn(augment: nn.Module, temperature: float = 0.5):
    """loss_fn(model, batch) for :func:`fit`: NT-Xent between the projections of two views."""
    def loss_fn(model, batch):
        z1, z2 = (model(v) for v in two_views(batch, augment))
        return _with_geometry(nt_xent(z1, z2, temperature), z1, z2)
    return loss_fn


def moco_loss_fn(augment: nn.Module, temperature: float = 0.2):
    """loss_fn(model, batch) for a :class:`MoCo` model: InfoNCE of queries against the queue.

    In training mode it first moves the key network (momentum update), computes the
    keys without gradients, and after the loss enqueues them. Symmetrised over the two views.
    """
    def loss_fn(model, batch):
        x1, x2 = two_views(batch, augment)
        if model.training:
            momentum_update(model.query, model.key, model.momentum)
        with torch.no_grad():
            k1, k2 = model.key(x1), model.key(x2)
        q1, q2 = model(x1), model(x2)
        negatives = model.queue.keys.clone()
        loss = (info_nce(q1, k2, negatives, temperature) + info_nce(q2, k1, negatives, temperature)) / 2
        if model.training:
            model.queue.enqueue(torch.cat([k1, k2]))
        return _with_geometry(loss, q1, q2)
    return loss_fn


def simsiam_loss_fn(augment: nn.Module, stop_gradient: bool = True):
    """loss_fn(model, batch) for :func:`fit`: SimSiam's symmetric loss; also records the collapse measure."""
    def loss_fn(model, batch):
        z1, z2 = (model(v) for v in two_views(batch, augment))
        p1, p2 = model.predict(z1), model.predict(z2)
        loss = simsiam_loss(p1, p2, z1, z2, stop_gradient)
        return _with_geometry(loss, z1, z2, {"std_normalised": normalised_std(z1).detach()})
    return loss_fn


def barlow_twins_loss_fn(augment: nn.Module, lambda_offdiag: float = 5e-3):
    """loss_fn(model, batch) for :func:`fit`: the Barlow Twins loss of two views' projections."""
    def loss_fn(model, batch):
        z1, z2 = (model(v) for v in two_views(batch, augment))
        return _with_geometry(barlow_twins_loss(z1, z2, lambda_offdiag), z1, z2)
    return loss_fn


def vicreg_loss_fn(augment: nn.Module, lambda_: float = 25.0, mu: float = 25.0, nu: float = 1.0):
    """loss_fn(model, batch) for :func:`fit`: VICReg, recording its three terms (unweighted)."""
    def loss_fn(model, batch):
        z1, z2 = (model(v) for v in two_views(batch, augment))
        terms = vicreg_terms(z1, z2)
        loss = lambda_ * terms["invariance"] + mu * terms["variance"] + nu * terms["covariance"]
        return _with_geometry(loss, z1, z2, {k: v.detach() for k, v in terms.items()})
    return loss_fn


def normalised_std(z: Tensor) -> Tensor:
    """The mean over dimensions of the batch standard deviation of z / ||z||: 0 at collapse, ~1/sqrt(d) when spread."""
    return F.normalize(z, dim=1).std(dim=0).mean()


@torch.no_grad()
def encode_features(model: nn.Module, images: Tensor, batch_size: int = 1024, device=None) -> Tensor:
    """The frozen representation h of ``images``, on the CPU: ``model.features(x)``, or ``model.encode(x)``
    (an autoencoder's code; the first element when it returns a tuple, a VAE's mean), or ``model(x)``."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    encode = getattr(model, "features", None) or getattr(model, "encode", None) or model
    parts = []
    for start in range(0, len(images), batch_size):
        out = encode(images[start:start + batch_size].to(device))
        parts.append((out[0] if isinstance(out, tuple) else out).float().cpu())
    model.train(was_training)
    return torch.cat(parts)


class SupervisedNetwork(nn.Module):
    """The baseline: the same encoder f followed by a linear classifier; ``forward`` returns class logits."""

    def __init__(self, encoder: nn.Module | None = None, n_classes: int = 10):
        super().__init__()
        self.encoder = encoder if encoder is not None else ConvEncoder()
        self.classifier = nn.Linear(self.encoder.feature_dim, n_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.encoder(x))


def supervised_loss_fn(augment: nn.Module | None = None):
    """loss_fn(model, (images, labels)) for :func:`fit`: cross-entropy, on augmented images when given."""
    def loss_fn(model, batch):
        x, y = batch
        if augment is not None and model.training:
            x = augment(x)
        return F.cross_entropy(model(x), y)
    return loss_fn


def evaluate_representation(model: nn.Module, X_train: Tensor, y_train, X_test: Tensor, y_test,
                            n_neighbors: int = 10, max_iter: int = 100) -> dict:
    """Linear-probe and k-NN test accuracy of the frozen features of ``model`` (see :func:`encode_features`)."""
    from .metrics import knn_accuracy, linear_probe

    F_train, F_test = encode_features(model, X_train), encode_features(model, X_test)
    return {"linear probe": linear_probe(F_train, y_train, F_test, y_test, max_iter=max_iter),
            "k-NN": knn_accuracy(F_train, y_train, n_neighbors, F_test, y_test)}
