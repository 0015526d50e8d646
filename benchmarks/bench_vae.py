"""The VAE of chapter 8 beside an independent implementation of the same recipe.

Recipe (PyTorch's ``examples/vae``, after Kingma and Welling): a 784-400-20 MLP encoder
with two heads (mu, log sigma^2), a 20-400-784 decoder, a Bernoulli likelihood, Adam
with learning rate 1e-3, batch size 128. Data: Fashion-MNIST, binarised once with a
fixed seed (as in the chapter), all 60 000 training images.

- ``ours``: ``course_lib.vae.VAE`` trained by ``course_lib.training.fit`` with
  ``vae_loss_fn()``, scored by ``evaluate_elbo`` and ``iwae_bound``;
- ``reference``: the example's model, loss and loop written out below, with none of
  course_lib's code, scored by its own ELBO and IWAE estimators built on
  ``torch.distributions``.

Both are trained for the same number of epochs and scored on the same fixed subset of
test images (1 000 on a CPU, all 10 000 on a GPU): the test negative ELBO (one sample,
nats per image) and the IWAE estimate -L_k at k = 5000. The claim to check: ours is within
1% of the reference. As a cross-check, each model is also scored by the other's
estimator. Results are printed and written to benchmarks/results/vae.json.

    python benchmarks/bench_vae.py                   # 10 epochs
    python benchmarks/bench_vae.py --epochs 5 --threads 1
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Normal

from course_lib import get_device, seed_everything
from course_lib.data import load_fashion_mnist
from course_lib.training import fit
from course_lib.vae import VAE, binarize, evaluate_elbo, iwae_bound, vae_loss_fn


# ------------------------------------------------------- the reference, written out
class ReferenceVAE(nn.Module):
    """The model of PyTorch's VAE example."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def decode_logits(self, z):
        return self.fc4(F.relu(self.fc3(z)))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        std = torch.exp(0.5 * logvar)
        z = mu + torch.randn_like(std) * std
        return torch.sigmoid(self.decode_logits(z)), mu, logvar


def reference_loss(recon_x, x, mu, logvar):
    """The example's loss: BCE summed over pixels and batch, plus the closed-form KL."""
    bce = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def train_reference(X, epochs, device, seed):
    torch.manual_seed(seed)
    model = ReferenceVAE().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(X), generator=generator)
        for start in range(0, len(X), 128):
            x = X[order[start:start + 128]].to(device)
            optimizer.zero_grad()
            recon_x, mu, logvar = model(x)
            loss = reference_loss(recon_x, x, mu, logvar)
            loss.backward()
            optimizer.step()
    return model.eval()


# --------------------------------------- an independent estimator, on torch.distributions
@torch.no_grad()
def reference_log_weights(encode, decode_logits, x, k, seed, chunk=50):
    """log p(x, z_s) - log q(z_s|x) for z_s ~ q(z|x), shape (n, k), from torch.distributions."""
    gen = torch.Generator(device=x.device).manual_seed(seed)
    mu, logvar = encode(x)
    q = Normal(mu, torch.exp(0.5 * logvar))
    prior = Normal(torch.zeros_like(mu), torch.ones_like(mu))
    out = []
    for _ in range(0, k, chunk):
        z = mu + torch.exp(0.5 * logvar) * torch.randn((chunk, *mu.shape), generator=gen, device=x.device)
        log_px_z = Bernoulli(logits=decode_logits(z)).log_prob(x).sum(-1)
        out.append((log_px_z + prior.log_prob(z).sum(-1) - q.log_prob(z).sum(-1)).T)
    return torch.cat(out, dim=1)[:, :k]


def reference_scores(encode, decode_logits, x, k, seed):
    """(-ELBO with one sample, -L_k), means over x, in nats."""
    nelbo = -reference_log_weights(encode, decode_logits, x, 1, seed, chunk=1).mean()
    log_w = reference_log_weights(encode, decode_logits, x, k, seed + 1)
    return float(nelbo), float(-(torch.logsumexp(log_w, dim=1) - math.log(k)).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--k", type=int, default=5000)
    parser.add_argument("--n-test", type=int, default=None, help="test images (default: 1000 on CPU, 10000 on GPU)")
    parser.add_argument("--n-train", type=int, default=None, help="training images (default: all 60 000)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = get_device()
    n_test = args.n_test or (1000 if device.type == "cpu" else 10000)
    X = binarize(torch.from_numpy(load_fashion_mnist("train").X).flatten(1), seed=0)[:args.n_train]
    X_test = binarize(torch.from_numpy(load_fashion_mnist("test").X).flatten(1), seed=1)[:n_test].to(device)
    print(f"Fashion-MNIST binarised: {len(X)} training images, {n_test} test images; {args.epochs} epochs; "
          f"device {device}, {torch.get_num_threads()} threads")

    # warm-up: the first call of fit imports its progress bar and allocates; time only the training itself
    fit(VAE(784, 400, 20), vae_loss_fn(), X[:256], epochs=1, device=device, progress=False)
    seed_everything(args.seed)
    start = time.perf_counter()
    ours = VAE(784, 400, 20)
    fit(ours, vae_loss_fn(), X, epochs=args.epochs, batch_size=128, lr=1e-3, device=device, seed=args.seed, progress=False)
    time_ours = time.perf_counter() - start
    start = time.perf_counter()
    reference = train_reference(X, args.epochs, device, args.seed)
    time_reference = time.perf_counter() - start

    results = {"epochs": args.epochs, "k": args.k, "n_test": n_test, "device": str(device),
               "train_seconds": {"ours": time_ours, "reference": time_reference}}
    with torch.no_grad():
        ours.eval()
        gen = torch.Generator().manual_seed(args.seed)
        results["ours"] = {"negative_elbo": evaluate_elbo(ours, X_test)["negative_elbo"],
                           "iwae": float(-torch.cat([iwae_bound(ours, X_test[i:i + 100], args.k, generator=gen)
                                                     for i in range(0, n_test, 100)]).mean())}
        nelbo, iwae = reference_scores(reference.encode, reference.decode_logits, X_test, args.k, args.seed)
        results["reference"] = {"negative_elbo": nelbo, "iwae": iwae}
        # cross-check of the estimators: our model scored by the reference's, on a smaller k
        k_small = min(args.k, 500)
        results["cross_check"] = {
            "k": k_small,
            "ours_by_course_lib": float(-torch.cat([iwae_bound(ours, X_test[i:i + 100], k_small, generator=gen)
                                                    for i in range(0, n_test, 100)]).mean()),
            "ours_by_reference_estimator": reference_scores(ours.encode, ours.decode, X_test, k_small, args.seed)[1]}

    for name in ("ours", "reference"):
        r = results[name]
        print(f"{name:10s} test -ELBO {r['negative_elbo']:8.2f} nats | -L_{args.k} {r['iwae']:8.2f} nats | "
              f"training {results['train_seconds'][name]:6.1f} s")
    ratios = {key: results["ours"][key] / results["reference"][key] for key in ("negative_elbo", "iwae")}
    results["ratio_ours_to_reference"] = ratios
    print("ratio ours / reference: " + ", ".join(f"{k} {v:.4f}" for k, v in ratios.items()) +
          f"; within 1%: {all(abs(v - 1) < 0.01 for v in ratios.values())}")
    c = results["cross_check"]
    print(f"cross-check, our model at k={c['k']}: course_lib {c['ours_by_course_lib']:.2f}, "
          f"reference estimator {c['ours_by_reference_estimator']:.2f} nats")
    results["machine"] = platform.platform()
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "vae.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
