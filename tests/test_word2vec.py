"""Tests of course_lib.word2vec and course_lib.corpora against independent oracles.

Oracles: hand computations, closed-form gradients, finite differences
(torch.autograd.gradcheck), gensim (tokeniser, vocabulary, subsampling and
noise tables, KeyedVectors queries and evaluations), brute-force loops, and
binomial / chi-square bounds for the random draws.
"""
import math
import shutil

import numpy as np
import pytest
import torch
from gensim.models import Word2Vec  # the reference: pinned in requirements.txt
from gensim.test.utils import datapath, lee_corpus_list
from gensim.utils import simple_preprocess
from scipy import stats

from course_lib import corpora
from course_lib.data import DataNotFoundError
from course_lib.word2vec import (
    CBOW, NoiseSampler, SkipGram, Word2VecBatches, WordVectors, build_vocab, context_windows,
    draw_negatives, evaluate_analogies, evaluate_word_pairs, keep_probabilities, negative_sampling_loss,
    noise_distribution, skipgram_pairs, train_word2vec, word2vec_loss,
)



def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


@pytest.fixture(scope="module")
def lee():
    return corpora.load_lee_corpus()


@pytest.fixture(scope="module")
def gensim_lee():
    """A small gensim model of the Lee corpus: the vocabulary, tables and vectors we compare with."""
    model = Word2Vec(lee_corpus_list, vector_size=32, min_count=5, sample=1e-3, negative=5, epochs=5,
                     workers=1, seed=1)
    return model


# ---------------------------------------------------------------- corpora

def test_simple_tokenize_matches_gensim_simple_preprocess(lee):
    tricky = "Don't STOP_me: 2day über-cool résumés, _hidden x ab naïve 3.14 supercalifragilistic"
    assert corpora.simple_tokenize(tricky) == simple_preprocess(tricky)
    with open(datapath("lee_background.cor"), encoding="utf-8") as f:
        for line in f:
            assert corpora.simple_tokenize(line) == simple_preprocess(line)


def test_lee_corpus_is_gensims_lee_corpus_list(lee):
    assert len(lee) == 300
    assert lee == lee_corpus_list


def test_strip_wiki_markup_keeps_running_text():
    text = ("'''Anarchism''' is a [[political philosophy]] that {{cite|x={{nested}}}} advocates "
            "[[self-governance|self-governed]] societies.<ref>Woodcock, p. 7</ref> "
            "[[File:Flag.svg|thumb|200px|A black flag]] [[Category:Politics]] [[fr:Anarchisme]] "
            "[http://example.org Kropotkin's essay] <!-- hidden --> {| class=wikitable\n| cell\n|}")
    tokens = corpora.simple_tokenize(corpora.strip_wiki_markup(text))
    assert tokens == ["anarchism", "is", "political", "philosophy", "that", "advocates", "self",
                      "governed", "societies", "black", "flag", "kropotkin", "essay"]


@pytest.mark.slow
def test_wikipedia_excerpt_matches_gensim_wikicorpus():
    from gensim.corpora.wikicorpus import WikiCorpus

    ours = corpora.load_wikipedia_excerpt()
    wiki = WikiCorpus(datapath(corpora.WIKI_FILE), dictionary={}, processes=1)
    theirs = list(wiki.get_texts())
    assert len(ours) == len(theirs) == 106
    # Our markup stripper is not gensim's (gensim keeps more table text): the token
    # counts agree within 5%, and so do the 20 most frequent words.
    n_ours, n_theirs = sum(map(len, ours)), sum(map(len, theirs))
    assert abs(n_ours - n_theirs) / n_theirs < 0.05
    top = set(build_vocab(ours).words[:20])
    assert len(top & set(build_vocab(theirs).words[:20])) >= 18


@pytest.mark.skipif(shutil.which("bible") is None, reason="the Debian package bible-kjv is not installed")
def test_bible_kjv_has_every_verse():
    verses = corpora.load_bible_kjv(tokenize=False)
    assert len(verses) == 31102
    assert verses[0] == ("Ge1:1", "In the beginning God created the heaven and the earth.")
    assert verses[-1][0] == "Rev22:21"
    tokens = corpora.load_bible_kjv()
    assert tokens[0] == ["in", "the", "beginning", "god", "created", "the", "heaven", "and", "the", "earth"]


