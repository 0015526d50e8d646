"""Masked modelling: BERT's masked tokens and the masked autoencoder (MAE).

Hide part of the input and train a network to predict what was hidden from
what was left: a free, hard prediction task. Where an autoregressive model
factorises p(x) = prod_i p(x_i | x_<i), a masked model estimates the
conditionals p(x_i | x_-i) of the hidden positions given everything visible,
on both sides.

Text (BERT, Devlin et al. 2019). Choose each token with probability 15%; of the
chosen ones, 80% become a mask token, 10% a random token and 10% stay
unchanged (:func:`bert_mask`); a transformer encoder
(:class:`MaskedLanguageModel`) predicts the original token at every chosen
position, with the cross-entropy :func:`masked_token_loss`.

Images (MAE, He et al. 2022). Cut an image into L patches of p x p pixels
(:func:`patchify`); keep a random subset of round((1 - r) L) of them per image
(:func:`random_masking`, which also returns the binary mask m, 1 = masked, and
the indices that restore the order); the ViT encoder (:class:`ViTEncoder`)
sees only the visible patches; a lighter decoder (:class:`MAEDecoder`) gets
their codes plus a shared mask token at every hidden position, with positional
embeddings, and predicts every patch. The loss averages the squared error over
the masked patches only (:func:`masked_reconstruction_loss`):

    L_MAE = sum_i m_i * mean_j (x_hat_ij - t_ij)^2 / sum_i m_i,

where t is the patch itself, or, with normalised-pixel targets, the patch
standardised by its own mean and variance.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IGNORE = -100  # label of a position that is not predicted (PyTorch's and Hugging Face's convention)


# ---------------------------------------------------------------- patches

def _check_images(images: Tensor, patch_size: int) -> None:
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise ValueError(f"images must be a tensor of shape (N, C, H, W), got "
                         f"{tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__}")
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
        raise ValueError(f"patch_size must be a positive int, got {patch_size!r}")
    if images.shape[2] % patch_size or images.shape[3] % patch_size:
        raise ValueError(f"patch_size {patch_size} must divide the image size {tuple(images.shape[2:])}")


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """Cut images (N, C, H, W) into patches (N, L, p*p*C), row by row, L = (H/p)(W/p).

    Patch l = (row a, column b) holds pixels [a p, (a+1) p) x [b p, (b+1) p),
    flattened in the order (pixel row, pixel column, channel), as in MAE.
    """
    _check_images(images, patch_size)
    n, c, h, w = images.shape
    p = patch_size
    x = images.reshape(n, c, h // p, p, w // p, p)
    x = x.permute(0, 2, 4, 3, 5, 1)  # (n, rows, cols, p, p, c)
    return x.reshape(n, (h // p) * (w // p), p * p * c)


def unpatchify(patches: Tensor, patch_size: int, channels: int = 1) -> Tensor:
    """The inverse of :func:`patchify` for square images: (N, L, p*p*C) -> (N, C, H, W)."""
    n, length, dim = patches.shape
    side = math.isqrt(length)
    if side * side != length or dim != patch_size * patch_size * channels:
        raise ValueError(f"patches must have shape (N, L, p*p*C) with L a square and p={patch_size}, "
                         f"C={channels}; got {tuple(patches.shape)}")
    x = patches.reshape(n, side, side, patch_size, patch_size, channels)
    x = x.permute(0, 5, 1, 3, 2, 4)  # (n, c, rows, p, cols, p)
    return x.reshape(n, channels, side * patch_size, side * patch_size)


# ---------------------------------------------------------------- masking

def n_kept(length: int, mask_ratio: float) -> int:
    """How many of ``length`` patches stay visible: round((1 - r) L)."""
    return int(round((1.0 - mask_ratio) * length))


def random_masking(x: Tensor, mask_ratio: float, generator: torch.Generator | None = None):
    """Keep a random subset of round((1 - r) L) of the L tokens of each sample.

    ``x`` has shape (N, L, D). Each sample draws its own random permutation (the
    argsort of L uniform numbers) and keeps its first round((1 - r) L) entries.
    Returns

    - ``x_kept`` (N, L_keep, D): the kept tokens, in the order of the permutation;
    - ``mask`` (N, L): 0 for kept, 1 for masked, in the original order;
    - ``ids_restore`` (N, L): the inverse permutation: appending L - L_keep
      tokens to ``x_kept`` and gathering with ``ids_restore`` puts every token
      back in its original place.
    """
    if not isinstance(x, Tensor) or x.dim() != 3:
        raise ValueError(f"x must be a tensor of shape (N, L, D), got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must lie in [0, 1), got {mask_ratio!r}")
    n, length, dim = x.shape
    keep = n_kept(length, mask_ratio)
    noise = torch.rand(n, length, generator=generator).to(x.device)
    ids_shuffle = noise.argsort(dim=1)         # a random permutation per sample
    ids_restore = ids_shuffle.argsort(dim=1)   # its inverse
    ids_keep = ids_shuffle[:, :keep]
    x_kept = x.gather(1, ids_keep[:, :, None].expand(-1, -1, dim))
    mask = torch.ones(n, length, device=x.device)
    mask[:, :keep] = 0
    mask = mask.gather(1, ids_restore)  # back to the original order
    return x_kept, mask, ids_restore


def bert_mask(tokens: Tensor, vocab_size: int, mask_id: int, mask_prob: float = 0.15,
              generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """BERT's masking rule on token ids (N, T): returns ``(inputs, labels)``.

    Each position is chosen with probability ``mask_prob``; a chosen position
    becomes ``mask_id`` with probability 0.8, a token drawn uniformly from
    ``0 .. vocab_size - 1`` with probability 0.1, and keeps its token with
    probability 0.1. ``labels`` holds the original token at chosen positions
    and ``IGNORE`` (-100) elsewhere. The random and unchanged tokens exist
    because the mask token never occurs at fine-tuning time: the model must
    keep a useful representation of every token, not only of masks.
    """
    if not isinstance(tokens, Tensor) or tokens.dtype != torch.long:
        raise TypeError(f"tokens must be a LongTensor of token ids, got "
                        f"{tokens.dtype if isinstance(tokens, Tensor) else type(tokens).__name__}")
    if not 0.0 <= mask_prob <= 1.0:
        raise ValueError(f"mask_prob must lie in [0, 1], got {mask_prob!r}")
    u = torch.rand((3, *tokens.shape), generator=generator).to(tokens.device)
    chosen = u[0] < mask_prob
    to_mask = chosen & (u[1] < 0.8)
    to_random = chosen & ~to_mask & (u[2] < 0.5)  # half of the remaining 20%
    random_tokens = torch.randint(vocab_size, tokens.shape, generator=generator).to(tokens.device)
    inputs = torch.where(to_mask, torch.full_like(tokens, mask_id), tokens)
    inputs = torch.where(to_random, random_tokens, inputs)
    labels = torch.where(chosen, tokens, torch.full_like(tokens, IGNORE))
    return inputs, labels


# ---------------------------------------------------------------- losses

def masked_reconstruction_loss(pred: Tensor, target: Tensor, mask: Tensor, norm_pix: bool = False,
                               eps: float = 1e-6) -> Tensor:
    """L_MAE: the mean squared error per patch, averaged over the masked patches only.

    ``pred`` and ``target`` are patches (N, L, D), ``mask`` (N, L) is 1 where a
    patch was hidden. With ``norm_pix`` the target of each patch is that patch
    standardised by its own mean and variance, (t - mean) / sqrt(var + eps).
    """
    if pred.shape != target.shape or mask.shape != pred.shape[:2]:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have one shape "
                         f"(N, L, D) and mask {tuple(mask.shape)} must be (N, L)")
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True, correction=0)
        target = (target - mean) / (var + eps).sqrt()
    per_patch = ((pred - target) ** 2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum()


def masked_token_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of the original token over the chosen positions (labels != -100)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE)


# ---------------------------------------------------------------- transformer pieces

def transformer(dim: int, depth: int, heads: int, mlp_ratio: float = 2.0) -> nn.TransformerEncoder:
    """``depth`` pre-norm transformer blocks (self-attention and a GELU MLP), batch first."""
    layer = nn.TransformerEncoderLayer(dim, heads, int(dim * mlp_ratio), dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)


class EncoderOutput(NamedTuple):
    """The ViT encoder's output: codes of the visible patches, and which patches were hidden."""

    latent: Tensor       # (N, L_keep, dim)
    mask: Tensor         # (N, L), 1 = masked
    ids_restore: Tensor  # (N, L)


