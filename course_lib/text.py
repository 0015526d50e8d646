"""Counting methods for words and documents: co-occurrences, PMI, bags of words, tf-idf.

Chapter 4 compares word2vec with the counts it implicitly factorises. Notation, as in the book:

    M[w, c] = #(w, c)      how often context word c occurs in the window of centre word w
    PMI(w, c) = log( #(w, c) * N / (#(w) #(c)) ),   N = sum_wc #(w, c), #(w) = sum_c #(w, c)
    PPMI(w, c) = max(PMI(w, c), 0)                  (pairs never seen stay 0)

For documents: ``bag_of_words`` counts each vocabulary word per document, and
``tfidf`` multiplies the counts by idf(w) = log(n_documents / df(w)), df(w) the number
of documents containing w, which down-weights the words that are everywhere.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import scipy.sparse as sparse

__all__ = ["cooccurrence_matrix", "pmi_matrices", "normalize_rows", "bag_of_words", "tfidf",
           "distance_preserving_coordinates", "spearman_interval"]


def _check_ids(ids, name: str, V: int) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D array of integer word ids, got shape {ids.shape} of {ids.dtype}")
    if len(ids) and (ids.min() < 0 or ids.max() >= V):
        raise ValueError(f"{name} must hold word ids in [0, V) with V = {V}, got {ids.min()} to {ids.max()}")
    return ids


def cooccurrence_matrix(centre, context, V: int) -> sparse.csr_matrix:
    """M[w, c] = #(w, c): the number of (centre, context) pairs, as a V x V sparse matrix."""
    if not isinstance(V, (int, np.integer)) or V < 1:
        raise ValueError(f"V must be a positive integer (the vocabulary size), got {V!r}")
    centre, context = _check_ids(centre, "centre", V), _check_ids(context, "context", V)
    if len(centre) != len(context):
        raise ValueError(f"centre and context must have the same length, got {len(centre)} and {len(context)}")
    M = sparse.coo_matrix((np.ones(len(centre)), (centre, context)), shape=(V, V)).tocsr()
    M.sum_duplicates()
    return M


def pmi_matrices(M) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """(PMI, PPMI) of the co-occurrence counts M, on M's non-zero entries only (sparse)."""
    if not sparse.issparse(M) or M.ndim != 2:
        raise ValueError(f"M must be a 2-D scipy.sparse matrix of counts, got {type(M).__name__}")
    M = M.tocoo()
    if M.nnz and M.data.min() <= 0:
        raise ValueError("M must hold positive counts on its stored entries")
    row_total, col_total = np.asarray(M.sum(axis=1)).ravel(), np.asarray(M.sum(axis=0)).ravel()
    pmi = np.log(M.data * M.data.sum() / (row_total[M.row] * col_total[M.col]))
    PMI = sparse.csr_matrix((pmi, (M.row, M.col)), shape=M.shape)
    PPMI = sparse.csr_matrix((np.maximum(pmi, 0.0), (M.row, M.col)), shape=M.shape)
    PPMI.eliminate_zeros()
    return PMI, PPMI


def normalize_rows(A) -> sparse.csr_matrix:
    """A with every non-zero row scaled to Euclidean length 1 (zero rows stay zero); sparse in, sparse out."""
    A = sparse.csr_matrix(A, dtype=np.float64)
    norms = np.sqrt(np.asarray(A.multiply(A).sum(axis=1)).ravel())
    return sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ A


def bag_of_words(documents, index: dict) -> sparse.csr_matrix:
    """Counts: entry (d, index[w]) is how often word w occurs in document d; unknown words are skipped."""
    if not isinstance(index, dict):
        raise ValueError(f"index must be a dict from word to column, got {type(index).__name__}")
    rows, cols, vals = [], [], []
    for d, tokens in enumerate(documents):
        if isinstance(tokens, str):
            raise ValueError("documents must be lists of tokens, not strings (tokenize them first)")
        for word, n in Counter(tok for tok in tokens if tok in index).items():
            rows.append(d); cols.append(index[word]); vals.append(n)
    n_docs = d + 1 if rows or documents else 0
    return sparse.csr_matrix((vals, (rows, cols)), shape=(n_docs, len(index)), dtype=np.float64)


def tfidf(counts) -> sparse.csr_matrix:
    """counts times idf(w) = log(n_documents / df(w)); words in no document get idf 0."""
    counts = sparse.csr_matrix(counts, dtype=np.float64)
    n_docs = counts.shape[0]
    df = np.asarray((counts > 0).sum(axis=0)).ravel()
    idf = np.where(df > 0, np.log(n_docs / np.maximum(df, 1)), 0.0)
    return sparse.csr_matrix(counts @ sparse.diags(idf))


def distance_preserving_coordinates(X) -> np.ndarray:
    """n x n coordinates E with the same pairwise distances as the rows of X scaled to length 1.

    Distances between unit rows depend only on the Gram matrix G = X X^T, and E with
    E E^T = G (classical MDS keeping every component, chapter 1) reproduces them in n
    dimensions instead of X's (often huge) number of columns: a neighbour search on E is
    much cheaper and finds the same neighbours.
    """
    X = normalize_rows(X)
    G = (X @ X.T).toarray()
    eigenvalues, eigenvectors = np.linalg.eigh(G)
    return eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))


def spearman_interval(rho: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% interval of a Spearman correlation over n pairs: Fisher's transformation with the
    Fieller-Hartley-Pearson factor 1.06, tanh(artanh(rho) -+ z 1.06 / sqrt(n - 3))."""
    if not -1 < rho < 1:
        raise ValueError(f"rho must lie strictly between -1 and 1, got {rho}")
    if n <= 3:
        raise ValueError(f"n must be larger than 3, got {n}")
    half = z * 1.06 / math.sqrt(n - 3)
    return math.tanh(math.atanh(rho) - half), math.tanh(math.atanh(rho) + half)