def test_evaluation_sets_are_plain_lists():
    wordsim, simlex = corpora.load_wordsim353(), corpora.load_simlex999()
    questions = corpora.load_analogy_questions()
    assert (len(wordsim), len(simlex), len(questions)) == (353, 999, 19544)
    assert wordsim[0] == ("love", "sex", 6.77)
    assert simlex[0] == ("old", "new", 1.58)
    assert questions[0] == ("athens", "greece", "baghdad", "iraq", "capital-common-countries")
    assert isinstance(wordsim, list) and isinstance(questions, list)


def test_missing_data_says_how_to_get_it(monkeypatch):
    monkeypatch.delenv("COURSE_DATA", raising=False)
    monkeypatch.setattr(corpora, "gensim_test_data_dir", lambda: None)
    with pytest.raises(DataNotFoundError, match="pip install gensim"):
        corpora.load_lee_corpus()
    monkeypatch.setattr(corpora.shutil, "which", lambda name: None)
    with pytest.raises(DataNotFoundError, match="apt-get install bible-kjv"):
        corpora.load_bible_kjv()


# ---------------------------------------------------------------- vocabulary and sampling

def test_vocabulary_matches_gensim(lee, gensim_lee):
    vocab = build_vocab(lee, min_count=5)
    wv = gensim_lee.wv
    assert set(vocab.words) == set(wv.index_to_key)
    assert all(vocab.counts[vocab.index[w]] == wv.get_vecattr(w, "count") for w in wv.index_to_key)
    assert np.all(np.diff(vocab.counts) <= 0)  # most frequent first


def test_encode_drops_rare_words_and_tracks_sentences():
    vocab = build_vocab([["a", "b", "a"], ["b", "rare", "a"]], min_count=2)
    ids, sentence_ids = vocab.encode([["a", "b", "a"], ["b", "rare", "a"]])
    assert vocab.words == ["a", "b"]
    assert ids.tolist() == [0, 1, 0, 1, 0]
    assert sentence_ids.tolist() == [0, 0, 0, 1, 1]


def test_keep_probabilities_match_gensim(lee, gensim_lee):
    vocab = build_vocab(lee, min_count=5)
    ours = keep_probabilities(vocab.counts, sample=1e-3)
    # gensim stores P(keep) as a 32-bit fixed-point integer: it agrees to 2^-32.
    theirs = np.array([gensim_lee.wv.get_vecattr(w, "sample_int") for w in vocab.words]) / 2**32
    np.testing.assert_allclose(ours, theirs, atol=2**-31)
    assert ours[0] < 0.2 and ours[-1] == 1.0  # "the" mostly dropped, rare words all kept
    assert np.all(keep_probabilities(vocab.counts, sample=0) == 1.0)


def test_noise_distribution_is_unigram_to_the_three_quarters():
    counts = np.array([1, 16, 81, 256])  # fourth powers: count^0.75 = 1, 8, 27, 64
    np.testing.assert_allclose(noise_distribution(counts), np.array([1, 8, 27, 64]) / 100, rtol=1e-15)


def test_noise_distribution_matches_gensims_table(lee, gensim_lee):
    vocab = build_vocab(lee, min_count=5)
    order = [gensim_lee.wv.key_to_index[w] for w in vocab.words]
    # gensim's cumulative table is integer, out of 2^31 - 1: it agrees to about 1e-9.
    table = gensim_lee.cum_table / gensim_lee.cum_table[-1]
    theirs = np.diff(np.concatenate([[0.0], table]))[order]
    np.testing.assert_allclose(noise_distribution(vocab.counts), theirs, atol=2e-9)