class ViTEncoder(nn.Module):
    """A tiny Vision Transformer that encodes only the visible patches.

    Each patch (p*p*C pixels) is embedded linearly and gets a learnt positional
    embedding; then :func:`random_masking` drops a share ``mask_ratio`` of the
    tokens, and the transformer blocks see only the rest. With
    ``mask_ratio=0`` (the default) it encodes the whole image.
    :meth:`features` is the representation used downstream: the mean of the
    encoded tokens of the whole image.
    """

    def __init__(self, image_size: int = 28, patch_size: int = 4, channels: int = 1, dim: int = 64,
                 depth: int = 4, heads: int = 4, mlp_ratio: float = 2.0):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"patch_size {patch_size} must divide image_size {image_size}")
        self.patch_size, self.channels, self.dim = patch_size, channels, dim
        self.num_patches = (image_size // patch_size) ** 2
        self.patch_embed = nn.Linear(patch_size * patch_size * channels, dim)
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, self.num_patches, dim))
        self.blocks = transformer(dim, depth, heads, mlp_ratio)
        self.norm = nn.LayerNorm(dim)

    def forward(self, images: Tensor, mask_ratio: float = 0.0,
                generator: torch.Generator | None = None) -> EncoderOutput:
        tokens = self.patch_embed(patchify(images, self.patch_size)) + self.pos_embed
        tokens, mask, ids_restore = random_masking(tokens, mask_ratio, generator)
        return EncoderOutput(self.norm(self.blocks(tokens)), mask, ids_restore)

    def features(self, images: Tensor) -> Tensor:
        """(N, dim): the mean of the encoded tokens of the unmasked image."""
        return self(images).latent.mean(dim=1)


