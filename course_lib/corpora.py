"""Offline text corpora and word-embedding evaluation sets.

Nothing here downloads. The text comes from two places that a ``pip`` or
``apt-get`` install puts on the machine:

- the test data shipped inside the ``gensim`` package: an excerpt of English
  Wikipedia (106 articles, about 444,000 tokens), the Lee news corpus (300
  short articles, about 60,000 tokens), and the evaluation sets WordSim353,
  SimLex-999 and Mikolov's analogy questions ``questions-words.txt``;
- the King James Bible of the Debian package ``bible-kjv`` (about 770,000
  tokens in 31,102 verses), read through its ``bible`` program.

The folder named by the environment variable ``COURSE_DATA`` is searched first,
so the gensim files can also be copied there by hand.

Corpora come back as lists of documents (or verses), each a list of tokens made
by :func:`simple_tokenize`. Evaluation sets come back as plain lists of tuples.
"""
from __future__ import annotations

import bz2
import html
import importlib.util
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from .data import DataNotFoundError

WIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
LEE_FILES = {"background": "lee_background.cor", "test": "lee.cor"}
WORDSIM_FILE = "wordsim353.tsv"
SIMLEX_FILE = "simlex999.txt"
ANALOGY_FILE = "questions-words.txt"
BIBLE_DATA = Path("/usr/lib/bible.data")

# Letters (and underscores) only: digits and punctuation split tokens and are dropped.
_TOKEN = re.compile(r"[^\W\d]+")


