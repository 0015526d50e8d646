"""Time per training epoch of every autoencoder of the chapter, at full size.

For each model the same epoch (same data, model, loss, batch size, optimizer)
is timed twice in one run:

- ``fit``: through the course's shared loop, :func:`course_lib.training.fit`;
- ``reference``: a bare PyTorch loop that slices mini-batches out of one
  shuffled tensor (no DataLoader, no validation, no bookkeeping).

The ratio fit / reference is the shared loop's overhead. The epoch time at full
size (60 000 Fashion-MNIST images) says how many epochs fit into the chapter's
3-minute budget per training cell. Epoch time is linear in the number of
samples, so ``--n`` smaller than 60 000 measures on a subset and scales up.

    python benchmarks/bench_autoencoders.py                 # full size
    python benchmarks/bench_autoencoders.py --n 10000       # quicker, scaled to 60 000
    python benchmarks/bench_autoencoders.py --models conv sparse-kl --threads 2

On a shared machine pass ``--threads 1``: two threads competing with another
busy process for the same two cores make these small models several times slower.

Results are printed and written to benchmarks/results/autoencoders.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from course_lib.autoencoders import (
    ContractiveAutoencoder,
    ConvAutoencoder,
    LinearAutoencoder,
    MLPAutoencoder,
    OvercompleteAutoencoder,
    SparseAutoencoder,
)
from course_lib.losses import (
    autoencoder_loss_fn,
    contractive_loss_fn,
    denoising_loss_fn,
    l1_sparse_loss_fn,
    salt_and_pepper,
    sparse_kl_loss_fn,
)
from course_lib.training import fit

FULL_SIZE = 60_000
WIDTHS = (16, 10, 14, 14, 9, 17)
BUDGET_S = 180.0

# The chapter's configurations: (model factory, loss function).
CONFIGS = {
    "mlp-2d": (lambda: MLPAutoencoder(784, (256, 64), 2, sigmoid_output=True), autoencoder_loss_fn()),
    "linear-k16": (lambda: LinearAutoencoder(784, 16), autoencoder_loss_fn()),
    "overcomplete-l1": (lambda: OvercompleteAutoencoder(784, 1024, sigmoid_output=True), l1_sparse_loss_fn(1e-3)),
    "sparse-kl": (lambda: SparseAutoencoder(784, (), 256, sigmoid_output=True), sparse_kl_loss_fn(0.05, 1.0)),
    "denoising": (
        lambda: MLPAutoencoder(784, (256,), 64, sigmoid_output=True),
        denoising_loss_fn(lambda x: salt_and_pepper(x, 0.2)),
    ),
    "contractive": (lambda: ContractiveAutoencoder(784, 64, sigmoid_output=True), contractive_loss_fn(0.1)),
    "conv": (lambda: ConvAutoencoder(code_dim=16, sigmoid_output=True), autoencoder_loss_fn()),
}


def load_images(n: int) -> tuple[torch.Tensor, str]:
    """Fashion-MNIST images (n, 1, 28, 28), or uniform noise of that shape if absent.

    The time of an epoch does not depend on the pixel values, so noise gives
    the same timings when the data set is missing.
    """
    try:
        from course_lib.data import load_fashion_mnist

        return torch.from_numpy(load_fashion_mnist("train", n=n).X), "fashion-mnist"
    except Exception as err:  # noqa: BLE001 - any failure to load falls back to noise
        print(f"Fashion-MNIST not available ({err}); timing on random images")
        return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)), "random"


def reference_epoch(model, loss_fn, X, batch_size, lr, seed):
    """One epoch of the plainest possible loop, for comparison with ``fit``."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(seed))
    model.train()
    for start in range(0, X.shape[0], batch_size):
        batch = X[order[start:start + batch_size]]
        loss = loss_fn(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def time_once(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=FULL_SIZE, help="training images to time on (scaled to 60 000)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=1, help="timed epochs per variant; the minimum is kept")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--models", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    X, source = load_images(args.n)
    scale = FULL_SIZE / X.shape[0]
    device = torch.device("cpu")
    print(f"{source}: {X.shape[0]} images, batch {args.batch_size}, {torch.get_num_threads()} threads, "
          f"epoch times scaled x{scale:.2f} to {FULL_SIZE}")
    header = ("model", "params", "fit s/epoch", "ref s/epoch", "fit/ref", "epochs in 3 min")
    print("".join(f"{h:<16}" if i == 0 else f"{h:>{w}}" for i, (h, w) in enumerate(zip(header, WIDTHS))))

    rows = []
    for name in args.models:
        make_model, loss_fn = CONFIGS[name]
        # Warm-up: the first pass pays for allocations and kernel selection.
        reference_epoch(make_model(), loss_fn, X[: 4 * args.batch_size], args.batch_size, 1e-3, 0)
        fit_s, ref_s = [], []
        for r in range(args.repeats):
            torch.manual_seed(r)
            model = make_model()
            fit_s.append(time_once(lambda: fit(model, loss_fn, X, epochs=1, batch_size=args.batch_size,
                                               lr=1e-3, device=device, seed=r, progress=False)))
            torch.manual_seed(r)
            model = make_model()
            ref_s.append(time_once(lambda: reference_epoch(model, loss_fn, X, args.batch_size, 1e-3, r)))
        fit_epoch, ref_epoch = min(fit_s) * scale, min(ref_s) * scale
        n_params = sum(p.numel() for p in model.parameters())
        row = dict(model=name, params=n_params, fit_s_per_epoch=fit_epoch, reference_s_per_epoch=ref_epoch,
                   ratio=fit_epoch / ref_epoch, epochs_in_budget=int(BUDGET_S // fit_epoch))
        rows.append(row)
        print(f"{name:<16}{n_params:>10,}{fit_epoch:>14.2f}{ref_epoch:>14.2f}{row['ratio']:>9.2f}"
              f"{row['epochs_in_budget']:>17}")

    out = Path(__file__).parent / "results" / "autoencoders.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(source=source, n_timed=int(X.shape[0]), scaled_to=FULL_SIZE, batch_size=args.batch_size,
                threads=torch.get_num_threads(), torch=torch.__version__, numpy=np.__version__,
                machine=platform.machine(), processor=platform.processor())
    out.write_text(json.dumps(dict(meta=meta, rows=rows), indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
