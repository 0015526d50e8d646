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
