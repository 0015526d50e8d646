"""The shared training loop: it learns, keeps the best validation state, and checks its input."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from course_lib import seed_everything
from course_lib.training import History, evaluate, fit, split_dataset


def mse_loss(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def make_regression(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    w = torch.tensor([[1.0], [-2.0], [0.5]])
    return TensorDataset(x, x @ w + 0.01 * torch.randn(n, 1, generator=g))


def test_split_fractions_and_disjointness():
    ds = make_regression(100)
    train, val, test = split_dataset(ds, (0.6, 0.2, 0.2), seed=1)
    assert (len(train), len(val), len(test)) == (60, 20, 20)
    assert not set(train.indices) & set(val.indices) and not set(val.indices) & set(test.indices)
    again = split_dataset(ds, (0.6, 0.2, 0.2), seed=1)[0]
    assert train.indices == again.indices  # reproducible
    with pytest.raises(ValueError, match="fractions"):
        split_dataset(ds, (0.5, 0.2, 0.2))


def test_fit_learns_a_linear_map_and_records_history():
    seed_everything(0)
    train, val, test = split_dataset(make_regression(), seed=0)
    model = nn.Linear(3, 1)
    history = fit(model, mse_loss, train, val, epochs=30, batch_size=32, lr=0.05, device="cpu", progress=False)
    assert len(history.train_loss) == len(history.val_loss) == 30
    assert evaluate(model, mse_loss, test) < 1e-3  # noise variance is 1e-4
    np.testing.assert_allclose(model.weight.detach().numpy().ravel(), [1.0, -2.0, 0.5], atol=0.02)


def test_history_records_every_step_loss():
    seed_everything(0)
    train, _, _ = split_dataset(make_regression(), seed=0)  # 320 items: 10 batches of 32 per epoch
    seen = []

    def loss_fn(model, batch):
        loss = mse_loss(model, batch)
        seen.append(loss.item())  # the loss fit is about to step on
        return loss

    history = fit(nn.Linear(3, 1), loss_fn, train, epochs=3, batch_size=32, lr=0.05, device="cpu", progress=False)
    assert history.step_loss == seen and len(seen) == 3 * 10
    # Equal batches: each epoch's loss is the mean of its steps' losses.
    np.testing.assert_allclose(history.train_loss, np.mean(np.reshape(seen, (3, 10)), axis=1), rtol=1e-12)


def test_fit_restores_the_best_validation_state():
    seed_everything(0)
    train, val, _ = split_dataset(make_regression(), seed=0)
    model = nn.Linear(3, 1)
    # A large learning rate with SGD oscillates, so the last epoch is rarely the best.
    opt = torch.optim.SGD(model.parameters(), lr=0.9)
    history = fit(model, mse_loss, train, val, epochs=8, optimizer=opt, device="cpu", progress=False)
    assert history.best_score == min(history.val_loss)
    assert history.best_epoch == int(np.argmin(history.val_loss)) + 1
    assert evaluate(model, mse_loss, val) == pytest.approx(history.best_score, rel=1e-5)


def test_fit_with_a_higher_is_better_score():
    seed_everything(0)
    train, val, _ = split_dataset(make_regression(), seed=0)
    model = nn.Linear(3, 1)
    calls = []

    def score(m):
        calls.append(1)
        return -evaluate(m, mse_loss, val)

    history = fit(model, mse_loss, train, val, epochs=4, lr=0.05, score_fn=score, higher_is_better=True,
                  device="cpu", progress=False)
    assert len(calls) == 4 and history.best_score == max(history.val_score)


def test_single_tensor_datasets_give_the_tensor_itself():
    x = torch.randn(64, 5)
    seen = []

    def loss(model, batch):
        seen.append(type(batch))
        return ((model(batch) - batch) ** 2).mean()

    fit(nn.Linear(5, 5), loss, x, x, epochs=1, batch_size=16, device="cpu", progress=False)
    assert all(t is torch.Tensor for t in seen)


def test_fit_rejects_bad_arguments():
    with pytest.raises(TypeError, match="model"):
        fit(lambda x: x, mse_loss, make_regression(), progress=False)
    with pytest.raises(ValueError, match="epochs"):
        fit(nn.Linear(3, 1), mse_loss, make_regression(), epochs=0, progress=False)
    with pytest.raises(ValueError, match="scalar"):
        fit(nn.Linear(3, 1), lambda m, b: (m(b[0]) - b[1]) ** 2, make_regression(), epochs=1,
            device="cpu", progress=False)


def test_history_plot_draws_both_curves():
    import matplotlib

    matplotlib.use("Agg")
    h = History(train_loss=[3, 2, 1], val_loss=[3.5, 2.5, 2.6], best_epoch=2)
    ax = h.plot()
    assert len(ax.lines) == 3  # train, validation, best-epoch marker


# ------------------------------------------------------------ the loop's options for chapters 8+

def two_term_loss(model, batch):
    x, y = batch
    fit_term = ((model(x) - y) ** 2).mean()
    weight_term = 0.01 * (model.weight ** 2).sum()
    return fit_term + weight_term, {"fit": fit_term, "weight": weight_term}


def test_history_keeps_a_curve_per_loss_term():
    seed_everything(0)
    train, val, _ = split_dataset(make_regression(), seed=0)
    model = nn.Linear(3, 1)
    history = fit(model, two_term_loss, train, val, epochs=3, batch_size=32, lr=0.05, device="cpu", progress=False)
    assert set(history.train_terms) == set(history.val_terms) == {"fit", "weight"}
    assert all(len(curve) == 3 for curve in [*history.train_terms.values(), *history.val_terms.values()])
    # the terms add up to the loss, epoch by epoch (both are batch-size-weighted means)
    np.testing.assert_allclose(np.add(*history.train_terms.values()), history.train_loss, rtol=1e-6)
    np.testing.assert_allclose(np.add(*history.val_terms.values()), history.val_loss, rtol=1e-6)
    # the validation terms of the best (here: last, kept) model, by hand on the whole set
    x, y = val[:]
    with torch.no_grad():
        _, terms = two_term_loss(model, (x, y))
    np.testing.assert_allclose(history.val_terms["fit"][history.best_epoch - 1], float(terms["fit"]), rtol=1e-5)
    history.plot(terms=True)
    with pytest.raises(ValueError, match="terms must name"):
        history.plot(terms=["kl"])


@pytest.mark.parametrize("when,expected_halvings", [("batch", 3 * 10), ("epoch", 3)])
def test_scheduler_is_stepped_per_batch_or_per_epoch(when, expected_halvings):
    train, _, _ = split_dataset(make_regression(), seed=0)  # 320 items: 10 batches of 32
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    fit(model, mse_loss, train, epochs=3, batch_size=32, optimizer=optimizer, device="cpu", progress=False,
        scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5), scheduler_step=when)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5 ** expected_halvings)


def test_gradient_clipping_bounds_the_step():
    x = torch.randn(64, 3)
    model = nn.Linear(3, 1)
    before = torch.cat([p.detach().clone().ravel() for p in model.parameters()])

    def steep_loss(model, x):  # gradient norm in the thousands
        return 1000.0 * model(x).mean()

    fit(model, steep_loss, x, epochs=1, batch_size=64, optimizer=torch.optim.SGD(model.parameters(), lr=1.0),
        clip_grad_norm=0.5, device="cpu", progress=False)
    after = torch.cat([p.detach().ravel() for p in model.parameters()])
    assert float((after - before).norm()) == pytest.approx(0.5, rel=1e-5)  # lr 1: the step is the clipped gradient


def test_callbacks_see_every_epoch_and_can_stop_training():
    train, val, _ = split_dataset(make_regression(), seed=0)
    seen = []

    def record(epoch, model, history):
        seen.append((epoch, len(history.train_loss), len(history.val_loss)))

    def stop_after_two(epoch, model, history):
        return epoch == 2

    history = fit(nn.Linear(3, 1), mse_loss, train, val, epochs=10, batch_size=32, device="cpu", progress=False,
                  callbacks=[record, stop_after_two])
    assert seen == [(1, 1, 1), (2, 2, 2)]
    assert history.stopped_early and len(history.train_loss) == 2 and history.best_epoch in (1, 2)


def test_training_reads_the_loss_once_per_epoch_not_once_per_step(monkeypatch):
    # Reading a tensor's value (float(), .item()) makes a GPU wait for its queue; fit must not do it per step.
    reads = []
    for name in ("__float__", "item"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, _o=original: reads.append(1) or _o(self))
    train, _, _ = split_dataset(make_regression(), seed=0)
    counts = []
    for batch_size in (32, 4):  # 10 and 80 steps per epoch
        reads.clear()
        model = nn.Linear(3, 1)  # SGD: Adam reads its step counter (a CPU tensor) on every step
        fit(model, two_term_loss, train, epochs=2, batch_size=batch_size, device="cpu", progress=False,
            optimizer=torch.optim.SGD(model.parameters(), lr=0.01))
        counts.append(len(reads))
    # per epoch: the loss and the two terms, and the DataLoader's shuffling seed; none per step
    assert counts == [2 * 4, 2 * 4], f"{counts} reads in 2 epochs of 10 and of 80 steps"


def test_bad_options_get_clear_errors():
    x = torch.randn(16, 3)
    model = nn.Linear(3, 3)
    with pytest.raises(ValueError, match="scheduler_step"):
        fit(model, lambda m, b: m(b).pow(2).mean(), x, epochs=1, scheduler_step="step", progress=False)
    with pytest.raises(ValueError, match="clip_grad_norm"):
        fit(model, lambda m, b: m(b).pow(2).mean(), x, epochs=1, clip_grad_norm=-1.0, progress=False)
    with pytest.raises(TypeError, match="terms a dict"):
        fit(model, lambda m, b: (m(b).pow(2).mean(), [1.0]), x, epochs=1, progress=False)
    with pytest.raises(ValueError, match="loss term 'kl' must be a scalar"):
        fit(model, lambda m, b: (m(b).pow(2).mean(), {"kl": m(b)}), x, epochs=1, progress=False)
    with pytest.raises(TypeError, match="callbacks"):
        fit(model, lambda m, b: m(b).pow(2).mean(), x, epochs=1, callbacks=[3], progress=False)
