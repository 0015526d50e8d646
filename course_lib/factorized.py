"""Factorized embeddings: two embedding spaces that predict a matrix together.

A data matrix X links two kinds of entity: in single-cell data, row i is a
sample (a cell) and column j a gene, and x_ij the gene's expression in the
cell. Factorized embeddings (Trofimov et al., Bioinformatics 2020) learn one
vector per sample and one per gene, and a small network g that predicts each
entry from the pair:

    x_hat_ij = g(z_i^sample, z_j^gene)

    z_i^sample   row i of the table Z_sample (n_samples x d_sample)
    z_j^gene     row j of the table Z_gene   (n_genes x d_gene)
    g            an MLP on the concatenation [z_i^sample, z_j^gene]

All three are trained together by minimising the squared error over the
observed entries, min_z sum_(i,j) (x_hat_ij - x_ij)^2. Samples that need
similar predictions end up near each other in their space, and so do genes.
With g a dot product this would be a rank-d matrix factorisation, the job of
the truncated SVD; an MLP lets the two spaces interact non-linearly.

Because training sees entries, not whole rows, entries can be held out: the
error on held-out entries measures how well the model generalises, and
:func:`svd_impute` gives the linear baseline of the same rank.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from .training import History, fit
from .utils import as_2d_array, check_n_components, get_device, seed_everything


class FactorizedEmbeddings(nn.Module):
    """x_hat_ij = g(z_i^sample, z_j^gene): two embedding tables and an MLP g.

    ``hidden`` lists the widths of g's hidden layers (ReLU between layers);
    ``hidden=()`` makes g a single linear layer. ``forward(i, j)`` takes two
    index tensors of the same shape and returns the predictions x_hat_ij.
    """

    def __init__(self, n_samples: int, n_genes: int, sample_dim: int = 2, gene_dim: int = 2,
                 hidden=(64, 64)):
        super().__init__()
        for name, value in (("n_samples", n_samples), ("n_genes", n_genes),
                            ("sample_dim", sample_dim), ("gene_dim", gene_dim)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.sample_embedding = nn.Embedding(n_samples, sample_dim)  # Z_sample
        self.gene_embedding = nn.Embedding(n_genes, gene_dim)  # Z_gene
        # Start near the origin so that no sample or gene begins far from the others.
        nn.init.normal_(self.sample_embedding.weight, std=0.1)
        nn.init.normal_(self.gene_embedding.weight, std=0.1)
        widths = [sample_dim + gene_dim, *hidden, 1]
        layers = []
        for width_in, width_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(width_in, width_out), nn.ReLU()]
        self.g = nn.Sequential(*layers[:-1])  # no ReLU after the output layer

    def forward(self, i, j):
        z_sample = self.sample_embedding(i)
        z_gene = self.gene_embedding(j)
        return self.g(torch.cat([z_sample, z_gene], dim=-1)).squeeze(-1)

    def sample_embeddings(self) -> np.ndarray:
        """Z_sample as an (n_samples, sample_dim) array: one point per sample (cell)."""
        return self.sample_embedding.weight.detach().cpu().numpy().copy()

    def gene_embeddings(self) -> np.ndarray:
        """Z_gene as an (n_genes, gene_dim) array: one point per gene."""
        return self.gene_embedding.weight.detach().cpu().numpy().copy()

    @torch.no_grad()
    def predict_matrix(self, batch_size: int = 65536) -> np.ndarray:
        """The full predicted matrix X_hat, shape (n_samples, n_genes)."""
        n, m = self.sample_embedding.num_embeddings, self.gene_embedding.num_embeddings
        device = self.sample_embedding.weight.device
        flat = torch.arange(n * m, device=device)
        out = torch.cat([self(chunk // m, chunk % m) for chunk in flat.split(batch_size)])
        return out.reshape(n, m).cpu().numpy()


def squared_error_loss(x_hat, x):
    """The squared error over observed entries, averaged over a batch of them:

        L = mean over (i, j) in the batch of (x_hat_ij - x_ij)^2
    """
    if x_hat.shape != x.shape:
        raise ValueError(f"x_hat and x must have the same shape, got {tuple(x_hat.shape)} and "
                         f"{tuple(x.shape)}")
    return ((x_hat - x) ** 2).mean()


def factorized_loss(model: FactorizedEmbeddings, batch) -> torch.Tensor:
    """``loss_fn`` for :func:`course_lib.training.fit`: ``batch`` is ``(i, j, x_ij)``."""
    i, j, x = batch
    return squared_error_loss(model(i, j), x)


# ---------------------------------------------------------------- data

def _check_mask(mask, shape, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.shape != shape:
        raise ValueError(f"{name} must be a boolean array of shape {shape}, got {mask.dtype} {mask.shape}")
    return mask


class MatrixEntries(Dataset):
    """The observed entries of a matrix as ``(i, j, x_ij)`` triples.

    ``mask`` (boolean, same shape as X) says which entries to include; all of
    them when None. Indexing with an int, a slice or an array of positions
    returns the three tensors at once, so :meth:`loader` can fetch a whole
    batch in one call instead of collating it entry by entry.
    """

    def __init__(self, X, mask=None):
        if mask is not None:
            mask = _check_mask(mask, np.shape(X), "mask")
            X = np.where(mask, X, 0.0)  # unobserved entries may hold NaN
        X = as_2d_array(X, "X", min_rows=1, dtype=np.float32)
        mask = np.ones(X.shape, dtype=bool) if mask is None else mask
        i, j = np.nonzero(mask)
        self.shape = X.shape
        self.i = torch.from_numpy(i.astype(np.int64))
        self.j = torch.from_numpy(j.astype(np.int64))
        self.x = torch.from_numpy(X[i, j])

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index):
        if isinstance(index, list):
            index = torch.as_tensor(index)
        return self.i[index], self.j[index], self.x[index]

    def loader(self, batch_size: int = 4096, shuffle: bool = False, seed: int = 0) -> DataLoader:
        """A ``DataLoader`` of whole batches ``(i, j, x)``, shuffled reproducibly when asked."""
        order = (RandomSampler(self, generator=torch.Generator().manual_seed(seed)) if shuffle
                 else SequentialSampler(self))
        return DataLoader(self, sampler=BatchSampler(order, batch_size, drop_last=False), batch_size=None)


def split_entries(shape, fractions=(0.8, 0.1, 0.1), seed: int = 0, observed=None) -> tuple:
    """Split the entries of a matrix at random into train, validation and test masks.

    ``shape`` is the matrix's (n_samples, n_genes); ``observed`` (boolean)
    restricts the split to entries that are known. Returns three disjoint
    boolean masks whose union is the observed entries. Holding out entries,
    not rows, is what lets us ask how well a model fills in missing values.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2:
        raise ValueError(f"shape must be (n_samples, n_genes), got {shape}")
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers adding up to 1, got {fractions}")
    observed = np.ones(shape, dtype=bool) if observed is None else _check_mask(observed, shape, "observed")
    flat = np.flatnonzero(observed)
    flat = flat[np.random.default_rng(seed).permutation(len(flat))]
    n_train = int(round(fractions[0] * len(flat)))
    n_val = int(round(fractions[1] * len(flat)))
    masks = []
    for part in (flat[:n_train], flat[n_train:n_train + n_val], flat[n_train + n_val:]):
        mask = np.zeros(shape, dtype=bool)
        mask.flat[part] = True
        masks.append(mask)
    return tuple(masks)