@pytest.mark.parametrize("sampler", ["inverse_cdf", "alias"])
def test_negatives_follow_the_noise_distribution(sampler):
    p = noise_distribution(np.random.default_rng(0).zipf(1.5, size=200).astype(float))
    rng = np.random.default_rng(1)
    n = 400_000
    if sampler == "alias":
        alias = NoiseSampler(p)
        # The alias tables encode p exactly, up to float rounding.
        np.testing.assert_allclose(alias.probabilities(), p, rtol=1e-12, atol=1e-15)
        draws = alias(n, rng)
    else:
        draws = draw_negatives(p, n, rng)
    counts = np.bincount(draws, minlength=len(p))
    # Each count is Binomial(n, p_i): 5 standard deviations bound all 200 of them at
    # once with probability 1 - 200 * 6e-7, and the seed is fixed.
    assert np.all(np.abs(counts - n * p) <= 5 * np.sqrt(n * p * (1 - p)) + 1)
    # Pearson's chi-square over the words expected at least 5 times (the usual validity rule)
    # (the rarer ones pooled into one cell); a p-value below 1e-3 would mean the draws do
    # not follow p.
    frequent = n * p >= 5
    observed, expected = counts[frequent], n * p[frequent]
    if not frequent.all():
        observed = np.append(observed, counts[~frequent].sum())
        expected = np.append(expected, n * p[~frequent].sum())
    assert stats.chisquare(observed, expected).pvalue > 1e-3


# ---------------------------------------------------------------- training examples

def brute_force_pairs(ids, sentence_ids, reach):
    pairs = set()
    for i in range(len(ids)):
        for j in range(len(ids)):
            if i != j and abs(i - j) <= reach[i] and sentence_ids[i] == sentence_ids[j]:
                pairs.add((i, j))
    return pairs


def test_context_windows_respect_window_and_sentences():
    rng = np.random.default_rng(0)
    n, window = 60, 4
    ids = rng.integers(0, 1000, size=n) * 100 + np.arange(n)  # unique ids: a pair reveals positions
    sentence_ids = np.repeat(np.arange(6), [3, 15, 1, 20, 11, 10])
    reach = rng.integers(1, window + 1, size=n)
    contexts = context_windows(ids, sentence_ids, window, reach=reach)
    position = {w: i for i, w in enumerate(ids)}
    found = {(i, position[w]) for i in range(n) for w in contexts[i] if w >= 0}
    assert found == brute_force_pairs(ids, sentence_ids, reach)
    centres, context = skipgram_pairs(ids, sentence_ids, window, np.random.default_rng(3))
    assert all(abs(position[c] - position[w]) <= window for c, w in zip(centres, context))
    assert all(sentence_ids[position[c]] == sentence_ids[position[w]] for c, w in zip(centres, context))


def test_dynamic_window_favours_near_neighbours():
    n, window = 200_000, 5
    contexts = context_windows(np.arange(n), np.zeros(n, dtype=int), window, np.random.default_rng(0))
    used = (contexts >= 0).sum(axis=0)  # columns: offsets -5..-1, +1..+5
    offsets = np.r_[np.arange(-window, 0), np.arange(1, window + 1)]
    p = (window - np.abs(offsets) + 1) / window  # P(reach >= |o|) for reach uniform on 1..window
    # Binomial(n - |o|, p): 5 standard deviations, fixed seed.
    trials = n - np.abs(offsets)
    assert np.all(np.abs(used - trials * p) <= 5 * np.sqrt(trials * p * (1 - p)))


def test_batches_have_the_right_shapes_and_change_every_epoch():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, size=5000)
    sentence_ids = np.arange(5000) // 100
    counts = np.bincount(ids, minlength=50) + 1
    batches = Word2VecBatches(ids, sentence_ids, counts, window=3, negative=4, batch_size=512, seed=7)
    first = list(batches)
    second = list(batches)
    centre, context, negatives = first[0]
    assert centre.shape == context.shape == (512,) and negatives.shape == (512, 4)
    assert centre.dtype == torch.int64 and int(negatives.max()) < 50
    assert not torch.equal(first[0][0], second[0][0])  # new subsampling, windows and shuffle
    again = list(Word2VecBatches(ids, sentence_ids, counts, window=3, negative=4, batch_size=512, seed=7))
    assert all(torch.equal(a, b) for a, b in zip(first[0], again[0]))  # reproducible from the seed
    cbow = next(iter(Word2VecBatches(ids, sentence_ids, counts, architecture="cbow", window=3,
                                     batch_size=64)))
    assert cbow[0].shape == (64, 6) and cbow[1].shape == (64,) and cbow[2].shape == (64, 5)
    assert bool(((cbow[0] >= 0).sum(1) >= 1).all())  # every CBOW example has a context


