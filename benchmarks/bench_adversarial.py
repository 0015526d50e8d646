"""GAN against ALI: mode coverage on the 25-Gaussian grid, and encoder features on Fashion-MNIST.

1. Mode coverage: the GAN and ALI of chapter 10 (MLPs of 2 x 128 units, a 2-D prior, the same
   settings for both) trained from ``--seeds`` seeds on the grid mixture (std 0.05); for each
   run, the modes covered and the high-quality fraction of 10,000 samples
   (:func:`course_lib.metrics.mode_coverage`: nearest centre, within 3 std, >= 20 samples).
   Mean and standard deviation over the seeds, side by side.
2. Features: the linear-probe (and 10-NN) test accuracy of ALI's encoder mu(x) on Fashion-MNIST,
   against the chapter 7 autoencoder, the chapter 8 VAE and a random
   encoder of ALI's architecture, all with a 32-D code and 2 x 256 hidden units.

    python benchmarks/bench_adversarial.py                # 5 seeds, 15,000 training images
    python benchmarks/bench_adversarial.py --seeds 10 --n-train 60000
    python benchmarks/bench_adversarial.py --part features    # or --part grid: one half only

Results are printed and written to benchmarks/results/adversarial.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from course_lib import data, limit_cpu_threads, seed_everything
from course_lib.adversarial import fit_adversarial, loss_fns, make_ali, make_gan
from course_lib.autoencoders import MLPAutoencoder
from course_lib.losses import autoencoder_loss_fn
from course_lib.metrics import knn_accuracy, linear_probe, mode_coverage
from course_lib.training import fit
from course_lib.utils import get_device

STD = 0.05


def grid_runs(seeds: int, epochs: int, device) -> dict:
    grid = torch.from_numpy(data.load_gaussian_grid(20000, std=STD, seed=0).X)
    centres = data.gaussian_grid_centres()
    results = {"GAN": [], "ALI": []}
    for seed in range(seeds):
        for name, make in (("GAN", make_gan), ("ALI", make_ali)):
            seed_everything(seed)
            model = make(2, 2)
            start = time.process_time()
            fit_adversarial(model, *loss_fns(model), grid, epochs=epochs, batch_size=256, lr=1e-3, device=device,
                            seed=seed, progress=False)
            cov = mode_coverage(model.sample(10000).cpu().numpy(), centres, STD)
            results[name].append({"seed": seed, "modes_covered": cov.modes_covered,
                                  "high_quality_fraction": cov.high_quality_fraction,
                                  "cpu_seconds": time.process_time() - start})
            print(f"{name} seed {seed}: {cov.modes_covered} modes, {cov.high_quality_fraction:.1%} high-quality",
                  flush=True)
    return results


def vae_encoder(X, latent_dim, hidden, epochs, device):
    """The chapter 8 VAE's mean mu(x) (one hidden layer, of ALI's first hidden size)."""
    from course_lib.vae import VAE, vae_loss_fn

    seed_everything(0)
    model = VAE(784, hidden[0], latent_dim)
    fit(model, vae_loss_fn(), X, epochs=epochs, batch_size=128, lr=1e-3, device=device, progress=False)
    model.eval()
    return lambda x: model.encode(x)[0]


def feature_runs(n_train: int, n_test: int, epochs: int, device) -> dict:
    train = data.load_fashion_mnist("train", n=n_train, seed=0, flatten=True)
    test = data.load_fashion_mnist("test", n=n_test, seed=0, flatten=True)
    X, X_test = torch.from_numpy(train.X), torch.from_numpy(test.X)
    latent_dim, hidden = 32, (256, 256)
    seed_everything(0)
    ali = make_ali(784, latent_dim, hidden, output="sigmoid", dropout=0.2)
    fit_adversarial(ali, *loss_fns(ali), X, epochs=epochs, batch_size=128, lr=2e-4, device=device, progress=False)
    seed_everything(0)
    autoencoder = MLPAutoencoder(784, hidden, latent_dim, sigmoid_output=True)
    fit(autoencoder, autoencoder_loss_fn(), X, epochs=epochs, batch_size=128, lr=1e-3, device=device, progress=False)
    autoencoder.eval()
    seed_everything(1)
    random_model = make_ali(784, latent_dim, hidden, output="sigmoid").to(device)
    encoders = {"ALI": ali.encode, "autoencoder": autoencoder.encode, "random encoder": random_model.encode}
    encoders["VAE"] = vae_encoder(X, latent_dim, hidden, epochs, device)

    @torch.no_grad()
    def features(encode, images):
        return torch.cat([encode(b.to(device)).cpu() for b in images.split(2048)]).numpy()

    scores = {}
    for name, encode in encoders.items():
        F_train, F_test = features(encode, X), features(encode, X_test)
        scores[name] = {"linear_probe": linear_probe(F_train, train.y, F_test, test.y),
                        "knn10": knn_accuracy(F_train, train.y, 10, F_test, test.y)}
        print(f"{name:>15}: linear probe {scores[name]['linear_probe']:.3f}, 10-NN {scores[name]['knn10']:.3f}",
              flush=True)
    return scores


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--grid-epochs", type=int, default=60)
    parser.add_argument("--n-train", type=int, default=15000)
    parser.add_argument("--n-test", type=int, default=5000)
    parser.add_argument("--image-epochs", type=int, default=15)
    parser.add_argument("--part", choices=["all", "grid", "features"], default="all")
    args = parser.parse_args(argv)
    limit_cpu_threads()
    device = get_device()
    start = time.perf_counter()
    results = {"args": vars(args), "device": str(device), "machine": platform.machine()}
    if args.part in ("all", "grid"):
        grid = grid_runs(args.seeds, args.grid_epochs, device)
        print("\nmode coverage over", args.seeds, "seeds (mean ± std):")
        summary = {}
        for name, runs in grid.items():
            modes = np.array([r["modes_covered"] for r in runs])
            quality = np.array([r["high_quality_fraction"] for r in runs])
            summary[name] = {"modes_mean": modes.mean(), "modes_std": modes.std(ddof=1), "hq_mean": quality.mean()}
            print(f"  {name}: {modes.mean():.1f} ± {modes.std(ddof=1):.1f} modes of 25, high-quality {quality.mean():.1%}")
        ratio = summary["ALI"]["modes_mean"] / max(summary["GAN"]["modes_mean"], 1e-9)
        print(f"  ratio ALI / GAN of mean modes covered: {ratio:.2f}")
        results.update(grid_runs=grid, grid_summary=summary)
    if args.part in ("all", "features"):
        scores = feature_runs(args.n_train, args.n_test, args.image_epochs, device)
        ref = scores["random encoder"]["linear_probe"]
        for name, s in scores.items():
            print(f"  linear probe {name} / random encoder: {s['linear_probe'] / ref:.3f}")
        results["features"] = scores
    results["wall_seconds"] = time.perf_counter() - start
    out = Path(__file__).parent / "results" / f"adversarial{'' if args.part == 'all' else '_' + args.part}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"written {out} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
