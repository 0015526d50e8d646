"""The masked autoencoder: what skipping the hidden patches saves, and what pre-training buys.

Two measurements, side by side in one run:

1. **Throughput.** Patches per second of MAE pre-training (forward, backward,
   Adam) when the encoder sees only the visible patches (MAE), and when it
   processes every position with a mask token in the hidden ones (as BEiT and
   SimMIM do); same model sizes, same decoder, same batch. The ratio is the
   compute that masking saves.
2. **Accuracy for a fixed CPU budget.** MAE pre-training on unlabelled
   Fashion-MNIST for ``--pretrain-s`` seconds, then a linear probe of the frozen
   encoder and fine-tuning of the whole encoder for ``--finetune-s`` seconds,
   against the same ViT trained on the labels from scratch for the **whole**
   budget (pre-training plus fine-tuning time). Training stops at the end of
   the first epoch past its budget, so budgets are met to within one epoch.

For scale (not reachable on a CPU): on CIFAR-10 a ViT-Tiny MAE fine-tunes to
about 89.8% against 74.1% from scratch (IcarusWizard/MAE), and Keras' MAE
example reports a 47.9% linear probe.

    python benchmarks/bench_masked.py                       # the default budget
    python benchmarks/bench_masked.py --pretrain-s 60 --finetune-s 30 --n 5000

Results are printed and written to benchmarks/results/masked.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from course_lib import data, limit_cpu_threads, seed_everything
from course_lib.masked import (MaskedAutoencoder, ViTClassifier, ViTEncoder, accuracy, classification_loss,
                               encode_features, mae_loss_fn, seconds_per_step)
from course_lib.metrics import linear_probe
from course_lib.training import fit, split_dataset

ENCODER = dict(patch_size=7, dim=64, depth=4, heads=4)   # the chapter's tiny ViT


def new_mae(mask_ratio: float, skip_masked: bool = True) -> MaskedAutoencoder:
    return MaskedAutoencoder(ViTEncoder(**ENCODER), decoder_dim=32, decoder_depth=1, mask_ratio=mask_ratio,
                             skip_masked=skip_masked)


def throughput(batch_size: int, steps: int) -> list:
    """Patches per second of a pre-training step, with and without skipping hidden patches."""
    images = torch.rand(batch_size, 1, 28, 28)
    rows = []
    for ratio in (0.75, 0.9):
        per_s = {}
        for skip in (True, False):
            seed_everything(0)
            model = new_mae(ratio, skip)
            seconds = seconds_per_step(model, mae_loss_fn(), images, steps=steps)
            per_s[skip] = batch_size * model.encoder.num_patches / seconds
        rows.append({"mask_ratio": ratio, "patches_per_s_skip": per_s[True], "patches_per_s_all": per_s[False],
                     "speed_up": per_s[True] / per_s[False]})
    return rows


def stop_after(seconds: float):
    """A ``fit`` callback that ends training at the first epoch end past ``seconds``."""
    start = time.perf_counter()
    return lambda epoch, model, history: time.perf_counter() - start > seconds


def train_for(model, loss_fn, train, val, seconds, score_fn=None, lr=2e-3):
    start = time.perf_counter()
    history = fit(model, loss_fn, train, val, epochs=1000, batch_size=256, lr=lr, device="cpu",
                  score_fn=score_fn, higher_is_better=score_fn is not None, progress=False,
                  callbacks=stop_after(seconds))
    return len(history.train_loss), time.perf_counter() - start


def budget_comparison(n: int, pretrain_s: float, finetune_s: float) -> dict:
    train = data.load_fashion_mnist("train", n=n, seed=0)
    test = data.load_fashion_mnist("test", n=10000, seed=0)
    X, y = torch.from_numpy(train.X), torch.from_numpy(train.y)
    X_test, y_test = torch.from_numpy(test.X), torch.from_numpy(test.y)
    unlabelled, unlabelled_val, _ = split_dataset(X, (0.95, 0.05, 0.0), seed=0)
    labelled, labelled_val, _ = split_dataset(torch.utils.data.TensorDataset(X, y), (0.9, 0.1, 0.0), seed=0)
    X_val, y_val = X[labelled_val.indices], y[labelled_val.indices]
    val_accuracy = lambda model: accuracy(model, X_val, y_val)  # noqa: E731

    seed_everything(0)
    mae = new_mae(0.75)
    pre_epochs, pre_s = train_for(mae, mae_loss_fn(), unlabelled, unlabelled_val, pretrain_s)
    probe = linear_probe(encode_features(mae.encoder, X), y, encode_features(mae.encoder, X_test), y_test)
    seed_everything(1)
    random_encoder = ViTEncoder(**ENCODER)  # what the architecture gives without training
    random_probe = linear_probe(encode_features(random_encoder, X), y, encode_features(random_encoder, X_test), y_test)
    finetuned = ViTClassifier(mae.encoder)
    ft_epochs, ft_s = train_for(finetuned, classification_loss, labelled, labelled_val, finetune_s, val_accuracy, lr=1e-3)
    seed_everything(1)
    scratch = ViTClassifier(ViTEncoder(**ENCODER))
    sc_epochs, sc_s = train_for(scratch, classification_loss, labelled, labelled_val, pre_s + ft_s, val_accuracy, lr=1e-3)
    return {"n_train": n, "pretrain": {"epochs": pre_epochs, "seconds": pre_s},
            "linear_probe_mae": probe, "linear_probe_random_encoder": random_probe,
            "finetune": {"epochs": ft_epochs, "seconds": ft_s, "test_accuracy": accuracy(finetuned, X_test, y_test)},
            "scratch": {"epochs": sc_epochs, "seconds": sc_s, "test_accuracy": accuracy(scratch, X_test, y_test)}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20000, help="Fashion-MNIST training images")
    parser.add_argument("--pretrain-s", type=float, default=120.0, help="MAE pre-training budget (s)")
    parser.add_argument("--finetune-s", type=float, default=60.0, help="fine-tuning budget (s)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per throughput measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: one on 2 cores)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    else:
        limit_cpu_threads()

    results = {"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
               "encoder": ENCODER, "throughput": throughput(args.batch_size, args.steps)}
    for row in results["throughput"]:
        print(f"mask ratio {row['mask_ratio']:.0%}: {row['patches_per_s_skip']:,.0f} patches/s when the encoder "
              f"skips hidden patches, {row['patches_per_s_all']:,.0f} when it sees all: {row['speed_up']:.2f}x")
    results["budget"] = budget = budget_comparison(args.n, args.pretrain_s, args.finetune_s)
    print(f"MAE pre-training {budget['pretrain']['seconds']:.0f} s ({budget['pretrain']['epochs']} epochs): "
          f"linear probe {budget['linear_probe_mae']:.3f} (random encoder {budget['linear_probe_random_encoder']:.3f})")
    print(f"+ fine-tuning {budget['finetune']['seconds']:.0f} s: test accuracy {budget['finetune']['test_accuracy']:.3f}")
    print(f"same ViT from scratch, {budget['scratch']['seconds']:.0f} s ({budget['scratch']['epochs']} epochs): "
          f"test accuracy {budget['scratch']['test_accuracy']:.3f}")
    out = Path(__file__).parent / "results" / "masked.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
