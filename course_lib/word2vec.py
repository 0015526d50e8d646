"""word2vec: vectors for words, learned from the contexts they appear in.

A one-hot code puts every pair of words at the same distance, so it cannot say
that "cat" is closer to "dog" than to "tax". word2vec (Mikolov et al., 2013)
learns a dense vector per word from the distributional idea: words that occur
in similar contexts mean similar things.

Notation, as in the book:

    w            the centre word;  c  a word in its context window
    v_w = W_in[w]    the input vector of w   (W_in: V x d, the embedding we keep)
    u_c = W_out[c]   the output vector of c  (W_out: V x d)
    n_1 .. n_K   K negative words drawn from P_n(w) = count(w)^0.75 / sum_w' count(w')^0.75
    s(x)         the logistic sigmoid 1 / (1 + e^-x)

Skip-gram predicts each context word from the centre word. With negative
sampling, one (w, c) pair costs

    L(w, c) = -log s(u_c . v_w) - sum_k log s(-u_{n_k} . v_w)

which pushes u_c towards v_w and the K random words away from it. CBOW turns
it around: it predicts the centre word from h, the mean of the context's input
vectors, with the same loss: -log s(u_w . h) - sum_k log s(-u_{n_k} . h).

The pipeline, one function per step:

    build_vocab -> Vocabulary.encode -> keep_probabilities (subsampling)
    -> context_windows (dynamic window) -> skipgram_pairs
    -> Word2VecBatches (adds the negatives) -> course_lib.training.fit
    -> WordVectors (most_similar, analogy) -> evaluate_word_pairs / evaluate_analogies

:func:`train_word2vec` runs all of it.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from .training import History, fit
from .utils import get_device, seed_everything

ARCHITECTURES = ("skipgram", "cbow")


def _check_int(value, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, got {value}")
    return int(value)


def _check_sentences(sentences) -> list:
    if isinstance(sentences, str) or not hasattr(sentences, "__iter__"):
        raise TypeError("sentences must be a list of token lists, e.g. [['the', 'cat'], ['a', 'dog']]")
    sentences = list(sentences)
    if not sentences:
        raise ValueError("sentences is empty")
    for sentence in sentences[:100]:
        if isinstance(sentence, str) or not all(isinstance(tok, str) for tok in sentence):
            raise TypeError("sentences must be a list of token lists (lists of str), not of strings: "
                            "tokenize first, e.g. with course_lib.corpora.simple_tokenize")
    return sentences


# ---------------------------------------------------------------- vocabulary

@dataclass
class Vocabulary:
    """The words kept for training, most frequent first, with their counts.

    ``words[i]`` is the word with id ``i``; ``counts[i]`` its number of
    occurrences in the corpus; ``index[word]`` gives back the id.
    """

    words: list
    counts: np.ndarray

    def __post_init__(self):
        self.counts = np.asarray(self.counts, dtype=np.int64)
        self.index = {word: i for i, word in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word) -> bool:
        return word in self.index

    def encode(self, sentences) -> tuple:
        """Turn token lists into ``(ids, sentence_ids)``, two int64 arrays.

        ``ids`` holds the id of every in-vocabulary token of the corpus in
        order, ``sentence_ids`` the sentence each token comes from (context
        windows never cross sentences). Words outside the vocabulary are
        dropped, as in word2vec and gensim, so their neighbours become adjacent.
        """
        index = self.index
        ids, sentence_ids = [], []
        for s, sentence in enumerate(_check_sentences(sentences)):
            kept = [index[tok] for tok in sentence if tok in index]
            ids.extend(kept)
            sentence_ids.extend([s] * len(kept))
        return np.asarray(ids, dtype=np.int64), np.asarray(sentence_ids, dtype=np.int64)


def build_vocab(sentences, min_count: int = 5, max_words: int | None = None) -> Vocabulary:
    """Count the words of ``sentences`` and keep those seen at least ``min_count`` times.

    Words are sorted by decreasing count, ties in order of first appearance
    (gensim puts ties the other way round), so id 0 is the most frequent word.
    ``max_words`` keeps only that many of the most frequent words.
    """
    sentences = _check_sentences(sentences)
    min_count = _check_int(min_count, "min_count")
    counts = Counter(tok for sentence in sentences for tok in sentence)
    # sorted() is stable, so equal counts stay in order of first appearance.
    kept = sorted((item for item in counts.items() if item[1] >= min_count), key=lambda item: -item[1])
    if max_words is not None:
        kept = kept[:_check_int(max_words, "max_words")]
    if not kept:
        raise ValueError(f"no word occurs at least min_count={min_count} times: lower min_count")
    words, word_counts = zip(*kept)
    return Vocabulary(list(words), np.array(word_counts))


# ---------------------------------------------------------------- sampling

def keep_probabilities(counts, sample: float = 1e-3) -> np.ndarray:
    """Probability of keeping each occurrence of a word when subsampling frequent words.

    With f the word's share of the corpus and t = ``sample``, this is the rule
    of the word2vec C code (also used by gensim),

        P(keep) = min(1, (sqrt(f / t) + 1) t / f),

    not the paper's P(discard) = 1 - sqrt(t / f). Both keep every word rarer
    than about t and drop most occurrences of "the", "of", "and", which carry
    little information about their neighbours. ``sample=0`` keeps everything.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or len(counts) == 0 or np.any(counts <= 0):
        raise ValueError("counts must be a non-empty 1-D array of positive word counts")
    if sample < 0:
        raise ValueError(f"sample must be >= 0, got {sample}")
    if sample == 0:
        return np.ones_like(counts)
    f = counts / counts.sum()
    return np.minimum(1.0, (np.sqrt(f / sample) + 1.0) * sample / f)


