"""UMAP against umap-learn, autograd and closed forms.

Oracles:
- the fuzzy graph against ``umap.umap_.fuzzy_simplicial_set`` on the same
  neighbours (its bisection is the one we vectorise, same start and stopping rule);
- a and b against umap-learn's ``find_ab_params``;
- the per-pair forces against autograd of -log q and -log(1 - q);
- the map of digits separates the classes (10-NN accuracy) as umap-learn's does.
"""
import numpy as np
import pytest
import torch

from course_lib import data
from course_lib.metrics import knn_accuracy
from course_lib.neighbors import nearest_neighbors
from course_lib.umap import fit_ab, fuzzy_graph, umap, umap_gradient_coefficients

umap_ = pytest.importorskip("umap.umap_")


@pytest.fixture(scope="module")
def digits():
    d = data.load_digits()
    return d.X[:600].astype(np.float64), d.y[:600]


@pytest.mark.parametrize("n_neighbors", [5, 15])
def test_fuzzy_graph_matches_umap_learn(digits, n_neighbors):
    X, _ = digits
    distances, indices = nearest_neighbors(X, n_neighbors - 1, device="cpu")
    distances = distances.sqrt().float().double()  # umap-learn works on float32 distances
    # umap-learn's neighbour lists start with the point itself at distance 0.
    n = len(X)
    knn_indices = np.hstack([np.arange(n)[:, None], indices.numpy()])
    knn_dists = np.hstack([np.zeros((n, 1)), distances.numpy()]).astype(np.float32)
    ref, _, _ = umap_.fuzzy_simplicial_set(X, n_neighbors, 0, "euclidean", knn_indices=knn_indices,
                                           knn_dists=knn_dists)
    ours = fuzzy_graph(distances, indices, n_neighbors).to_dense().numpy()
    ref = ref.toarray()
    assert np.array_equal(ours > 0, ref > 0)  # the same edges
    # Same bisection on the same float32 distances; umap-learn sums in float32, we in
    # float64, so sigma_i can stop one bisection step apart when psum sits at the
    # 1e-5 tolerance. Measured max difference 1e-6; 1e-4 leaves room.
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_ab_match_umap_learn():
    for min_dist in (0.01, 0.1, 0.5):
        np.testing.assert_allclose(fit_ab(min_dist), umap_.find_ab_params(1.0, min_dist), rtol=1e-4)


def test_forces_match_autograd():
    a, b = fit_ab(0.1)
    e_i = torch.tensor([[0.3, -1.2], [2.0, 0.5]], dtype=torch.float64, requires_grad=True)
    e_j = torch.tensor([[1.0, 0.1], [-0.5, 0.4]], dtype=torch.float64)
    d2 = ((e_i - e_j) ** 2).sum(1)
    q = 1.0 / (1.0 + a * d2 ** b)
    (g_att,) = torch.autograd.grad(-torch.log(q).sum(), e_i, retain_graph=True)
    (g_rep,) = torch.autograd.grad(-torch.log(1.0 - q).sum(), e_i)
    attract, repel = umap_gradient_coefficients(d2.detach(), a, b)
    diff = (e_i - e_j).detach()
    np.testing.assert_allclose(attract[:, None] * diff, g_att, rtol=1e-10)
    # umap-learn adds 0.001 to d^2 in the repulsion: 1e-3 / d^2 relative (d^2 >= 0.5 here).
    np.testing.assert_allclose(-repel[:, None] * diff, g_rep, rtol=3e-3)


def test_umap_map_separates_digits(digits):
    X, y = digits
    ours = umap(X, device="cpu", n_epochs=200).embedding
    # umap-learn reaches ~0.97 on these 600 digits; its defaults differ in the start.
    assert knn_accuracy(ours, y, 10) > 0.93