def masked_mse(X, X_hat, mask) -> float:
    """Mean squared error between X and X_hat over the entries where ``mask`` is True."""
    X, X_hat = np.asarray(X, dtype=np.float64), np.asarray(X_hat, dtype=np.float64)
    if X.shape != X_hat.shape:
        raise ValueError(f"X and X_hat must have the same shape, got {X.shape} and {X_hat.shape}")
    mask = _check_mask(mask, X.shape, "mask")
    if not mask.any():
        raise ValueError("mask selects no entries")
    return float(np.mean((X[mask] - X_hat[mask]) ** 2))


# ---------------------------------------------------------------- baselines

def mean_baseline(X, mask) -> np.ndarray:
    """Predict every entry from averages of the observed ones: x_hat_ij = r_i + c_j - mu.

    mu is the mean of the observed entries, r_i the mean of row i's observed
    entries and c_j that of column j's (rows or columns with none fall back to
    mu). The bar any model of the matrix has to clear.
    """
    mask = _check_mask(mask, np.shape(X), "mask")
    X = as_2d_array(np.where(mask, X, 0.0), "X", min_rows=1)
    observed = mask.astype(np.float64)
    mu = X[mask].mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        rows = np.where(observed.sum(1) > 0, X.sum(1) / observed.sum(1), mu)
        cols = np.where(observed.sum(0) > 0, X.sum(0) / observed.sum(0), mu)
    return rows[:, None] + cols[None, :] - mu


def truncated_svd(X, rank: int) -> np.ndarray:
    """The best rank-``rank`` approximation of X in squared error (Eckart-Young): U_k S_k V_k^T."""
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    return (U[:, :rank] * s[:rank]) @ Vt[:rank]