class MAEDecoder(nn.Module):
    """The lighter decoder: visible codes plus mask tokens, in the original order, to pixels.

    The codes are projected to the decoder's width, a shared learnt mask token
    fills each hidden position, ``ids_restore`` puts all L tokens back in
    order, a positional embedding tells the mask tokens where they are, and a
    few transformer blocks and a linear layer predict every patch.
    """

    def __init__(self, num_patches: int, patch_dim: int, encoder_dim: int = 64, dim: int = 32,
                 depth: int = 2, heads: int = 4, mlp_ratio: float = 2.0):
        super().__init__()
        self.embed = nn.Linear(encoder_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, num_patches, dim))
        self.blocks = transformer(dim, depth, heads, mlp_ratio)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, patch_dim)

    def forward(self, latent: Tensor, ids_restore: Tensor) -> Tensor:
        x = self.embed(latent)
        n, length = ids_restore.shape
        fill = self.mask_token.expand(n, length - x.shape[1], -1)
        x = torch.cat([x, fill], dim=1).gather(1, ids_restore[:, :, None].expand(-1, -1, x.shape[2]))
        return self.head(self.norm(self.blocks(x + self.pos_embed)))  # predicted patches (N, L, patch_dim)


class MAEOutput(NamedTuple):
    """What :class:`MaskedAutoencoder` returns: predicted patches and the mask used."""

    pred: Tensor  # (N, L, p*p*C)
    mask: Tensor  # (N, L), 1 = masked


class MaskedAutoencoder(nn.Module):
    """MAE: :class:`ViTEncoder` on the visible patches, :class:`MAEDecoder` on all of them.

    ``skip_masked=False`` is the comparison the benchmark needs: the encoder
    then processes all L positions, the hidden ones replaced by a learnt mask
    token (as BEiT and SimMIM do), and the decoder gets every position's code.
    """

    def __init__(self, encoder: ViTEncoder, decoder_dim: int = 32, decoder_depth: int = 2,
                 decoder_heads: int = 4, mask_ratio: float = 0.75, skip_masked: bool = True):
        super().__init__()
        self.encoder, self.mask_ratio, self.skip_masked = encoder, mask_ratio, skip_masked
        patch_dim = encoder.patch_size ** 2 * encoder.channels
        self.decoder = MAEDecoder(encoder.num_patches, patch_dim, encoder.dim, decoder_dim, decoder_depth,
                                  decoder_heads)
        if not skip_masked:
            self.encoder_mask_token = nn.Parameter(torch.zeros(1, 1, encoder.dim))

    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> MAEOutput:
        if self.skip_masked:
            latent, mask, ids_restore = self.encoder(images, self.mask_ratio, generator)
            return MAEOutput(self.decoder(latent, ids_restore), mask)
        enc = self.encoder
        tokens = enc.patch_embed(patchify(images, enc.patch_size))
        _, mask, _ = random_masking(tokens, self.mask_ratio, generator)
        tokens = torch.where(mask[:, :, None].bool(), self.encoder_mask_token, tokens) + enc.pos_embed
        latent = enc.norm(enc.blocks(tokens))
        identity = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        return MAEOutput(self.decoder(latent, identity), mask)


