"""VQ-VAE on Fashion-MNIST: reconstruction error and codebook usage against the codebook size K.

For each K and each way of learning the codebook (by the loss, by moving averages, by moving
averages with dead codes revived), one :class:`course_lib.vqvae.VQVAE` is trained with
:func:`course_lib.training.fit` and scored on the test set by

- the reconstruction error normalised by the data variance,
  sum_i ||x_i - x_hat_i||^2 / sum_i ||x_i - x_bar||^2 (0: perfect, 1: the mean image);
- the codebook perplexity exp(H(p)) of the code frequencies, and that perplexity over K.

Side by side, in the same run: an independent VQ-VAE written here with a bare PyTorch loop (its
own quantiser with ``torch.cdist``, its own straight-through estimator and loss, the same layers and
the same initial weights, Adam at the same learning rate) at one K, with a codebook learnt by the
loss. The ratio of the two test errors says whether course_lib's model and loss train as they should.

    python benchmarks/bench_vqvae.py                       # 12 000 training images, 5 epochs
    python benchmarks/bench_vqvae.py --n 60000 --epochs 20 --ks 16 64 256 1024   # on a GPU

Results are printed and written to benchmarks/results/vqvae.json.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import time
from pathlib import Path

import torch

from course_lib import data, get_device, seed_everything
from course_lib.metrics import normalised_reconstruction_error
from course_lib.training import fit
from course_lib.vqvae import VQVAE, codebook_perplexity, encode_codes, reconstruct, vqvae_loss_fn

CODEBOOKS = {"loss": dict(ema=False), "EMA": dict(ema=True), "EMA+revival": dict(ema=True, dead_code_threshold=1.0)}


def score(model, X_test, K):
    codes = encode_codes(model, X_test)
    return dict(error=normalised_reconstruction_error(X_test, reconstruct(model, X_test)),
                perplexity=codebook_perplexity(codes, K), used=int(len(codes.unique())))


def reference_run(model: VQVAE, X, X_test, epochs, lr, batch_size, device, beta=0.25, seed=0):
    """An independent VQ-VAE training loop: only the layers (and their initial weights) come from ``model``."""
    encoder, decoder = model.encoder.to(device), model.decoder.to(device)
    codebook = torch.nn.Parameter(model.quantizer.codebook.detach().clone().to(device))
    params = [*encoder.parameters(), *decoder.parameters(), codebook]
    optimizer = torch.optim.Adam(params, lr=lr)
    generator = torch.Generator().manual_seed(seed)

    def forward(x):
        z = encoder(x)                                                   # (n, D, 7, 7)
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        idx = torch.cdist(flat, codebook).argmin(dim=1)
        q = codebook[idx].reshape(z.shape[0], 7, 7, -1).permute(0, 3, 1, 2)
        return decoder(z + (q - z).detach()), z, q, idx

    for _ in range(epochs):
        for batch in torch.randperm(len(X), generator=generator).split(batch_size):
            x = X[batch].to(device)
            x_hat, z, q, _ = forward(x)
            n = len(x)
            loss = (torch.sum((x_hat - x) ** 2) + torch.sum((q - z.detach()) ** 2)
                    + beta * torch.sum((z - q.detach()) ** 2)) / n
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        parts = [forward(X_test[i:i + 1000].to(device)) for i in range(0, len(X_test), 1000)]
    x_hat = torch.cat([p[0].cpu() for p in parts])
    codes = torch.cat([p[3].cpu() for p in parts])
    return dict(error=normalised_reconstruction_error(X_test, x_hat), perplexity=codebook_perplexity(codes, len(codebook)),
                used=int(len(codes.unique())))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=12_000, help="training images")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--ks", type=int, nargs="+", default=[8, 32, 128, 512])
    parser.add_argument("--reference-k", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lr", type=float, default=2e-3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = get_device()
    X = torch.from_numpy(data.load_fashion_mnist("train", n=args.n, seed=0).X)
    X_test = torch.from_numpy(data.load_fashion_mnist("test").X)
    rows = []
    print(f"{args.n} training images, {args.epochs} epochs, device {device}; test set of {len(X_test)}")
    print(f"{'K':>5s} {'codebook':12s} {'bits':>5s} {'error/var':>10s} {'perplexity':>11s} {'PP/K':>6s} {'used':>5s} {'s':>6s}")
    for K in args.ks:
        for name, options in CODEBOOKS.items():
            seed_everything(0)
            model = VQVAE(num_codes=K, code_dim=16, **options)
            start = time.perf_counter()
            fit(model, vqvae_loss_fn(), X, epochs=args.epochs, batch_size=128, lr=args.lr, device=device, progress=False)
            row = dict(K=K, codebook=name, bits=model.bits_per_image, seconds=time.perf_counter() - start,
                       **score(model, X_test, K))
            rows.append(row)
            print(f"{K:5d} {name:12s} {row['bits']:5.0f} {row['error']:10.4f} {row['perplexity']:11.1f} "
                  f"{row['perplexity'] / K:6.2f} {row['used']:5d} {row['seconds']:6.0f}", flush=True)

    K = args.reference_k
    seed_everything(0)
    model = VQVAE(num_codes=K, code_dim=16, ema=False)
    twin = copy.deepcopy(model)
    fit(model, vqvae_loss_fn(), X, epochs=args.epochs, batch_size=128, lr=args.lr, device=device, progress=False)
    ours = score(model, X_test, K)
    reference = reference_run(twin, X, X_test, args.epochs, args.lr, 128, device)
    ratio = ours["error"] / reference["error"]
    print(f"\nK = {K}, codebook learnt by the loss: course_lib error/var {ours['error']:.4f} (perplexity "
          f"{ours['perplexity']:.1f}), independent loop {reference['error']:.4f} (perplexity "
          f"{reference['perplexity']:.1f}); ratio {ratio:.3f}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "vqvae.json").write_text(json.dumps(dict(
        machine=platform.platform(), device=str(device), n_train=args.n, epochs=args.epochs, rows=rows,
        reference=dict(K=K, course_lib=ours, independent=reference, ratio=ratio)), indent=1))
    assert math.isfinite(ratio)


if __name__ == "__main__":
    main()
