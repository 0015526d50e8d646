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
(``(centre, context, negatives)``) alike. A loss with several parts (the VAE's
reconstruction and KL) returns ``(loss, {"name": term, ...})`` and :class:`History`
keeps a curve per term. A learning-rate scheduler, gradient clipping and
per-epoch callbacks (sample grids, early stopping) are options of :func:`fit`.
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

LossFn = Callable[[nn.Module, object], "torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]"]
Callback = Callable[[int, nn.Module, "History"], "bool | None"]


@dataclass
class History:
    """What :func:`fit` records: one entry per epoch, and the loss of every step.

    ``train_terms`` and ``val_terms`` hold a curve per named term when the loss
    function returns ``(loss, terms)`` (for the VAE: reconstruction and KL), so
    ``history.train_terms["kl"][e]`` is the mean KL over epoch ``e + 1``.
    """

    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_score: list = field(default_factory=list)
    best_epoch: int | None = None
    best_score: float | None = None
    step_loss: list = field(default_factory=list)  # the loss of each mini-batch, in training order
    train_terms: dict = field(default_factory=dict)  # name -> one mean per epoch
    val_terms: dict = field(default_factory=dict)
    stopped_early: bool = False  # a callback ended training before the last epoch

    def plot(self, ax=None, title: str | None = None, terms: bool | list = False):
        """Learning curves against the epoch: the loss, or (``terms=True`` or a list of names) its terms.

        Training curves are solid, validation curves dashed in the same colour.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.2))
        if terms:
            names = list(self.train_terms) if terms is True else list(terms)
            missing = [n for n in names if n not in self.train_terms]
            if missing or not names:
                raise ValueError(f"terms must name recorded terms {sorted(self.train_terms)}, got {names}")
            curves = [(f"{n}", self.train_terms[n], self.val_terms.get(n)) for n in names]
        else:
            curves = [("loss", self.train_loss, self.val_loss)]
        epochs = range(1, len(self.train_loss) + 1)
        for i, (name, train, val) in enumerate(curves):
            colour = f"C{i}"
            ax.plot(epochs, train, marker="o", ms=3, color=colour, label=f"training {name}")
            if val:
                ax.plot(epochs, val, marker="o", ms=3, ls="--", color=colour, label=f"validation {name}")
        if self.best_epoch is not None:
            ax.axvline(self.best_epoch, color="gray", ls=":", label=f"best epoch ({self.best_epoch})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss" if not terms else "loss terms")
        if title:
            ax.set_title(title)
        ax.legend(frameon=False)
        return ax


def split_loss(output) -> tuple[torch.Tensor, dict]:
    """``(loss, terms)`` from what a loss function returned: a scalar, or ``(scalar, {name: scalar})``."""
    if isinstance(output, torch.Tensor):
        loss, terms = output, {}
    elif isinstance(output, (tuple, list)) and len(output) == 2 and isinstance(output[1], dict):
        loss, terms = output
    else:
        raise TypeError("loss_fn must return a scalar tensor or (loss, terms) with terms a dict of "
                        f"named scalars, got {type(output).__name__}")
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"loss_fn must return a scalar, got a tensor of shape {shape}")
    for name, term in terms.items():
        if not isinstance(term, torch.Tensor) or term.dim() != 0:
            raise ValueError(f"loss term {name!r} must be a scalar tensor, got {term!r:.60}")
    return loss, terms


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


def evaluate(model: nn.Module, loss_fn: LossFn, data, device=None, batch_size: int = 512) -> float:
    """Mean of ``loss_fn`` over ``data``, weighted by batch size, in evaluation mode."""
    return _evaluate(model, loss_fn, data, device, batch_size)[0]


@torch.no_grad()
def _evaluate(model, loss_fn, data, device=None, batch_size=512) -> tuple[float, dict]:
    """The mean loss and the mean of each named term over ``data``."""
    device = device or next(model.parameters()).device
    loader = make_loader(data, batch_size=batch_size)
    was_training = model.training
    model.eval()
    sums = _Sums()
    for batch in loader:
        batch = _unwrap_single(to_device(batch, device))
        sums.add(*split_loss(loss_fn(model, batch)), _batch_len(batch))
    model.train(was_training)
    if sums.count == 0:
        raise ValueError("evaluate() got an empty data set")
    return sums.means()


class _Sums:
    """Batch-size-weighted sums of the loss and its terms, kept on the device until read.

    Reading a GPU tensor waits for the GPU; summing there and reading once per epoch
    keeps the training loop from waiting after every step.
    """

    def __init__(self):
        self.loss, self.terms, self.count = 0.0, {}, 0

    def add(self, loss, terms, n):
        # in double precision, as Python's floats, so that a long epoch's mean does not drift
        self.loss = self.loss + loss.detach().double() * n
        for name, term in terms.items():
            self.terms[name] = self.terms.get(name, 0.0) + term.detach().double() * n
        self.count += n

    def means(self) -> tuple[float, dict]:
        return float(self.loss) / self.count, {k: float(v) / self.count for k, v in self.terms.items()}


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
    scheduler=None,
    scheduler_step: str = "epoch",
    clip_grad_norm: float | None = None,
    callbacks: Callback | list[Callback] = (),
) -> History:
    """Train ``model`` by minimising ``loss_fn`` and keep its best validation state.

    Parameters
    ----------
    model : the ``nn.Module`` to train; it is moved to ``device``.
    loss_fn : ``loss_fn(model, batch)``, the book's equation. It returns the scalar
        loss, or ``(loss, terms)`` with ``terms`` a dict of named scalars (e.g.
        ``{"reconstruction": ..., "kl": ...}``) that :class:`History` records per epoch.
    train_data, val_data : ``Dataset``, ``DataLoader`` or tensor.
    epochs, batch_size, lr : the usual; ``optimizer`` defaults to Adam(lr).
    score_fn : ``score_fn(model) -> float``, the validation score used to pick
        the best epoch; defaults to the mean validation loss (lower is better).
    higher_is_better : set when ``score_fn`` is an accuracy-like score.
    progress : show a tqdm bar over the epochs.
    scheduler : a learning-rate scheduler, or a function ``optimizer -> scheduler``
        (handy when ``fit`` makes the optimizer); stepped after every batch
        (``scheduler_step="batch"``) or every epoch (``"epoch"``). A
        ``ReduceLROnPlateau`` is stepped with the epoch's validation score, or its
        training loss when there is no validation data.
    clip_grad_norm : rescale the gradients so that their global norm is at most this.
    callbacks : functions ``callback(epoch, model, history)`` called at the end of
        each epoch (``epoch`` counts from 1); one that returns ``True`` stops training
        (early stopping). Use them for sample grids and other per-epoch looks.

    Returns a :class:`History`; on return ``model`` holds the parameters of the
    best epoch (the last one when there is no validation data).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError("loss_fn must be a function loss_fn(model, batch) -> scalar tensor")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if scheduler_step not in ("batch", "epoch"):
        raise ValueError(f"scheduler_step must be 'batch' or 'epoch', got {scheduler_step!r}")
    if clip_grad_norm is not None and not clip_grad_norm > 0:
        raise ValueError(f"clip_grad_norm must be a positive number or None, got {clip_grad_norm!r}")
    callbacks = [callbacks] if callable(callbacks) else list(callbacks)
    if not all(callable(cb) for cb in callbacks):
        raise TypeError("callbacks must be a function callback(epoch, model, history) or a list of them")
    device = torch.device(device) if device is not None else get_device()
    model.to(device)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    if scheduler is not None and not hasattr(scheduler, "step"):
        scheduler = scheduler(optimizer)  # a function optimizer -> scheduler
    on_plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    if on_plateau and scheduler_step == "batch":
        raise ValueError("a ReduceLROnPlateau scheduler needs scheduler_step='epoch'")
    train_loader = make_loader(train_data, batch_size=batch_size, shuffle=True, seed=seed)
    history = History()
    best_state = None
    sign = 1.0 if higher_is_better else -1.0

    from tqdm.auto import trange

    bar = trange(epochs, desc="epochs", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        sums, step_losses = _Sums(), []
        for batch in train_loader:
            batch = _unwrap_single(to_device(batch, device))
            loss, terms = split_loss(loss_fn(model, batch))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            optimizer.step()
            if scheduler is not None and scheduler_step == "batch":
                scheduler.step()
            step_losses.append(loss.detach())
            sums.add(loss, terms, _batch_len(batch))
        if not step_losses:
            raise ValueError("train_data is empty: there is no batch to train on")
        history.step_loss += torch.stack(step_losses).tolist()  # one device read per epoch
        _append(history, "train", *sums.means())

        if val_data is not None:
            _append(history, "val", *_evaluate(model, loss_fn, val_data, device, max(batch_size, 512)))
            model.eval()
            score = score_fn(model) if score_fn is not None else history.val_loss[-1]
            history.val_score.append(float(score))
            if history.best_score is None or sign * score > sign * history.best_score:
                history.best_score, history.best_epoch = float(score), epoch + 1
                best_state = copy.deepcopy(model.state_dict())
            bar.set_postfix(train=f"{history.train_loss[-1]:.4g}", val=f"{history.val_loss[-1]:.4g}")
        else:
            bar.set_postfix(train=f"{history.train_loss[-1]:.4g}")
        if scheduler is not None and scheduler_step == "epoch":
            if on_plateau:
                scheduler.step(history.val_score[-1] if val_data is not None else history.train_loss[-1])
            else:
                scheduler.step()
        stop = [bool(cb(epoch + 1, model, history)) for cb in callbacks]  # every callback sees every epoch
        if any(stop) and epoch + 1 < epochs:
            history.stopped_early = True
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        history.best_epoch = len(history.train_loss)
    model.eval()
    return history


def _append(history: History, part: str, loss: float, terms: dict):
    getattr(history, f"{part}_loss").append(loss)
    curves = getattr(history, f"{part}_terms")
    for name, value in terms.items():
        curves.setdefault(name, []).append(value)