def mae_loss_fn(norm_pix: bool = False):
    """``loss_fn(model, batch)`` for :func:`course_lib.training.fit`: L_MAE of a batch of images."""

    def loss_fn(model: MaskedAutoencoder, batch) -> Tensor:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        pred, mask = model(images)
        return masked_reconstruction_loss(pred, patchify(images, model.encoder.patch_size), mask, norm_pix)

    return loss_fn


# ---------------------------------------------------------------- text

class MaskedLanguageModel(nn.Module):
    """A tiny BERT: token and position embeddings, transformer blocks, logits over the words.

    Token ids ``0 .. vocab_size - 1`` are words and ``vocab_size`` is the mask
    token (:attr:`mask_id`), which is never predicted. ``forward`` returns the
    logits (N, T, vocab_size). As in BERT, the output layer shares the token
    embeddings E: the logit of word w is h . E_w + b_w, so every prediction also
    trains the word vectors (the rows of E, :meth:`word_vectors`).
    """

    def __init__(self, vocab_size: int, max_len: int = 32, dim: int = 64, depth: int = 2, heads: int = 4,
                 mlp_ratio: float = 2.0):
        super().__init__()
        self.vocab_size, self.mask_id, self.max_len = vocab_size, vocab_size, max_len
        self.token_embedding = nn.Embedding(vocab_size + 1, dim)
        # BERT's small initialisation: with PyTorch's default N(0, 1) the random start would
        # dominate the few hundred Adam steps of a CPU run, and the word vectors would stay random
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, max_len, dim))
        self.blocks = transformer(dim, depth, heads, mlp_ratio)
        self.norm = nn.LayerNorm(dim)
        self.output_bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, tokens: Tensor) -> Tensor:
        return self.head(self.contextual(tokens))

    def head(self, hidden: Tensor) -> Tensor:
        """Logits over the words from contextual vectors (..., dim), with the tied embeddings."""
        return hidden @ self.token_embedding.weight[:self.vocab_size].T + self.output_bias

    def contextual(self, tokens: Tensor) -> Tensor:
        """(N, T, dim): each position's representation in the context of the whole window."""
        if tokens.dim() != 2 or tokens.shape[1] > self.max_len:
            raise ValueError(f"tokens must have shape (N, T) with T <= {self.max_len}, got {tuple(tokens.shape)}")
        x = self.token_embedding(tokens) + self.pos_embed[:, :tokens.shape[1]]
        return self.norm(self.blocks(x))

    def word_vectors(self):
        """The input embeddings of the words (without the mask token), as a NumPy array."""
        return self.token_embedding.weight[:self.vocab_size].detach().cpu().numpy()


def mlm_loss_fn(mask_prob: float = 0.15):
    """``loss_fn(model, tokens)`` for ``fit``: fresh BERT masks every step, then the masked-token loss."""

    def loss_fn(model: MaskedLanguageModel, tokens) -> Tensor:
        tokens = tokens[0] if isinstance(tokens, (tuple, list)) else tokens
        inputs, labels = bert_mask(tokens, model.vocab_size, model.mask_id, mask_prob)
        chosen = labels != IGNORE  # only the chosen positions are scored: 15% of the vocabulary-sized products
        return masked_token_loss(model.head(model.contextual(inputs)[chosen]), labels[chosen])

    return loss_fn


def token_windows(ids, length: int) -> Tensor:
    """Cut a corpus of token ids into consecutive, non-overlapping windows (n, length)."""
    ids = torch.as_tensor(ids, dtype=torch.long)
    n = len(ids) // length
    if n < 1:
        raise ValueError(f"the corpus has {len(ids)} tokens, fewer than one window of {length}")
    return ids[:n * length].reshape(n, length)


