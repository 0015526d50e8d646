"""Chapter 1's methods beside scikit-learn's, in one run: wall time and agreement.

- PCA (``course_lib.pca.PCA``) vs ``sklearn.decomposition.PCA(svd_solver="full")``
- classical MDS (``course_lib.mds.classical_mds``) vs ``sklearn.manifold.ClassicalMDS``
- Laplacian eigenmaps (``course_lib.eigenmaps.laplacian_eigenmaps``) vs
  ``sklearn.manifold.SpectralEmbedding`` on the same heat-kernel graph

Data: digits (1797 x 64), pbmc68k_reduced (700 x 765), a swiss roll of 2000 points.
Each timing is the best of ``--repeats`` runs. Reported: seconds, the ratio
ours / scikit-learn, and the largest sign-aligned difference between the results.

    python benchmarks/bench_classical.py [--quick]

Results are printed and written to benchmarks/results/classical.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import sklearn
from sklearn.decomposition import PCA as SkPCA
from sklearn.manifold import ClassicalMDS, SpectralEmbedding

from course_lib import data
from course_lib.eigenmaps import heat_kernel_weights, laplacian_eigenmaps
from course_lib.mds import classical_mds, squared_distances
from course_lib.pca import PCA


def best_time(fn, repeats):
    best, result = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def aligned_difference(A, B):
    A = A * np.sign(np.sum(A * B, axis=0))
    return float(np.abs(A - B).max())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller data, one repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    n_roll = 600 if args.quick else 2000

    digits = data.load_digits().X.astype(np.float64)
    cells = data.load_pbmc68k_reduced("scaled").X.astype(np.float64)
    roll = data.load_swiss_roll(n_roll, seed=0).X.astype(np.float64)
    W = heat_kernel_weights(roll, n_neighbors=10)

    cases = {
        "PCA digits (k=10)": (lambda: PCA(10).fit_transform(digits),
                              lambda: SkPCA(10, svd_solver="full").fit_transform(digits)),
        "PCA pbmc (k=50)": (lambda: PCA(50).fit_transform(cells),
                            lambda: SkPCA(50, svd_solver="full").fit_transform(cells)),
        "cMDS digits (k=2)": (lambda: classical_mds(squared_distances(digits), 2, squared=True),
                              lambda: ClassicalMDS(2).fit(digits).embedding_),
        f"eigenmaps swiss roll n={n_roll} (k=2)": (
            lambda: laplacian_eigenmaps(roll, 2, n_neighbors=10),
            lambda: SpectralEmbedding(2, affinity="precomputed", random_state=0).fit_transform(W)),
    }
    rows = []
    for name, (ours, reference) in cases.items():
        t_ours, E_ours = best_time(ours, repeats)
        t_ref, E_ref = best_time(reference, repeats)
        rows.append({"case": name, "ours_s": t_ours, "sklearn_s": t_ref, "ratio": t_ours / t_ref,
                     "max_abs_difference": aligned_difference(E_ours, E_ref)})

    print(f"{'case':40s} {'ours s':>8s} {'sklearn s':>10s} {'ratio':>7s} {'max |diff|':>11s}")
    for r in rows:
        print(f"{r['case']:40s} {r['ours_s']:8.3f} {r['sklearn_s']:10.3f} {r['ratio']:7.2f} "
              f"{r['max_abs_difference']:11.2e}")
    print("(eigenmaps: ours builds the graph itself; sklearn is given the same graph precomputed)")
    out = Path(__file__).parent / "results" / "classical.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"quick": args.quick, "repeats": repeats, "python": platform.python_version(),
                               "sklearn": sklearn.__version__, "rows": rows}, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
