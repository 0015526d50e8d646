"""The course's one training loop.

It follows the recipe of the "training process" lecture step by step:

1. split the data into train / validation / test (:func:`split_dataset`);
2. wrap each part in a ``DataLoader``;
3. define the model (an ``nn.Module``) and the loss (a plain function);
4. pick an optimizer;
5. for each epoch, take a step on every mini-batch, then evaluate on the
   validation set and keep the parameters with the best validation score;
6. evaluate that best model once on the test set (:func:`evaluate`).

Every neural chapter calls :func:`fit`; no chapter carries its own copy.

The loss is a function ``loss_fn(model, batch) -> scalar tensor``: it receives
the model and whatever the ``DataLoader`` yields (a tensor, a tuple, a dict),
already moved to the training device, so one loop serves autoencoders
(``batch`` is ``x``), classifiers (``(x, y)``) and word2vec
(``(centre, context, negatives)``) alike.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from torch.utils.data import (BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler, Subset,
                              TensorDataset)

from .utils import get_device

LossFn = Callable[[nn.Module, object], torch.Tensor]


@dataclass
class History:
    """What :func:`fit` records: one entry per epoch, and the loss of every step."""

    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_score: list = field(default_factory=list)
    best_epoch: int | None = None
    best_score: float | None = None
    step_loss: list = field(default_factory=list)  # the loss of each mini-batch, in training order

    def plot(self, ax=None, title: str | None = None):
        """Learning curves: training and validation loss against the epoch."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.2))
        epochs = range(1, len(self.train_loss) + 1)
        ax.plot(epochs, self.train_loss, marker="o", ms=3, label="training loss")
        if self.val_loss:
            ax.plot(epochs, self.val_loss, marker="o", ms=3, label="validation loss")
        if self.best_epoch is not None:
            ax.axvline(self.best_epoch, color="gray", ls=":", label=f"best epoch ({self.best_epoch})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        if title:
            ax.set_title(title)
        ax.legend(frameon=False)
        return ax


def split_dataset(dataset, fractions=(0.8, 0.1, 0.1), seed: int = 0):
    """Split a ``Dataset`` (or a tensor) at random into train, validation and test parts.

    ``fractions`` must be three non-negative numbers adding up to 1 (the lecture
    suggests 8:1:1 or 6:2:2). Returns three ``torch.utils.data.Subset`` objects.
    """
    if isinstance(dataset, torch.Tensor):
        dataset = TensorDataset(dataset)
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers adding up to 1, got {fractions}")
    n = len(dataset)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    n_test = n - n_train - n_val
    if min(n_train, n_val if fractions[1] else 1, n_test if fractions[2] else 1) <= 0:
        raise ValueError(f"dataset of {n} items is too small for fractions {fractions}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return (
        Subset(dataset, order[:n_train]),
        Subset(dataset, order[n_train:n_train + n_val]),
        Subset(dataset, order[n_train + n_val:]),
    )


def to_device(batch, device):
    """Move a tensor, or any tuple / list / dict of tensors, to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def _unwrap_single(batch):
    # A TensorDataset of one tensor yields 1-tuples; the loss wants the tensor itself.
    if isinstance(batch, (list, tuple)) and len(batch) == 1:
        return batch[0]
    return batch


def make_loader(data, batch_size: int = 128, shuffle: bool = False, seed: int = 0, **kwargs) -> DataLoader:
    """A ``DataLoader`` over a ``Dataset`` or a tensor, shuffled reproducibly when asked."""
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, torch.Tensor):
        data = TensorDataset(data)
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a Dataset, a DataLoader or a tensor, got {type(data).__name__}")
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    in_memory = isinstance(data, TensorDataset) or (
        isinstance(data, Subset) and isinstance(data.dataset, TensorDataset))
    if in_memory and not kwargs:
        # Tensors already in memory: take each batch with one indexing operation instead of
        # collating batch_size single rows (10x faster for small models).
        order = RandomSampler(data, generator=generator) if shuffle else SequentialSampler(data)
        return DataLoader(data, batch_size=None, sampler=BatchSampler(order, batch_size, drop_last=False))
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=generator, **kwargs)


@torch.no_grad()
def evaluate(model: nn.Module, loss_fn: LossFn, data, device=None, batch_size: int = 512) -> float:
    """Mean of ``loss_fn`` over ``data``, weighted by batch size, in evaluation mode."""
    device = device or next(model.parameters()).device
    loader = make_loader(data, batch_size=batch_size)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        batch = _unwrap_single(to_device(batch, device))
        n = _batch_len(batch)
        total += float(loss_fn(model, batch)) * n
        count += n
    model.train(was_training)
    if count == 0:
        raise ValueError("evaluate() got an empty data set")
    return total / count


def _batch_len(batch) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    if isinstance(batch, (list, tuple)):
        return _batch_len(batch[0])
    if isinstance(batch, dict):
        return _batch_len(next(iter(batch.values())))
    return 1


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    train_data,
    val_data=None,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    device=None,
    score_fn: Callable[[nn.Module], float] | None = None,
    higher_is_better: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> History:
    """Train ``model`` by minimising ``loss_fn`` and keep its best validation state.

    Parameters
    ----------
    model : the ``nn.Module`` to train; it is moved to ``device``.
    loss_fn : ``loss_fn(model, batch) -> scalar tensor``, the book's equation.
    train_data, val_data : ``Dataset``, ``DataLoader`` or tensor.
    epochs, batch_size, lr : the usual; ``optimizer`` defaults to Adam(lr).
    score_fn : ``score_fn(model) -> float``, the validation score used to pick
        the best epoch; defaults to the mean validation loss (lower is better).
    higher_is_better : set when ``score_fn`` is an accuracy-like score.
    progress : show a tqdm bar over the epochs.

    Returns a :class:`History`; on return ``model`` holds the parameters of the
    best epoch (the last one when there is no validation data).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError("loss_fn must be a function loss_fn(model, batch) -> scalar tensor")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    device = torch.device(device) if device is not None else get_device()
    model.to(device)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    train_loader = make_loader(train_data, batch_size=batch_size, shuffle=True, seed=seed)
    history = History()
    best_state = None
    sign = 1.0 if higher_is_better else -1.0

    from tqdm.auto import trange

    bar = trange(epochs, desc="epochs", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        total, count = 0.0, 0
        for batch in train_loader:
            batch = _unwrap_single(to_device(batch, device))
            loss = loss_fn(model, batch)
            if loss.dim() != 0:
                raise ValueError(f"loss_fn must return a scalar, got a tensor of shape {tuple(loss.shape)}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            history.step_loss.append(float(loss.detach()))
            n = _batch_len(batch)
            total += history.step_loss[-1] * n
            count += n
        history.train_loss.append(total / count)

        if val_data is not None:
            history.val_loss.append(evaluate(model, loss_fn, val_data, device, batch_size=max(batch_size, 512)))
            model.eval()
            score = score_fn(model) if score_fn is not None else history.val_loss[-1]
            history.val_score.append(float(score))
            if history.best_score is None or sign * score > sign * history.best_score:
                history.best_score, history.best_epoch = float(score), epoch + 1
                best_state = copy.deepcopy(model.state_dict())
            bar.set_postfix(train=f"{history.train_loss[-1]:.4g}", val=f"{history.val_loss[-1]:.4g}")
        else:
            bar.set_postfix(train=f"{history.train_loss[-1]:.4g}")

    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        history.best_epoch = epochs
    model.eval()
    return history