# ---------------------------------------------------------------- loss and models

def test_loss_equals_hand_computation():
    v_w = torch.tensor([[1.0, 0.0]])
    u_c = torch.tensor([[2.0, 0.0]])  # u_c . v_w = 2
    u_neg = torch.tensor([[[0.0, 1.0], [-1.0, 0.0]]])  # scores 0 and -1
    expected = -math.log(sigmoid(2.0)) - math.log(sigmoid(-0.0)) - math.log(sigmoid(1.0))
    assert negative_sampling_loss(v_w, u_c, u_neg).item() == pytest.approx(expected, rel=1e-6)
    # A batch of two: the mean of the two single-example losses.
    v2, c2, n2 = torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 4, 3)
    single = [negative_sampling_loss(v2[k:k + 1], c2[k:k + 1], n2[k:k + 1]) for k in range(2)]
    assert negative_sampling_loss(v2, c2, n2).item() == pytest.approx(sum(single).item() / 2, rel=1e-6)


def test_loss_gradient_matches_finite_differences_and_closed_form():
    g = torch.Generator().manual_seed(0)
    B, K, d = 3, 4, 5
    v = torch.randn(B, d, generator=g, dtype=torch.float64, requires_grad=True)
    u_c = torch.randn(B, d, generator=g, dtype=torch.float64, requires_grad=True)
    u_neg = torch.randn(B, K, d, generator=g, dtype=torch.float64, requires_grad=True)
    # Central differences with eps=1e-6 in float64: errors ~1e-10, far below gradcheck's atol 1e-5.
    assert torch.autograd.gradcheck(negative_sampling_loss, (v, u_c, u_neg), eps=1e-6, atol=1e-5)
    loss = negative_sampling_loss(v, u_c, u_neg)
    grad_v, grad_c, grad_neg = torch.autograd.grad(loss, (v, u_c, u_neg))
    with torch.no_grad():
        s_pos = torch.sigmoid((u_c * v).sum(-1, keepdim=True))  # (B, 1)
        s_neg = torch.sigmoid((u_neg * v[:, None]).sum(-1, keepdim=True))  # (B, K, 1)
        # dL/dv = (s(u_c.v) - 1) u_c + sum_k s(u_k.v) u_k ; dL/du_c = (s - 1) v ; dL/du_k = s(u_k.v) v
        expected_v = ((s_pos - 1) * u_c + (s_neg * u_neg).sum(1)) / B
        torch.testing.assert_close(grad_v, expected_v, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(grad_c, (s_pos - 1) * v / B, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(grad_neg, s_neg * v[:, None] / B, rtol=1e-12, atol=1e-14)


def test_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="u_neg"):
        negative_sampling_loss(torch.zeros(4, 3), torch.zeros(4, 3), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="u_c"):
        negative_sampling_loss(torch.zeros(4, 3), torch.zeros(4, 2), torch.zeros(4, 5, 3))


def test_models_look_up_the_two_tables():
    sg = SkipGram(10, 3)
    torch.nn.init.normal_(sg.W_out.weight)
    centre, context, negatives = torch.tensor([1, 2]), torch.tensor([3, 4]), torch.tensor([[5, 6], [7, 8]])
    v_w, u_c, u_neg = sg(centre, context, negatives)
    assert torch.equal(v_w, sg.W_in.weight[[1, 2]]) and torch.equal(u_c, sg.W_out.weight[[3, 4]])
    assert u_neg.shape == (2, 2, 3) and torch.equal(u_neg[1, 0], sg.W_out.weight[7])
    loss = word2vec_loss(sg, (centre, context, negatives))
    assert torch.equal(loss, negative_sampling_loss(v_w, u_c, u_neg))

    cbow = CBOW(10, 3)
    contexts = torch.tensor([[0, 2, -1, -1], [4, -1, -1, -1]])  # -1 pads
    h, u_w, _ = cbow(contexts, torch.tensor([1, 5]), torch.tensor([[6], [7]]))
    torch.testing.assert_close(h[0], (cbow.W_in.weight[0] + cbow.W_in.weight[2]) / 2)
    torch.testing.assert_close(h[1], cbow.W_in.weight[4])
    assert torch.equal(u_w, cbow.W_out.weight[[1, 5]])


# ---------------------------------------------------------------- queries and evaluation

@pytest.fixture(scope="module")
def lee_vectors(gensim_lee):
    return WordVectors(gensim_lee.wv.index_to_key, gensim_lee.wv.vectors)


def test_most_similar_and_analogy_match_gensim(gensim_lee, lee_vectors):
    kv = gensim_lee.wv
    for word in ["attacks", "government", "australia"]:
        ours = lee_vectors.most_similar(word, topn=10)
        theirs = kv.most_similar(word, topn=10)
        assert [w for w, _ in ours] == [w for w, _ in theirs]
        # float32 cosines computed in different orders: agree to a few ulps of 1.
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-6)
    a, b, c = "israel", "israeli", "palestinian"
    ours = lee_vectors.analogy(a, b, c, topn=5)
    theirs = kv.most_similar(positive=[b, c], negative=[a], topn=5)
    assert [w for w, _ in ours] == [w for w, _ in theirs]


