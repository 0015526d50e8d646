"""The self-supervised methods of chapter 11 side by side, after the same fixed CPU budget.

Each method trains the same encoder (``course_lib.contrastive.ConvEncoder``) on the same
unlabelled Fashion-MNIST images, with the same augmentations, batch size and optimizer,
for as many whole epochs as fit into ``--budget`` seconds of processor time (the epoch that
crosses the budget is finished). Processor time, not wall time, so that a machine shared with
other work gives every method the same budget; with one thread it is the wall time of a quiet machine. Then its frozen features are scored on the test images
by a linear probe and a 10-NN vote (``course_lib.metrics``), beside two baselines with the
same architecture: a supervised network trained with labels under the same budget, and
a random, untrained encoder. Throughput is training images per processor second (one image =
its two views, or one labelled image for the supervised network).

    python benchmarks/bench_contrastive.py                       # 60 processor seconds per method
    python benchmarks/bench_contrastive.py --budget 20 --n 2560  # quicker
    python benchmarks/bench_contrastive.py --methods SimCLR VICReg --threads 2

For scale (not reachable on a CPU): on CIFAR-10 with a ResNet-18 and 200 epochs, lightly's
benchmarks report k-NN accuracies of about 0.82-0.87 for these methods.

Results are printed and written to benchmarks/results/contrastive.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from course_lib import contrastive as C
from course_lib.data import load_fashion_mnist
from course_lib.training import fit
from course_lib.utils import seed_everything


def methods(augment):
    """name -> (model factory, loss function, whether batches carry labels)."""
    return {
        "SimCLR": (C.SiameseNetwork, C.simclr_loss_fn(augment, 0.5), False),
        "MoCo": (lambda: C.MoCo(C.SiameseNetwork(), queue_size=2048), C.moco_loss_fn(augment, 0.2), False),
        "SimSiam": (lambda: C.SiameseNetwork(predictor=C.ProjectionHead(64, 32, 64)), C.simsiam_loss_fn(augment),
                    False),
        "Barlow Twins": (C.SiameseNetwork, C.barlow_twins_loss_fn(augment), False),
        "VICReg": (C.SiameseNetwork, C.vicreg_loss_fn(augment), False),
        "supervised": (C.SupervisedNetwork, C.supervised_loss_fn(augment), True),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0, help="processor seconds of training per method")
    parser.add_argument("--n", type=int, default=5120, help="training images")
    parser.add_argument("--n-test", type=int, default=2000, help="test images")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--methods", nargs="*", default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 on a shared 2-core machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    train, test = load_fashion_mnist("train", n=args.n, seed=0), load_fashion_mnist("test", n=args.n_test, seed=0)
    X, y = torch.from_numpy(train.X), torch.from_numpy(train.y)
    X_test = torch.from_numpy(test.X)
    augment = C.Augment()
    chosen = methods(augment)
    names = args.methods or list(chosen)
    print(f"{len(X)} training, {len(X_test)} test images; budget {args.budget:.0f} processor s per method, "
          f"batch {args.batch_size}, {torch.get_num_threads()} thread(s)")
    print(f"{'method':14s} {'epochs':>6s} {'CPU s':>8s} {'images/s':>9s} {'linear probe':>13s} {'10-NN':>7s}")
    rows = []
    for name in names + ["random encoder"]:
        seed_everything(0)
        if name == "random encoder":
            model, seconds, n_epochs = C.SiameseNetwork(), 0.0, 0
        else:
            factory, loss_fn, labelled = chosen[name]
            model = factory()
            start = time.process_time()
            out_of_time = lambda epoch, m, h: time.process_time() - start > args.budget
            history = fit(model, loss_fn, torch.utils.data.TensorDataset(X, y) if labelled else X, epochs=1000,
                          batch_size=args.batch_size, device="cpu", progress=False, callbacks=out_of_time)
            seconds, n_epochs = time.process_time() - start, len(history.train_loss)
        scores = C.evaluate_representation(model, X, train.y, X_test, test.y)
        rate = n_epochs * len(X) / seconds if seconds else float("nan")
        rows.append(dict(method=name, epochs=n_epochs, processor_seconds=seconds, images_per_second=rate, **scores))
        print(f"{name:14s} {n_epochs:6d} {seconds:8.1f} {rate:9.0f} {scores['linear probe']:13.3f} "
              f"{scores['k-NN']:7.3f}")

    out = Path(__file__).parent / "results" / "contrastive.json"
    out.parent.mkdir(exist_ok=True)
    meta = dict(vars(args), machine=platform.machine(), processor=platform.processor(), torch=torch.__version__,
                numpy=np.__version__)
    out.write_text(json.dumps(dict(meta=meta, rows=rows), indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