def svd_impute(X, mask, rank: int, n_iter: int = 200, tol: float = 1e-6) -> np.ndarray:
    """The truncated-SVD baseline for missing entries, by iterative SVD imputation.

    Only the entries where ``mask`` is True are used. Start by filling the
    others with :func:`mean_baseline`, then repeat: take the rank-``rank``
    truncated SVD of the filled matrix, and replace the unobserved entries by
    its values (observed entries stay as they are). This is the "SVDimpute" of
    Troyanskaya et al. (2001); each round lowers the squared error of the
    rank-``rank`` fit on the observed entries, so it settles on a (locally)
    best rank-``rank`` fit to them. We fill with :func:`mean_baseline`, not
    zeros, so that the start is already a sensible guess. Stops when the filled
    values change by less than ``tol`` (relative) or after ``n_iter`` rounds.
    Returns the rank-``rank`` reconstruction of the whole matrix.
    """
    mask = _check_mask(mask, np.shape(X), "mask")
    X = as_2d_array(np.where(mask, X, 0.0), "X", min_rows=1)
    rank = check_n_components(rank, min(X.shape), "rank")
    filled = np.where(mask, X, mean_baseline(X, mask))
    for _ in range(n_iter):
        low_rank = truncated_svd(filled, rank)
        change = np.linalg.norm(low_rank[~mask] - filled[~mask]) / max(np.linalg.norm(filled[~mask]), 1e-12)
        filled[~mask] = low_rank[~mask]
        if change < tol:
            break
    return truncated_svd(filled, rank)


def dot_product_by_adam(X, weights=None, *, dim: int = 2, steps: int = 600, lr: float = 0.03, seed: int = 0,
                        device=None) -> tuple:
    """The dot-product model x_hat_ij = z_i^sample . z_j^gene, fitted by Adam on the whole matrix at once.

    Minimises sum_ij w_ij (z_i^sample . z_j^gene - x_ij)^2 from a small random start
    (standard deviation 0.1), in float64 so that a tiny gap to the optimum is measurable.
    ``weights`` is None (w_ij = 1: every entry, whose optimum is the truncated SVD) or a
    0/1 mask (the observed entries only, the problem :func:`svd_impute` solves). A check
    of a derivation rather than a workload: full-batch, on ``device`` (the CPU by default).
    Returns (Z_sample, Z_gene, losses) as NumPy arrays, ``losses`` holding every step's loss.
    """
    X = as_2d_array(X, "X", min_rows=1)
    dim = check_n_components(dim, min(X.shape), "dim")
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != X.shape or weights.min() < 0:
            raise ValueError(f"weights must be None or non-negative with X's shape {X.shape}, got {weights.shape}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    device = torch.device(device or "cpu")
    X_t = torch.tensor(X, device=device)
    w = torch.tensor(weights, device=device) if weights is not None else torch.ones((), dtype=X_t.dtype, device=device)
    gen = torch.Generator().manual_seed(seed)
    Z_s = (0.1 * torch.randn(X.shape[0], dim, generator=gen, dtype=torch.float64)).to(device).requires_grad_()
    Z_g = (0.1 * torch.randn(X.shape[1], dim, generator=gen, dtype=torch.float64)).to(device).requires_grad_()
    optimizer = torch.optim.Adam([Z_s, Z_g], lr=lr)
    losses = np.empty(steps)
    for step in range(steps):
        loss = (w * (Z_s @ Z_g.T - X_t) ** 2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses[step] = loss.item()
    return Z_s.detach().cpu().numpy(), Z_g.detach().cpu().numpy(), losses


# ---------------------------------------------------------------- training

def train_factorized(X, train_mask=None, val_mask=None, *, sample_dim: int = 2, gene_dim: int = 2,
                     hidden=(64, 64), epochs: int = 50, batch_size: int = 4096, lr: float = 3e-3,
                     device=None, seed: int = 0, progress: bool = True) -> tuple:
    """Fit :class:`FactorizedEmbeddings` to the entries of X where ``train_mask`` is True.

    With ``val_mask``, :func:`course_lib.training.fit` keeps the parameters of
    the epoch with the lowest squared error on those entries. Returns
    ``(model, history)``; ``model.predict_matrix()`` gives X_hat.
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_genes), got shape {X.shape}")
    seed_everything(seed)
    model = FactorizedEmbeddings(X.shape[0], X.shape[1], sample_dim, gene_dim, hidden)
    train = MatrixEntries(X, train_mask).loader(batch_size, shuffle=True, seed=seed)
    val = None if val_mask is None else MatrixEntries(X, val_mask).loader(max(batch_size, 65536))
    device = torch.device(device) if device is not None else get_device()
    history: History = fit(model, factorized_loss, train, val, epochs=epochs, lr=lr, device=device,
                           seed=seed, progress=progress)
    return model, history