def simple_tokenize(text: str, min_len: int = 2, max_len: int = 15) -> list:
    """Lower-case ``text`` and split it into runs of letters.

    The rule mirrors gensim's ``simple_preprocess``: a token is a maximal run
    of Unicode letters or underscores (digits, punctuation and spaces separate
    tokens and are dropped); tokens shorter than ``min_len`` or longer than ``max_len``
    characters, and tokens starting with ``_``, are discarded. So
    ``"The 2 cats' toys!"`` becomes ``["the", "cats", "toys"]``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return [tok for tok in _TOKEN.findall(text.lower())
            if min_len <= len(tok) <= max_len and not tok.startswith("_")]


# ---------------------------------------------------------------- file lookup

def gensim_test_data_dir() -> Path | None:
    """The ``test/test_data`` folder of the installed gensim package, or None.

    Found without importing gensim (which takes a second and is not needed).
    """
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "test" / "test_data"
    return folder if folder.is_dir() else None


def _gensim_file(filename: str, label: str) -> Path:
    folders = []
    if os.environ.get("COURSE_DATA"):
        folders.append(Path(os.environ["COURSE_DATA"]))
    if gensim_test_data_dir() is not None:
        folders.append(gensim_test_data_dir())
    for folder in folders:
        if (folder / filename).is_file():
            return folder / filename
    raise DataNotFoundError(
        f"{label} ({filename}) was not found in $COURSE_DATA or in gensim's test data. "
        "It ships with gensim: run `pip install gensim` (or copy the file into $COURSE_DATA)."
    )


# ---------------------------------------------------------------- Wikipedia

def strip_wiki_markup(text: str) -> str:
    """Remove MediaWiki markup and keep the running text of an article.

    Removed: comments, ``<ref>`` footnotes, ``<math>`` formulas, templates ``{{...}}`` and tables
    ``{|...|}`` (nested ones too), links to files, images, categories and
    other-language versions, external URLs and HTML tags. Kept: the visible
    label of internal links (``[[state (polity)|state]]`` gives ``state``), of
    external links (``[http://... label]`` gives ``label``) and image captions.
    """
    text = html.unescape(text)  # the XML parser decodes once; the wikitext escapes again (&nbsp;)
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.DOTALL)
    text = re.sub(r"<math[^>]*>.*?</math>", " ", text, flags=re.DOTALL)
    text = re.sub(r"<ref[^>]*/>", " ", text)
    text = re.sub(r"<ref[^>]*>.*?</ref>", " ", text, flags=re.DOTALL)
    # Innermost first, until nothing changes: handles nesting without a parser.
    for pattern in (r"\{\{[^{}]*\}\}", r"\{\|(?:(?!\{\|).)*?\|\}"):
        previous = None
        while previous != text:
            previous = text
            text = re.sub(pattern, " ", text, flags=re.DOTALL)

    def link(match):
        target, _, label = match.group(1).partition("|")
        caption = label.rpartition("|")[2]
        if re.match(r"\s*(file|image)\s*:", target, flags=re.IGNORECASE):
            # Keep an image's caption, not its layout options ("thumb", "250px").
            return " " + caption + " " if " " in caption.strip() else " "
        # "Category:", "fr:", ... are not part of the running text.
        if re.match(r"\s*:?\s*(category|[a-z]{2,3}(-[a-z]+)?)\s*:", target, flags=re.IGNORECASE):
            return " "
        return " " + (caption if label else target) + " "

    previous = None
    while previous != text:
        previous = text
        text = re.sub(r"\[\[([^\[\]]*)\]\]", link, text)
    text = re.sub(r"\[(?:https?|ftp)://\S*\s*([^\]]*)\]", r" \1 ", text)
    text = re.sub(r"(?:https?|ftp)://\S+", " ", text)
    text = re.sub(r"<[^>]+>", " ", text)
    return text


def load_wikipedia_excerpt(min_tokens: int = 50) -> list:
    """The English Wikipedia excerpt in gensim's test data, one token list per article.

    Only encyclopedia articles are kept (namespace 0, no redirects); the markup
    is removed by :func:`strip_wiki_markup`, the text split by
    :func:`simple_tokenize`, and articles with fewer than ``min_tokens`` tokens
    are dropped, as gensim's ``WikiCorpus`` does. 106 articles, about 444,000
    tokens (gensim's ``WikiCorpus`` keeps more table text and counts 453,000).
    """
    path = _gensim_file(WIKI_FILE, "The Wikipedia excerpt")
    articles = []
    with bz2.open(path, "rb") as stream:
        for _, element in ET.iterparse(stream, events=("end",)):
            if not element.tag.endswith("}page"):
                continue
            ns = element.findtext("{*}ns")
            text = element.findtext("{*}revision/{*}text") or ""
            element.clear()  # keep memory flat while streaming the XML
            if ns != "0" or text.lstrip().lower().startswith("#redirect"):
                continue
            tokens = simple_tokenize(strip_wiki_markup(text))
            if len(tokens) >= min_tokens:
                articles.append(tokens)
    return articles


# ---------------------------------------------------------------- Lee corpus

def load_lee_corpus(part: str = "background") -> list:
    """The Lee news corpus from gensim's test data, one token list per article.

    ``part="background"`` is ``lee_background.cor`` (300 articles, about 60,000
    tokens), the corpus gensim's own word2vec tests train on; ``part="test"``
    is ``lee.cor`` (50 articles).
    """
    if part not in LEE_FILES:
        raise ValueError(f"part must be one of {sorted(LEE_FILES)}, got {part!r}")
    path = _gensim_file(LEE_FILES[part], "The Lee corpus")
    with open(path, encoding="utf-8", errors="replace") as f:
        return [simple_tokenize(line) for line in f]


# ---------------------------------------------------------------- KJV Bible

def load_bible_kjv(tokenize: bool = True) -> list:
    """The King James Bible (Debian package ``bible-kjv``), one item per verse.

    The package stores the text compressed in ``/usr/lib/bible.data``; its
    ``bible`` program prints it, one verse per line, with ``bible -f
    Gen1:1-Rev22:21``. Returns 31,102 token lists (``tokenize=True``, 771,570
    tokens in all) or ``(reference, text)`` pairs such as ``("Ge1:1", "In the
    beginning God created the heaven and the earth.")``.
    """
    program = shutil.which("bible")
    if program is None or not BIBLE_DATA.is_file():
        raise DataNotFoundError(
            "The King James Bible was not found: it comes from the Debian package bible-kjv "
            "(run `sudo apt-get install bible-kjv`), which provides the `bible` program and "
            f"{BIBLE_DATA}."
        )
    # -f switches pretty-printing off: one "Ref text" line per verse.
    result = subprocess.run([program, "-f", "Gen1:1-Rev22:21"], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=120)
    verses = []
    for line in result.stdout.splitlines():
        reference, _, text = line.partition(" ")
        if re.fullmatch(r"\w+\d+:\d+", reference):
            verses.append((reference, text.strip()))
    if result.returncode != 0 or len(verses) < 30000:
        raise DataNotFoundError(
            f"`bible -f Gen1:1-Rev22:21` gave {len(verses)} verses (exit status {result.returncode}); "
            "the bible-kjv package looks broken: reinstall it with `sudo apt-get install --reinstall "
            f"bible-kjv bible-kjv-text`. {result.stderr.strip()[:200]}"
        )
    if not tokenize:
        return verses
    return [simple_tokenize(text) for _, text in verses]


# ---------------------------------------------------------------- evaluation sets

def _read_scored_pairs(filename: str, label: str, lowercase: bool) -> list:
    pairs = []
    with open(_gensim_file(filename, label), encoding="utf-8") as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            a, b, score = line.rstrip("\n").split("\t")[:3]
            if lowercase:
                a, b = a.lower(), b.lower()
            pairs.append((a, b, float(score)))
    return pairs


def load_wordsim353(lowercase: bool = True) -> list:
    """WordSim353: 353 word pairs ``(word1, word2, human score 0-10)``.

    The scores mix similarity and relatedness ("cup"/"coffee" scores high).
    """
    return _read_scored_pairs(WORDSIM_FILE, "WordSim353", lowercase)


def load_simlex999(lowercase: bool = True) -> list:
    """SimLex-999: 999 word pairs ``(word1, word2, human score 0-10)``.

    Scores only similarity, not relatedness: "coast"/"shore" scores high,
    "cup"/"coffee" low. Harder for embeddings trained on co-occurrence.
    """
    return _read_scored_pairs(SIMLEX_FILE, "SimLex-999", lowercase)


def load_analogy_questions(lowercase: bool = True) -> list:
    """Mikolov's 19,544 analogy questions as ``(a, b, c, d, section)`` tuples.

    Each reads "a is to b as c is to d", for example ``("athens", "greece",
    "baghdad", "iraq", "capital-common-countries")``; a model answers it with
    the word nearest to b - a + c. Sections starting with ``gram`` are
    syntactic (plurals, tenses), the others semantic.
    """
    questions, section = [], None
    with open(_gensim_file(ANALOGY_FILE, "The analogy questions"), encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            if line.startswith(":"):
                section = line[1:].strip()
                continue
            words = line.lower().split() if lowercase else line.split()
            if len(words) == 4:
                questions.append((*words, section))
    return questions
