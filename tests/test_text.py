"""course_lib.text against dense NumPy formulas and scikit-learn's counting."""
import numpy as np
import pytest
import scipy.sparse as sparse
from scipy.spatial.distance import pdist

from course_lib.text import (bag_of_words, cooccurrence_matrix, distance_preserving_coordinates, normalize_rows,
                             pmi_matrices, spearman_interval, tfidf)


def test_cooccurrence_counts_every_pair():
    M = cooccurrence_matrix([0, 0, 1, 2, 0], [1, 1, 2, 0, 2], V=3)
    assert M.toarray().tolist() == [[0, 2, 1], [0, 0, 1], [1, 0, 0]]


def test_pmi_matches_the_dense_formula():
    rng = np.random.default_rng(0)
    M = sparse.csr_matrix(rng.poisson(0.7, size=(12, 9)).astype(float))
    PMI, PPMI = pmi_matrices(M)
    dense = M.toarray()
    N, row, col = dense.sum(), dense.sum(1, keepdims=True), dense.sum(0, keepdims=True)
    seen = dense > 0
    expected = np.log(np.where(seen, dense, 1) * N / (row * col))
    assert np.allclose(PMI.toarray()[seen], expected[seen]) and not PMI.toarray()[~seen].any()
    assert np.allclose(PPMI.toarray(), np.where(seen, np.maximum(expected, 0), 0))


def test_bag_of_words_and_tfidf_match_scikit_learn():
    from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer

    docs = [["the", "cat", "sat"], ["the", "dog", "dog"], ["a", "cat", "and", "the", "dog"]]
    index = {"the": 0, "cat": 1, "dog": 2, "sat": 3}
    counts = bag_of_words(docs, index)
    reference = CountVectorizer(analyzer=lambda d: d, vocabulary=index).fit_transform(docs)
    assert np.array_equal(counts.toarray(), reference.toarray())
    # scikit-learn's unsmoothed idf is ours plus 1: idf_sk(w) = log(n / df(w)) + 1
    sk = TfidfTransformer(smooth_idf=False, norm=None).fit(reference)
    assert np.allclose(tfidf(counts).toarray(), counts.toarray() * (sk.idf_ - 1))


def test_distance_preserving_coordinates_keep_the_unit_row_distances():
    X = sparse.random(15, 200, density=0.1, random_state=0, format="csr")
    X = X + sparse.eye(15, 200)          # no empty rows
    E = distance_preserving_coordinates(X)
    unit = normalize_rows(X).toarray()
    assert E.shape == (15, 15)
    assert np.allclose(pdist(E), pdist(unit), atol=1e-7)


def test_spearman_interval_contains_rho_and_narrows_with_n():
    lo, hi = spearman_interval(0.5, 100)
    lo2, hi2 = spearman_interval(0.5, 1000)
    assert lo < lo2 < 0.5 < hi2 < hi


@pytest.mark.parametrize("call, word", [
    (lambda: cooccurrence_matrix([0, 5], [1, 1], V=3), "centre"),
    (lambda: cooccurrence_matrix([0], [1, 1], V=3), "same length"),
    (lambda: pmi_matrices(np.ones((2, 2))), "sparse"),
    (lambda: bag_of_words(["the cat"], {"the": 0}), "tokens"),
    (lambda: spearman_interval(1.0, 10), "rho"),
    (lambda: spearman_interval(0.2, 3), "n must"),
])
def test_bad_input_names_the_argument(call, word):
    with pytest.raises(ValueError, match=word):
        call()