@torch.no_grad()
def masked_token_accuracy(model: MaskedLanguageModel, windows: Tensor, mask_prob: float = 0.15,
                          seed: int = 0, batch_size: int = 512) -> tuple[float, Tensor, Tensor]:
    """Accuracy of the model's top guess at the chosen positions of BERT-masked ``windows``.

    Returns ``(accuracy, labels, predictions)`` at the chosen positions (masks
    drawn with a generator seeded by ``seed``, so every model sees the same).
    """
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    labels_all, guesses = [], []
    for start in range(0, len(windows), batch_size):
        inputs, labels = bert_mask(windows[start:start + batch_size], model.vocab_size, model.mask_id,
                                   mask_prob, generator)
        chosen = labels != IGNORE
        hidden = model.contextual(inputs.to(device))[chosen.to(device)]
        guesses.append(model.head(hidden).argmax(-1).cpu())
        labels_all.append(labels[chosen])
    labels, guesses = torch.cat(labels_all), torch.cat(guesses)
    return float((labels == guesses).float().mean()), labels, guesses


# ---------------------------------------------------------------- downstream

@torch.no_grad()
def encode_features(encoder: ViTEncoder, images: Tensor, batch_size: int = 1024) -> Tensor:
    """:meth:`ViTEncoder.features` of many images, in batches, on the encoder's device, returned on the CPU."""
    encoder.eval()
    device = next(encoder.parameters()).device
    return torch.cat([encoder.features(images[i:i + batch_size].to(device)).cpu()
                      for i in range(0, len(images), batch_size)])


class ViTClassifier(nn.Module):
    """A :class:`ViTEncoder` and a linear head on its mean-pooled features: logits (N, classes)."""

    def __init__(self, encoder: ViTEncoder, n_classes: int = 10):
        super().__init__()
        self.encoder, self.head = encoder, nn.Linear(encoder.dim, n_classes)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.encoder.features(images))


def classification_loss(model: nn.Module, batch) -> Tensor:
    """Cross-entropy of ``model(x)`` against ``y`` for a batch ``(x, y)``: the loss of fine-tuning."""
    x, y = batch
    return F.cross_entropy(model(x), y)


@torch.no_grad()
def accuracy(model: nn.Module, images: Tensor, labels, batch_size: int = 1024) -> float:
    """Share of ``images`` whose arg-max logit is the label."""
    model.eval()
    device = next(model.parameters()).device
    labels = torch.as_tensor(labels)
    guesses = torch.cat([model(images[i:i + batch_size].to(device)).argmax(1).cpu()
                         for i in range(0, len(images), batch_size)])
    return float((guesses == labels).float().mean())


@torch.no_grad()
def mae_reconstruct(model: MaskedAutoencoder, images: Tensor, mask_ratio: float,
                    generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """What the figures show: ``(masked, reconstruction)`` images for ``mask_ratio``.

    ``masked`` has the hidden patches set to 0.5 (grey); ``reconstruction`` is the
    model's prediction at the hidden patches pasted next to the visible ones, as
    in the MAE paper. The model may have been trained at another ratio.
    """
    model.eval()
    p, c = model.encoder.patch_size, model.encoder.channels
    device = next(model.parameters()).device
    trained_ratio, model.mask_ratio = model.mask_ratio, mask_ratio
    try:
        pred, mask = model(images.to(device), generator)
    finally:
        model.mask_ratio = trained_ratio
    patches, hidden = patchify(images, p), mask.cpu()[:, :, None].bool()
    masked = torch.where(hidden, torch.full_like(patches, 0.5), patches)
    pasted = torch.where(hidden, pred.cpu().clamp(0, 1), patches)
    return unpatchify(masked, p, c), unpatchify(pasted, p, c)


def seconds_per_step(model: nn.Module, loss_fn, batch, steps: int = 5, lr: float = 1e-3) -> float:
    """Median wall-clock seconds of one training step (forward, backward, Adam) on ``batch``, after a warm-up."""
    import statistics
    import time

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        loss = loss_fn(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if torch.cuda.is_available():
            torch.cuda.synchronize()  # GPU work is asynchronous: wait for it before reading the clock
        if step:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - start)
    return statistics.median(times)
