"""Our Sammon's map beside SciPy's L-BFGS-B on the same objective, in one run.

Data: iris (150 x 4, its one duplicate flower dropped) and scikit-learn's
digits (1797 x 64). Both runs start from the same PCA map and minimise the same
stress E = (1 / sum d*) sum_{i<j} (d*_ij - d_ij)^2 / d*_ij:

- ``ours``: :func:`course_lib.sammon.sammon` (L-BFGS in PyTorch, autograd
  through ``torch.pdist``, on ``--device``, float64);
- ``scipy``: ``scipy.optimize.minimize(method="L-BFGS-B")`` with the stress and
  Sammon's closed-form gradient written in NumPy on SciPy's ``pdist``.

Reported: final stress, wall time, iterations, and the ratios ours / SciPy.
The issue's target: stress 0.1167 or lower on digits in under 40 s.

    python benchmarks/bench_sammon.py            # iris and full digits
    python benchmarks/bench_sammon.py --quick    # iris and 500 digits: a smoke run

Results are printed and written to benchmarks/results/sammon.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import scipy
import torch
from scipy.optimize import minimize
from scipy.spatial.distance import pdist, squareform

from course_lib import data, get_device
from course_lib.sammon import drop_duplicates, sammon

TARGET_STRESS, TARGET_SECONDS = 0.1167, 40.0


def pca_start(X):
    Xc = X - X.mean(axis=0)
    U, s, _ = np.linalg.svd(Xc, full_matrices=False)
    return U[:, :2] * s[:2]


def scipy_sammon(X, max_iter):
    """SciPy's L-BFGS-B on the stress with Sammon's closed-form gradient; (stress, iterations)."""
    Y0 = pca_start(X)
    D_star = squareform(pdist(X))
    c = D_star.sum() / 2
    np.fill_diagonal(D_star, 1.0)  # the diagonal (i = j) is not a pair: its weight is zeroed below
    iu = np.triu_indices(len(X), 1)

    def stress_and_grad(y):
        Y = y.reshape(Y0.shape)
        D = squareform(pdist(Y))
        np.fill_diagonal(D, 1.0)
        A = (D_star - D) / (D_star * D)
        np.fill_diagonal(A, 0.0)
        stress = ((D_star - D) ** 2 / D_star)[iu].sum() / c
        return stress, (-2.0 / c * (A.sum(1)[:, None] * Y - A @ Y)).ravel()

    # ftol: stop when an iteration lowers E by less than 1e-7 of its value, as ours does.
    res = minimize(stress_and_grad, Y0.ravel(), jac=True, method="L-BFGS-B",
                   options=dict(maxiter=max_iter, ftol=1e-7, gtol=0.0))
    return float(res.fun), int(res.nit)


def timed(run):
    start = time.perf_counter()
    out = run()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="iris and 500 digits: a smoke run")
    parser.add_argument("--device", default=None, help="device for ours (default: course_lib.get_device())")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for both: torch's and NumPy's BLAS (default: each library's choice)")
    parser.add_argument("--max-iter", type=int, default=500)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    device = torch.device(args.device) if args.device else get_device()

    iris, _ = drop_duplicates(data.load_iris().X.astype(np.float64))
    digits = data.load_digits().X.astype(np.float64)
    if args.quick:
        digits = digits[:500]
    sets = {"iris": iris, "digits": digits}
    print(f"ours on {device}, {torch.get_num_threads()} torch threads, at most {args.max_iter} iterations")
    sammon(iris[:20], max_iter=2, device=device)  # warm-up: first calls pay for allocations

    rows = []
    print(f"{'data':<8}{'n':>6}{'ours E':>11}{'scipy E':>11}{'E ratio':>9}{'ours s':>9}{'scipy s':>9}"
          f"{'s ratio':>9}{'ours it':>9}{'scipy it':>9}")
    for name, X in sets.items():
        ours, ours_s = timed(lambda: sammon(X, max_iter=args.max_iter, device=device))
        (ref_stress, ref_iter), ref_s = timed(lambda: scipy_sammon(X, args.max_iter))
        row = dict(data=name, n=len(X), ours_stress=ours.stress, scipy_stress=ref_stress,
                   stress_ratio=ours.stress / ref_stress, ours_seconds=ours_s, scipy_seconds=ref_s,
                   time_ratio=ours_s / ref_s, ours_iterations=ours.n_iter, scipy_iterations=ref_iter)
        rows.append(row)
        print(f"{name:<8}{len(X):>6}{ours.stress:>11.5f}{ref_stress:>11.5f}{row['stress_ratio']:>9.4f}"
              f"{ours_s:>9.2f}{ref_s:>9.2f}{row['time_ratio']:>9.2f}{ours.n_iter:>9}{ref_iter:>9}")

    digits_row = rows[-1]
    met = digits_row["ours_stress"] <= TARGET_STRESS and digits_row["ours_seconds"] < TARGET_SECONDS
    print(f"target: digits stress <= {TARGET_STRESS} in < {TARGET_SECONDS:g} s: "
          f"{digits_row['ours_stress']:.5f} in {digits_row['ours_seconds']:.1f} s, "
          f"{'met' if met else 'NOT met'}{' (quick run: 500 digits only)' if args.quick else ''}")

    out = Path(__file__).parent / "results" / ("sammon-quick.json" if args.quick else "sammon.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(device=str(device), threads=torch.get_num_threads(), max_iter=args.max_iter,
                torch=torch.__version__, scipy=scipy.__version__, numpy=np.__version__,
                machine=platform.machine(), processor=platform.processor())
    out.write_text(json.dumps(dict(meta=meta, rows=rows, target=dict(stress=TARGET_STRESS, seconds=TARGET_SECONDS,
                                                                     met=bool(met), quick=args.quick)), indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