def noise_distribution(counts, power: float = 0.75) -> np.ndarray:
    """The negative-sampling distribution P_n(w) = count(w)^power / sum_w' count(w')^power.

    The power 3/4 (Mikolov et al., 2013) sits between the unigram distribution
    (power 1, where "the" would be most of the negatives) and the uniform one
    (power 0): frequent words are damped, rare words drawn more often.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or len(counts) == 0 or np.any(counts <= 0):
        raise ValueError("counts must be a non-empty 1-D array of positive word counts")
    weights = counts**power
    return weights / weights.sum()


def draw_negatives(noise, size, rng: np.random.Generator) -> np.ndarray:
    """Draw word ids from the distribution ``noise`` by inverting its cumulative sum.

    A uniform number u in [0, 1) falls in word i's slice of the cumulative
    distribution, cdf[i-1] <= u < cdf[i], with probability noise[i]. This is
    the plain way; :class:`NoiseSampler` gives the same distribution faster.
    """
    cdf = np.cumsum(noise)
    u = rng.random(size) * cdf[-1]  # scale by cdf[-1]: the float sum may fall short of 1
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


class NoiseSampler:
    """Draws from a discrete distribution in constant time per draw (Walker's alias method).

    Picture V columns of height 1/V, one per word, and the probabilities p_i as
    amounts of liquid: words with p_i > 1/V pour their excess into the columns
    of words with p_i < 1/V until every column is exactly full. Each column then
    holds at most two words: its own word, a fraction ``keep[i]`` of the column,
    and one donor ``alias[i]``. A draw picks a column uniformly and then one of
    its two words with a biased coin: two random numbers instead of the binary
    search of :func:`draw_negatives`, which matters at millions of negatives
    per epoch. Same distribution, exactly (see :meth:`probabilities`).
    """

    def __init__(self, probabilities):
        p = np.asarray(probabilities, dtype=np.float64)
        if p.ndim != 1 or len(p) == 0 or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
            raise ValueError("probabilities must be a 1-D array of non-negative numbers adding up to 1")
        n = len(p)
        keep = p * n  # column heights in units of 1/V
        alias = np.arange(n)
        small = [i for i in range(n) if keep[i] < 1.0]
        large = [i for i in range(n) if keep[i] >= 1.0]
        while small and large:
            short, tall = small.pop(), large.pop()
            alias[short] = tall  # tall fills the rest of short's column
            keep[tall] -= 1.0 - keep[short]
            (small if keep[tall] < 1.0 else large).append(tall)
        for i in small + large:  # left-overs are full columns, up to rounding
            keep[i] = 1.0
        self.keep, self.alias = keep, alias

    def probabilities(self) -> np.ndarray:
        """The distribution the tables encode.

        p_i = (keep_i + sum of (1 - keep_j) over the columns j with alias_j = i) / V.
        """
        n = len(self.keep)
        return (self.keep + np.bincount(self.alias, weights=1.0 - self.keep, minlength=n)) / n

    def __call__(self, size, rng: np.random.Generator) -> np.ndarray:
        column = rng.integers(0, len(self.keep), size=size)
        return np.where(rng.random(size) < self.keep[column], column, self.alias[column])


# ---------------------------------------------------------------- training examples

def context_windows(ids, sentence_ids, window: int, rng: np.random.Generator | None = None,
                    reach=None) -> np.ndarray:
    """The context of every token, as a (n_tokens, 2 * window) array of word ids.

    Column j holds the word at offset -window, ..., -1, +1, ..., +window from
    the centre, or -1 where there is none: past the end of the sentence, or
    beyond the token's dynamic window. As in word2vec, each token draws its own
    reach b uniformly from 1..window (pass ``reach`` to choose them yourself),
    so near neighbours count more often than far ones: offset o is used with
    probability (window - |o| + 1) / window.
    """
    ids, sentence_ids = np.asarray(ids), np.asarray(sentence_ids)
    if ids.shape != sentence_ids.shape or ids.ndim != 1:
        raise ValueError(f"ids and sentence_ids must be 1-D of the same length, got {ids.shape} "
                         f"and {sentence_ids.shape}")
    window = _check_int(window, "window")
    n = len(ids)
    if reach is None:
        if rng is None:
            raise ValueError("give rng (a numpy Generator) to draw the dynamic windows, or reach")
        reach = rng.integers(1, window + 1, size=n)
    reach = np.asarray(reach)
    if reach.shape != ids.shape or np.any(reach < 1) or np.any(reach > window):
        raise ValueError(f"reach must hold one int in 1..{window} per token")
    contexts = np.full((n, 2 * window), -1, dtype=np.int64)
    offsets = [o for o in range(-window, window + 1) if o != 0]
    for col, o in enumerate(offsets):
        # centre positions i with a neighbour at i + o inside the array (clamped at 0: a
        # negative stop would count from the end)
        centre = slice(max(0, -o), max(0, n - max(0, o)))
        neighbour = slice(max(0, o), max(0, n - max(0, -o)))
        ok = (reach[centre] >= abs(o)) & (sentence_ids[centre] == sentence_ids[neighbour])
        contexts[centre, col] = np.where(ok, ids[neighbour], -1)
    return contexts


def skipgram_pairs(ids, sentence_ids, window: int, rng: np.random.Generator) -> tuple:
    """All (centre, context) pairs of the corpus for skip-gram, as two int64 arrays.

    One pair per filled cell of :func:`context_windows`; with ``window=5``
    there are about 6 pairs per token.
    """
    contexts = context_windows(ids, sentence_ids, window, rng)
    rows, cols = np.nonzero(contexts >= 0)
    return np.asarray(ids)[rows], contexts[rows, cols]


class Word2VecBatches(IterableDataset):
    """Mini-batches of training examples, made afresh for every epoch.

    Each pass (each epoch of :func:`course_lib.training.fit`) subsamples the
    corpus again, draws new dynamic windows, shuffles, and adds ``negative``
    negatives per example from the noise distribution. It yields whole batches,
    which is much faster than collating one example at a time:

    - skip-gram: ``(centre, context, negatives)`` of shapes (B,), (B,), (B, K);
    - CBOW: ``(contexts, centre, negatives)`` of shapes (B, 2 window), (B,),
      (B, K), where ``contexts`` is padded with -1.

    Wrap it as ``DataLoader(batches, batch_size=None)`` (see :meth:`loader`).
    """

    def __init__(self, ids, sentence_ids, counts, *, architecture: str = "skipgram", window: int = 5,
                 negative: int = 5, sample: float = 1e-3, batch_size: int = 4096, seed: int = 0):
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
        self.ids = np.asarray(ids, dtype=np.int64)
        self.sentence_ids = np.asarray(sentence_ids, dtype=np.int64)
        if self.ids.shape != self.sentence_ids.shape or self.ids.ndim != 1:
            raise ValueError("ids and sentence_ids must be 1-D arrays of the same length")
        counts = np.asarray(counts)
        if len(self.ids) and self.ids.max() >= len(counts):
            raise ValueError(f"ids go up to {self.ids.max()} but counts has only {len(counts)} words")
        self.architecture = architecture
        self.window = _check_int(window, "window")
        self.negative = _check_int(negative, "negative")
        self.batch_size = _check_int(batch_size, "batch_size")
        self.keep = keep_probabilities(counts, sample)
        self.noise = NoiseSampler(noise_distribution(counts))
        self.seed = seed
        self.epoch = 0

    def examples(self, rng: np.random.Generator) -> tuple:
        """One epoch's examples, before shuffling and negatives: a tuple of arrays."""
        kept = rng.random(len(self.ids)) < self.keep[self.ids]
        ids, sentence_ids = self.ids[kept], self.sentence_ids[kept]
        if self.architecture == "skipgram":
            return skipgram_pairs(ids, sentence_ids, self.window, rng)
        contexts = context_windows(ids, sentence_ids, self.window, rng)
        has_context = (contexts >= 0).any(axis=1)
        return contexts[has_context], ids[has_context]

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        arrays = self.examples(rng)
        order = rng.permutation(len(arrays[0]))
        arrays = [torch.from_numpy(a[order]) for a in arrays]  # shuffle once, then slice
        for start in range(0, len(order), self.batch_size):
            batch = [a[start:start + self.batch_size] for a in arrays]
            negatives = self.noise((len(batch[0]), self.negative), rng)
            yield (*batch, torch.from_numpy(negatives))

    def loader(self) -> DataLoader:
        """A ``DataLoader`` that passes the batches through unchanged, for :func:`fit`."""
        return DataLoader(self, batch_size=None)


# ---------------------------------------------------------------- models and loss

class _TwoTables(nn.Module):
    """The two embedding tables W_in (input vectors v) and W_out (output vectors u)."""

    def __init__(self, n_words: int, dim: int = 100):
        super().__init__()
        n_words, dim = _check_int(n_words, "n_words"), _check_int(dim, "dim")
        self.W_in = nn.Embedding(n_words, dim)
        self.W_out = nn.Embedding(n_words, dim)
        # word2vec's initialisation: small random input vectors, zero output vectors.
        nn.init.uniform_(self.W_in.weight, -0.5 / dim, 0.5 / dim)
        nn.init.zeros_(self.W_out.weight)

    def word_vectors(self) -> np.ndarray:
        """The learned embedding: the rows v_w of W_in, as a (V, d) float32 array."""
        return self.W_in.weight.detach().float().cpu().numpy().copy()  # a copy: training goes on


class SkipGram(_TwoTables):
    """Skip-gram: predict a context word c from the centre word w.

    ``forward(centre, context, negatives)`` returns ``(v_w, u_c, u_neg)`` of
    shapes (B, d), (B, d) and (B, K, d), the inputs of
    :func:`negative_sampling_loss`.
    """

    def forward(self, centre, context, negatives):
        return self.W_in(centre), self.W_out(context), self.W_out(negatives)


class CBOW(_TwoTables):
    """Continuous bag of words: predict the centre word w from its context.

    ``forward(contexts, centre, negatives)`` returns ``(h, u_w, u_neg)`` where
    h is the mean of the input vectors v_c of the context words (``contexts``
    is padded with -1, which is left out of the mean).
    """

    def forward(self, contexts, centre, negatives):
        present = (contexts >= 0).unsqueeze(-1).to(self.W_in.weight.dtype)
        v_c = self.W_in(contexts.clamp(min=0)) * present
        h = v_c.sum(dim=1) / present.sum(dim=1).clamp(min=1.0)
        return h, self.W_out(centre), self.W_out(negatives)


def negative_sampling_loss(v_w, u_c, u_neg):
    """The negative-sampling loss, averaged over a batch of B examples:

        L = -log s(u_c . v_w) - sum_k log s(-u_{n_k} . v_w)

    ``v_w`` (B, d): input vectors of the centre words (for CBOW, the context
    means h); ``u_c`` (B, d): output vectors of the true context words (for
    CBOW, of the centre words); ``u_neg`` (B, K, d): output vectors of the K
    negatives of each example. ``log s`` is computed as ``logsigmoid``, which
    does not overflow for large scores.
    """
    if v_w.dim() != 2 or u_c.shape != v_w.shape:
        raise ValueError(f"v_w and u_c must both have shape (B, d), got {tuple(v_w.shape)} and "
                         f"{tuple(u_c.shape)}")
    if u_neg.dim() != 3 or u_neg.shape[0] != v_w.shape[0] or u_neg.shape[2] != v_w.shape[1]:
        raise ValueError(f"u_neg must have shape (B, K, d) = ({v_w.shape[0]}, K, {v_w.shape[1]}), "
                         f"got {tuple(u_neg.shape)}")
    positive_score = (u_c * v_w).sum(dim=-1)  # u_c . v_w, shape (B,)
    # Broadcasting beats torch.bmm here: B tiny (K x d)(d x 1) products are slow on CPU.
    negative_scores = (u_neg * v_w.unsqueeze(1)).sum(dim=-1)  # u_{n_k} . v_w, shape (B, K)
    return -(F.logsigmoid(positive_score) + F.logsigmoid(-negative_scores).sum(dim=-1)).mean()


def word2vec_loss(model: nn.Module, batch) -> torch.Tensor:
    """``loss_fn`` for :func:`course_lib.training.fit`: the model's vectors into the loss."""
    return negative_sampling_loss(*model(*batch))


# ---------------------------------------------------------------- queries

class WordVectors:
    """Trained word vectors with the usual queries.

    Similarities are cosines, so only the direction of a vector matters.
    """

    def __init__(self, words, vectors):
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(words):
            raise ValueError(f"vectors must have shape (len(words), d) = ({len(words)}, d), "
                             f"got {vectors.shape}")
        self.words = list(words)
        self.vectors = vectors
        self.index = {word: i for i, word in enumerate(self.words)}
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.unit = vectors / np.maximum(norms, 1e-12)

    @classmethod
    def from_model(cls, model: _TwoTables, vocab: Vocabulary) -> "WordVectors":
        """The input vectors v_w of a trained :class:`SkipGram` or :class:`CBOW`."""
        return cls(vocab.words, model.word_vectors())

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word) -> bool:
        return word in self.index

    def _id(self, word) -> int:
        if word not in self.index:
            raise KeyError(f"{word!r} is not in the vocabulary of {len(self)} words")
        return self.index[word]

    def __getitem__(self, word) -> np.ndarray:
        return self.vectors[self._id(word)]

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of the vectors of words ``a`` and ``b``."""
        return float(self.unit[self._id(a)] @ self.unit[self._id(b)])

    def _nearest(self, direction, topn: int, exclude=()) -> list:
        topn = _check_int(topn, "topn")
        scores = self.unit @ (direction / max(np.linalg.norm(direction), 1e-12))
        scores[list(exclude)] = -np.inf
        best = np.argsort(-scores, kind="stable")[:topn]
        return [(self.words[i], float(scores[i])) for i in best if np.isfinite(scores[i])]

    def most_similar(self, query, topn: int = 10) -> list:
        """The ``topn`` words whose vectors have the largest cosine with ``query``.

        ``query`` is a word (left out of the answer) or a vector of length d.
        Returns ``[(word, cosine), ...]``, best first.
        """
        if isinstance(query, str):
            i = self._id(query)
            return self._nearest(self.unit[i], topn, exclude=[i])
        query = np.asarray(query, dtype=np.float32)
        if query.shape != (self.vectors.shape[1],):
            raise ValueError(f"query must be a word or a vector of length {self.vectors.shape[1]}, "
                             f"got shape {query.shape}")
        return self._nearest(query, topn)

    def analogy(self, a: str, b: str, c: str, topn: int = 1) -> list:
        """Answer "a is to b as c is to ?" with the words nearest to b - a + c.

        ``analogy("man", "king", "woman")`` asks for king - man + woman. The
        vectors are normalised first and a, b, c are left out of the answer
        (the "3CosAdd" rule used by word2vec and gensim).
        """
        ia, ib, ic = self._id(a), self._id(b), self._id(c)
        return self._nearest(self.unit[ib] - self.unit[ia] + self.unit[ic], topn, exclude=[ia, ib, ic])

    def document_vector(self, tokens) -> np.ndarray:
        """A bag of embeddings: the mean vector of the in-vocabulary ``tokens``."""
        if isinstance(tokens, str):
            raise TypeError("tokens must be a list of words, not a string: tokenize it first")
        ids = [self.index[tok] for tok in tokens if tok in self.index]
        if not ids:
            return np.zeros(self.vectors.shape[1], dtype=np.float32)
        return self.vectors[ids].mean(axis=0)


# ---------------------------------------------------------------- evaluation

def evaluate_word_pairs(wv: WordVectors, pairs, restrict_to=None) -> dict:
    """Spearman correlation between human similarity scores and cosine similarities.

    ``pairs`` is a list of ``(word1, word2, score)`` (WordSim353, SimLex-999).
    Pairs with a word outside ``wv`` (or outside the set ``restrict_to``, for
    comparing two models on the same pairs) are skipped and counted. Returns
    ``{"spearman", "n_used", "n_total"}``.
    """
    from scipy.stats import spearmanr

    used = [(a, b, s) for a, b, s in pairs
            if a in wv and b in wv and (restrict_to is None or (a in restrict_to and b in restrict_to))]
    spearman = float("nan")
    if len(used) >= 3:
        ia = [wv.index[a] for a, _, _ in used]
        ib = [wv.index[b] for _, b, _ in used]
        cosines = (wv.unit[ia] * wv.unit[ib]).sum(axis=1)
        spearman = float(spearmanr([s for _, _, s in used], cosines).statistic)
    return {"spearman": spearman, "n_used": len(used), "n_total": len(pairs)}


def evaluate_analogies(wv: WordVectors, questions, restrict_to=None, chunk_size: int = 1024) -> dict:
    """Accuracy on analogy questions ``(a, b, c, d, section)``: is d the top answer of b - a + c?

    A question is answerable when its four words are in ``wv`` (and in
    ``restrict_to`` when given); the others are skipped and counted, as gensim
    does. Returns ``{"accuracy", "n_correct", "n_answerable", "n_total",
    "sections", "questions", "ranks"}``, where ``sections`` maps a section
    name to ``(n_correct, n_answerable)``, ``questions`` lists the answerable
    questions and ``ranks`` gives, for each of them, the place of d among the
    answers (1 = correct; ties go to the lower word id, as ``argmax`` does).
    """
    answerable = [q for q in questions
                  if all(w in wv and (restrict_to is None or w in restrict_to) for w in q[:4])]
    ids = np.array([[wv.index[w] for w in q[:4]] for q in answerable], dtype=np.int64).reshape(-1, 4)
    ranks = np.zeros(len(ids), dtype=np.int64)
    rows = np.arange(min(chunk_size, len(ids)))
    word_ids = np.arange(len(wv))
    for start in range(0, len(ids), chunk_size):
        a, b, c, d = ids[start:start + chunk_size].T
        scores = (wv.unit[b] - wv.unit[a] + wv.unit[c]) @ wv.unit.T
        r = rows[:len(a)]
        scores[r, a] = scores[r, b] = scores[r, c] = -np.inf
        score_d = scores[r, d][:, None]
        ahead = (scores > score_d) | ((scores == score_d) & (word_ids < d[:, None]))
        ranks[start:start + chunk_size] = ahead.sum(axis=1) + 1
    correct = ranks == 1
    sections = {}
    for q, ok in zip(answerable, correct):
        n_ok, n = sections.get(q[4], (0, 0))
        sections[q[4]] = (n_ok + int(ok), n + 1)
    return {
        "accuracy": float(correct.mean()) if len(correct) else float("nan"),
        "n_correct": int(correct.sum()),
        "n_answerable": len(answerable),
        "n_total": len(questions),
        "sections": sections,
        "questions": answerable,
        "ranks": ranks,
    }


# ---------------------------------------------------------------- training

def make_adam(model: nn.Module, lr: float) -> torch.optim.Adam:
    """Adam for ``model``, fused into one kernel where PyTorch has one (CPU, CUDA).

    Every step updates both V x d tables in full; the fused kernel does that in
    one pass over memory instead of about ten. On a CPU, with V = 9,000 words,
    that takes 1 ms instead of 9 and cuts a whole word2vec step by about a third.
    """
    device = next(model.parameters()).device
    return torch.optim.Adam(model.parameters(), lr=lr, fused=device.type in ("cpu", "cuda"))


@dataclass
class Word2VecResult:
    """What :func:`train_word2vec` returns."""

    vectors: WordVectors
    model: nn.Module
    vocab: Vocabulary
    history: History


def train_word2vec(sentences, *, architecture: str = "skipgram", dim: int = 100, window: int = 5,
                   negative: int = 5, min_count: int = 5, sample: float = 1e-3, epochs: int = 5,
                   batch_size: int | None = None, lr: float | None = None, device=None, seed: int = 0,
                   progress: bool = True) -> Word2VecResult:
    """Train skip-gram or CBOW with negative sampling on ``sentences`` (lists of tokens).

    The defaults are word2vec's and gensim's (window 5, 5 negatives, min_count
    5, subsampling 1e-3, 5 epochs), except the optimizer: Adam on mini-batches,
    through the course's :func:`course_lib.training.fit`, instead of one SGD
    step per pair. CBOW gets one example per token instead of about six pairs,
    so its defaults differ: ``batch_size`` 8192 pairs for skip-gram and 2048
    examples for CBOW, ``lr`` 5e-3 and 1e-2 (word2vec doubles its rate for
    CBOW too). Larger batches run faster per word on a CPU, but Adam needs a
    few hundred steps: on a tiny corpus (the Lee corpus, 60,000 tokens) use
    ``batch_size=1024``. Runs on ``device`` (default :func:`course_lib.get_device`).
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    if batch_size is None:
        batch_size = 8192 if architecture == "skipgram" else 2048
    if lr is None:
        lr = 5e-3 if architecture == "skipgram" else 1e-2
    vocab = build_vocab(sentences, min_count=min_count)
    ids, sentence_ids = vocab.encode(sentences)
    batches = Word2VecBatches(ids, sentence_ids, vocab.counts, architecture=architecture, window=window,
                              negative=negative, sample=sample, batch_size=batch_size, seed=seed)
    seed_everything(seed)
    model = (SkipGram if architecture == "skipgram" else CBOW)(len(vocab), dim)
    device = torch.device(device) if device is not None else get_device()
    model.to(device)
    history = fit(model, word2vec_loss, batches.loader(), epochs=epochs, optimizer=make_adam(model, lr),
                  device=device, seed=seed, progress=progress)
    return Word2VecResult(WordVectors.from_model(model, vocab), model, vocab, history)
