"""Our word2vec against gensim's ``Word2Vec``, side by side in one run.

Both train skip-gram with negative sampling on the same sentences with the same
settings (5 negatives, window 5, 100 dimensions, min_count 5, subsampling 1e-3,
the same number of epochs), using the same number of CPU threads: gensim with
``workers=threads``, ours with ``torch.set_num_threads(threads)``, once for
each thread count in ``--threads`` (default 1 and 2). Ours trains with Adam on
batches of 8192 pairs (``--batch-size``, ``--lr``), gensim with its own SGD.
Reported:

- training words per second: corpus tokens x epochs / training time (the
  vocabulary is built outside the timer for both; with ``--repeats`` the
  median time, the two libraries taking turns);
- Spearman correlation with WordSim353 and SimLex-999, over the pairs whose
  words are in both vocabularies;
- analogy accuracy over the questions answerable by both (all four words in
  both vocabularies), with the same 3CosAdd rule for both models.

Usage::

    python benchmarks/bench_word2vec.py            # Wikipedia excerpt, 5 epochs, 1 and 2 threads
    python benchmarks/bench_word2vec.py --quick    # Lee corpus, for a smoke test

Timings are wall-clock and suffer when other processes share the CPUs: the
load average before and after is printed and saved, so read the ratios of a
run whose load stayed below the number of CPUs. Words per CPU-second are
printed too; they depend less on the load. PyTorch suffers most: its threads
meet at a barrier after every operation, so when another process holds one of
two cores, two threads run several times slower than one (gensim's workers
never wait for each other). On a shared machine compare at ``--threads 1``.

A table goes to stdout and the numbers to ``benchmarks/results/word2vec.json``
(``word2vec-quick.json`` with ``--quick``). ``--device cuda`` trains ours on a
GPU; the issue's targets are for the CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from course_lib import corpora
from course_lib.word2vec import (
    SkipGram, Word2VecBatches, WordVectors, build_vocab, evaluate_analogies, evaluate_word_pairs,
    make_adam, word2vec_loss,
)
from course_lib.training import fit

RESULTS = Path(__file__).resolve().parent / "results" / "word2vec.json"
GENSIM_MAX_SENTENCE = 10_000  # gensim silently truncates longer sentences; cut them for both


def load_corpus(name: str) -> list:
    loaders = {"wiki": corpora.load_wikipedia_excerpt, "lee": corpora.load_lee_corpus,
               "bible": corpora.load_bible_kjv}
    documents = loaders[name]()
    return [doc[i:i + GENSIM_MAX_SENTENCE] for doc in documents for i in range(0, len(doc), GENSIM_MAX_SENTENCE)]


def run_gensim(sentences, args) -> tuple:
    from gensim.models import Word2Vec

    model = Word2Vec(sg=1, hs=0, negative=args.negative, window=args.window, vector_size=args.dim,
                     min_count=args.min_count, sample=args.sample, workers=args.threads, seed=args.seed)
    model.build_vocab(sentences)
    start, cpu_start = time.perf_counter(), time.process_time()
    model.train(sentences, total_examples=model.corpus_count, epochs=args.epochs)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return WordVectors(model.wv.index_to_key, model.wv.vectors), seconds, cpu_seconds


def run_ours(sentences, args) -> tuple:
    vocab = build_vocab(sentences, min_count=args.min_count)
    ids, sentence_ids = vocab.encode(sentences)
    batches = Word2VecBatches(ids, sentence_ids, vocab.counts, window=args.window, negative=args.negative,
                              sample=args.sample, batch_size=args.batch_size, seed=args.seed)
    torch.manual_seed(args.seed)
    model = SkipGram(len(vocab), args.dim)
    start, cpu_start = time.perf_counter(), time.process_time()
    # The timer includes making the pairs and drawing the negatives, as gensim's does.
    model.to(args.device)
    fit(model, word2vec_loss, batches.loader(), epochs=args.epochs, optimizer=make_adam(model, args.lr),
        device=args.device, seed=args.seed, progress=False)
    if torch.device(args.device).type == "cuda":
        torch.cuda.synchronize()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return WordVectors(vocab.words, model.word_vectors()), seconds, cpu_seconds


def quality(wv: WordVectors, both: set) -> dict:
    analogy = evaluate_analogies(wv, corpora.load_analogy_questions(), restrict_to=both)
    return {
        "wordsim353": evaluate_word_pairs(wv, corpora.load_wordsim353(), restrict_to=both),
        "simlex999": evaluate_word_pairs(wv, corpora.load_simlex999(), restrict_to=both),
        "analogy": {k: analogy[k] for k in ("accuracy", "n_correct", "n_answerable", "n_total")},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Lee corpus (60k tokens) instead of Wikipedia")
    parser.add_argument("--corpus", choices=["wiki", "lee", "bible"], default=None)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", default="1,2",
                        help="comma-separated thread counts: gensim workers = our torch threads")
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--negative", type=int, default=5)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--sample", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=8192, help="ours only")
    parser.add_argument("--lr", type=float, default=5e-3, help="ours only (Adam)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="train each model this many times; median time")
    parser.add_argument("--device", default="cpu", help="where ours trains (gensim always uses the CPU)")
    parser.add_argument("--out", type=Path, default=None, help=f"default {RESULTS} (-quick.json with --quick)")
    args = parser.parse_args()
    corpus = args.corpus or ("lee" if args.quick else "wiki")
    if args.out is None:
        args.out = RESULTS.with_name("word2vec-quick.json") if args.quick else RESULTS
    thread_counts = [int(t) for t in args.threads.split(",")]

    sentences = load_corpus(corpus)
    n_tokens = sum(len(s) for s in sentences)
    load_before = os.getloadavg()[0]
    print(f"corpus {corpus}: {len(sentences)} sentences, {n_tokens} tokens; {args.epochs} epochs; "
          f"{os.cpu_count()} CPUs, load average {load_before:.2f} before")

    runs = []
    for threads in thread_counts:
        args.threads = threads
        torch.set_num_threads(threads)
        times = {"gensim": [], "ours": []}
        for _ in range(args.repeats):  # alternate, so that both see the same background load
            gensim_wv, *t = run_gensim(sentences, args)
            times["gensim"].append(t)
            ours_wv, *t = run_ours(sentences, args)
            times["ours"].append(t)
        both = set(gensim_wv.words) & set(ours_wv.words)
        run = {"threads": threads}
        for name, wv in (("gensim", gensim_wv), ("ours", ours_wv)):
            seconds, cpu_seconds = np.median(np.array(times[name]), axis=0)
            run[name] = {"seconds": float(seconds), "cpu_seconds": float(cpu_seconds),
                         "seconds_all_repeats": [t[0] for t in times[name]],
                         "words_per_second": n_tokens * args.epochs / seconds,
                         # CPU time is less sensitive to other processes than wall time
                         # (but counts the time threads spend spinning while they wait)
                         "words_per_cpu_second": n_tokens * args.epochs / cpu_seconds,
                         "vocabulary": len(wv), **quality(wv, both)}
        ours, ref = run["ours"], run["gensim"]
        run["speed_ratio"] = ours["words_per_second"] / ref["words_per_second"]
        run["cpu_speed_ratio"] = ours["words_per_cpu_second"] / ref["words_per_cpu_second"]
        for key in ("wordsim353", "simlex999"):
            run[f"{key}_diff"] = ours[key]["spearman"] - ref[key]["spearman"]
        run["analogy_diff"] = ours["analogy"]["accuracy"] - ref["analogy"]["accuracy"]
        runs.append(run)
    load_after = os.getloadavg()[0]

    print(f"{'':22s} {'words/s':>9s} {'words/cpu-s':>11s} {'vocab':>6s} {'WS353 rho':>10s} "
          f"{'SimLex rho':>10s} {'analogy':>8s}")
    for run in runs:
        for name, label in (("gensim", f"gensim, {run['threads']} worker(s)"),
                            ("ours", f"ours, {run['threads']} thread(s)")):
            r = run[name]
            print(f"{label:22s} {r['words_per_second']:9.0f} {r['words_per_cpu_second']:11.0f} "
                  f"{r['vocabulary']:6d} {r['wordsim353']['spearman']:10.3f} "
                  f"{r['simlex999']['spearman']:10.3f} {r['analogy']['accuracy']:8.3f}")
    for run in runs:
        print(f"{run['threads']} thread(s): ours / gensim words per second {run['speed_ratio']:.2f} "
              f"(target >= 0.25), per CPU-second {run['cpu_speed_ratio']:.2f}; Spearman ours - gensim: "
              f"WordSim353 {run['wordsim353_diff']:+.3f}, SimLex-999 {run['simlex999_diff']:+.3f} "
              f"(target >= -0.05); analogy accuracy {run['analogy_diff']:+.3f}")
    ours = runs[-1]["ours"]
    print(f"items covered by both vocabularies: WordSim353 {ours['wordsim353']['n_used']}/"
          f"{ours['wordsim353']['n_total']} pairs, SimLex-999 {ours['simlex999']['n_used']}/"
          f"{ours['simlex999']['n_total']} pairs, analogies {ours['analogy']['n_answerable']}/"
          f"{ours['analogy']['n_total']} questions")
    print(f"load average after: {load_after:.2f} (the CPUs are shared when it exceeds their number)")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "threads")}
    report = {"corpus": corpus, "n_sentences": len(sentences), "n_tokens": n_tokens, "settings": settings,
              "machine": {"cpu_count": os.cpu_count(), "load_average_before_after": [load_before, load_after],
                          "platform": platform.platform(), "torch": torch.__version__},
              "runs": runs}
    args.out.write_text(json.dumps(report, indent=2, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