def test_analogy_on_planted_vectors():
    s = 1 / math.sqrt(2)
    words = ["man", "woman", "king", "queen", "apple"]
    vectors = [[1, 0, 0], [0, 1, 0], [s, 0, s], [0, s, s], [-1, 0, 0]]
    wv = WordVectors(words, vectors)
    assert wv.analogy("man", "king", "woman")[0][0] == "queen"
    result = evaluate_analogies(wv, [("man", "king", "woman", "queen", "royal"),
                                     ("king", "man", "queen", "woman", "royal"),
                                     ("man", "king", "pear", "queen", "royal")])
    assert (result["n_correct"], result["n_answerable"], result["n_total"]) == (2, 2, 3)
    assert result["sections"] == {"royal": (2, 2)}
    assert [q[:4] for q in result["questions"]] == [("man", "king", "woman", "queen"),
                                                    ("king", "man", "queen", "woman")]
    assert result["ranks"].tolist() == [1, 1]
    # With man, king and woman excluded only queen and apple remain: apple comes second.
    assert evaluate_analogies(wv, [("man", "king", "woman", "apple", "x")])["ranks"].tolist() == [2]
    with pytest.raises(KeyError, match="pear"):
        wv.most_similar("pear")


def test_word_pair_evaluation_matches_gensim(gensim_lee, lee_vectors):
    for path, pairs in [("wordsim353.tsv", corpora.load_wordsim353()),
                        ("simlex999.txt", corpora.load_simlex999())]:
        _, spearman, oov = gensim_lee.wv.evaluate_word_pairs(datapath(path))
        ours = evaluate_word_pairs(lee_vectors, pairs)
        # Same pairs, same float32 cosines: only summation order differs.
        assert ours["spearman"] == pytest.approx(spearman.statistic, abs=1e-6)
        assert ours["n_used"] == round(len(pairs) * (1 - oov / 100))


def test_analogy_evaluation_matches_gensim(gensim_lee, lee_vectors):
    _, sections = gensim_lee.wv.evaluate_word_analogies(datapath("questions-words.txt"))
    total = sections[-1]
    ours = evaluate_analogies(lee_vectors, corpora.load_analogy_questions())
    assert ours["n_answerable"] == len(total["correct"]) + len(total["incorrect"])
    assert ours["n_correct"] == len(total["correct"])
    assert ours["n_total"] == 19544
    assert ours["n_correct"] == int(np.sum(ours["ranks"] == 1))


def test_analogy_ranks_match_the_query_ranking(lee_vectors):
    # The ranks come from the batched scores; WordVectors.analogy ranks one question at a time.
    result = evaluate_analogies(lee_vectors, corpora.load_analogy_questions())
    assert len(result["ranks"]) == result["n_answerable"] > 20
    for (a, b, c, d, _), rank in list(zip(result["questions"], result["ranks"]))[::7][:20]:
        scored = lee_vectors.analogy(a, b, c, topn=len(lee_vectors) - 3)
        ranking = [w for w, _ in scored]
        # Batched and one-at-a-time float32 matrix products round differently (about 1e-7): words
        # whose scores tie with d's to 1e-5 may swap places, nothing else may.
        d_score = dict(scored)[d]
        ties = sum(abs(score - d_score) <= 1e-5 for _, score in scored)  # d itself included
        assert abs(ranking.index(d) + 1 - rank) < ties, (d, ranking.index(d) + 1, rank)


def test_restrict_to_keeps_only_shared_words(lee_vectors):
    pairs = corpora.load_wordsim353()
    full = evaluate_word_pairs(lee_vectors, pairs)
    shared = evaluate_word_pairs(lee_vectors, pairs, restrict_to=set(lee_vectors.words[:300]))
    assert 3 <= shared["n_used"] < full["n_used"]


# ---------------------------------------------------------------- training

def topic_corpus(n_sentences=300, length=12, seed=0):
    """Sentences drawn from one of two disjoint topics of ten words each."""
    rng = np.random.default_rng(seed)
    topics = [[f"a{k}" for k in range(10)], [f"b{k}" for k in range(10)]]
    return [list(rng.choice(topics[s % 2], size=length)) for s in range(n_sentences)]


@pytest.mark.parametrize("architecture", ["skipgram", "cbow"])
def test_training_separates_two_topics(architecture):
    result = train_word2vec(topic_corpus(), architecture=architecture, dim=16, window=3, min_count=1,
                            sample=0, epochs=5, batch_size=64, device="cpu", progress=False)
    wv = result.vectors
    same = np.mean([wv.similarity(f"a{i}", f"a{j}") for i in range(10) for j in range(i)])
    cross = np.mean([wv.similarity(f"a{i}", f"b{j}") for i in range(10) for j in range(10)])
    assert same > cross + 0.5, (same, cross)
    assert result.history.train_loss[-1] < result.history.train_loss[0]


def test_bad_input_is_rejected():
    with pytest.raises(TypeError, match="token lists"):
        build_vocab(["the cat sat", "on the mat"])
    with pytest.raises(ValueError, match="min_count"):
        build_vocab([["a", "b"]], min_count=5)
    with pytest.raises(ValueError, match="architecture"):
        train_word2vec([["a", "b"]], architecture="glove", min_count=1)
    with pytest.raises(ValueError, match="window"):
        context_windows([1, 2], [0, 0], window=0)


@pytest.mark.slow
@pytest.mark.parametrize("architecture, settings", [
    # gensim's test_sg_neg and test_cbow_neg settings (gensim/test/test_word2vec.py)
    ("skipgram", dict(window=4, negative=15, min_count=5, epochs=10)),
    ("cbow", dict(window=5, negative=15, min_count=5, epochs=10, sample=0)),
])
def test_lee_corpus_passes_gensims_sanity_check(lee, architecture, settings):
    # Lee is tiny (60,000 tokens): batches of 1024 give Adam enough steps.
    result = train_word2vec(lee, architecture=architecture, batch_size=1024, device="cpu", progress=False,
                            **settings)
    wv = result.vectors
    ranking = [w for w, _ in wv.most_similar("attacks", topn=len(wv))]
    assert ranking.index("bombings") < 50
    near_vector = [w for w, _ in wv.most_similar(wv["attacks"], topn=51)]
    assert "attacks" in near_vector and "bombings" in near_vector
