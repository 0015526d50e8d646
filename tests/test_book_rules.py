"""House rules of the book, checked on the notebooks' text (nothing is executed here).

1. **Numbers in the prose come from the code.** A *result number* is a decimal (``0.46``), a
   percentage (``29%``) or a number written with a thousands separator (``12 000``, ``1,896``) in a
   chapter's Markdown, outside math (``$...$``), code spans, link targets and ``{glue:...}`` roles.
   Such a number must be glued (``glue("key", value)`` in the code, ``{glue:text}`key:.2f``` in the
   text). Not results, and so allowed: section numbers (``4.3`` in chapter 4, or any number after
   "section"), and the short list ``ALLOWED`` below of facts that are not results of the build
   (sizes of data sets, settings the text chooses, constants of a cited method), each with its reason.
   Settings and constants can also be written as math (``$\\mathrm{MF} = 1.5$``).
2. **Student-facing text never speaks of the course's sources**: no "the seed(s)", "seed lecture",
   "the lecture('s)" in any chapter, exercise source or released exercise (Markdown and code
   comments). A random-number seed is "the random seed".
3. **Checks are asserts**: no chapter prints the result of ``allclose``/``isclose``/``array_equal``
   (a printed ``False`` does not fail the build; an ``assert`` does).
4. **Short cells**: no chapter code cell runs past ``MAX_CELL_LINES`` lines; longer helpers belong
   in ``course_lib``, with tests.
5. **Sources are cited**: every ``{cite}`` key is in references.bib, which holds every work the
   course cites or will cite, and the references page and the execution-time page are in _toc.yml.
"""
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("ch*.ipynb"))
EXERCISES = sorted(ROOT.glob("solutions/*/*.ipynb")) + sorted(ROOT.glob("notebooks/*/*.ipynb"))
MAX_CELL_LINES = 30

# chapter stem -> {allowed literal: why it is not a result of the build}
ALLOWED = {
    "ch02_sammon": {"68,000": "size of the full PBMC data set"},
    "ch03_tsne": {"70,000": "images in Fashion-MNIST"},
    "ch04_word2vec": {"19,544": "number of analogy questions in the test set",
                      "10,000": "gensim's sentence-length limit, a setting",
                      "95%": "the confidence level of the intervals",
                      "60,000": "size of the Lee corpus", "31,102": "verses of the King James Bible",
                      "770,000": "tokens of the King James Bible"},
    "ch05_factorized": {"535 500": "entries of the 700 x 765 matrix", "53 550": "a tenth of them, the test split",
                        "80%": "the training share, a setting", "20%": "the held-out share, a setting",
                        "100%": "a perfect score"},
    "ch06_training": {"70 000": "images in Fashion-MNIST", "60 000": "its training images"},
    "ch07_autoencoders": {"60 000": "Fashion-MNIST's training images", "0.05": "the sparsity target, a setting",
                          "5%": "the hot-pixel share and the accepted false-positive rate, settings"},
    "ch10_adversarial": {"20,000": "samples drawn for the discriminator check, a setting",
                         "10,000": "samples per coverage count, the ALI paper's protocol",
                         "99%": "the share of the grid's own samples within 3 standard deviations, a property "
                                "of the Gaussian",
                         "13.4": "modes covered by ALI in the ALI paper, cited", "5.8": "its standard deviation",
                         "9.2": "the GAN's standard deviation in the ALI paper, cited",
                         "4%": "the share a random assignment gives (1/25), a constant",
                         "10%": "the sampling share of a quality threshold, a setting"},
    "ch11_contrastive": {"0.1": "chance accuracy with 10 classes",
                         "0.82": "k-NN accuracy reported by lightly's CIFAR-10 benchmarks, cited",
                         "0.87": "the same, upper end"},
    "ch12_masked": {"75%": "masking ratio, a setting (and MAE's default, cited)", "85%": "masking ratio, a setting",
                    "95%": "masking ratio, a setting", "25%": "masking ratio, a setting",
                    "50%": "masking ratio, a setting", "90%": "masking ratio, a setting; also the cited MAE "
                                                             "fine-tuning accuracy on CIFAR-10",
                    "15%": "BERT's share of chosen tokens, a setting", "80%": "BERT's mask-token share",
                    "10%": "BERT's random-token and unchanged shares", "74%": "the cited from-scratch accuracy",
                    "40%": "BEiT's masking ratio, cited", "256,000": "tokens drawn to check the rule, a setting",
                    "4,000": "the vocabulary size, a setting", "1,000": "words compared, a setting",
                    "15,000": "training images at CPU size, a setting", "100,000": "a label count in a question",
                    "70,000": "cells in a question"},
    "ch09_vqvae": {"60 000": "Fashion-MNIST's training images"},
    "ch08_vae": {"60 000": "Fashion-MNIST's training images",
                 "0.01": "the threshold in nats below which a latent dimension counts as unused, a setting"},
}

NOT_PROSE = re.compile(r"\$\$.*?\$\$|\$[^$]+\$|`[^`\n]*`|\]\([^)]*\)|^\([\w-]+\)=$", re.S | re.M)
RESULT_NUMBER = re.compile(r"(?<![\w.,])(\d+(?:\.\d+)?\s?%|\d*\.\d+|\d{1,3}(?:[ ,]\d{3})+)(?![\w.]*\d)")
LECTURE_WORDING = re.compile(r"\bthe seeds?\b|\bseeds?'s?(?=\s)|\bseed lectures?\b|\bthe lectures?\b|\blecture's\b",
                             re.I)
PRINTED_CHECK = re.compile(r"print\((?:[^()]|\([^()]*\))*\b(?:allclose|isclose|array_equal)\(")
# Every work the course cites, now or in the chapters to come.
REQUIRED_REFERENCES = [
    "pearson1901lines", "sammon1969nonlinear", "vandermaaten2008visualizing", "mikolov2013efficient",
    "mikolov2013distributed", "belkin2003laplacian", "vincent2008extracting", "rifai2011contractive",
    "kingma2014autoencoding", "vandenoord2017neural", "dumoulin2017adversarially", "donahue2017adversarial",
    "chen2020simple", "he2020momentum", "he2022masked", "zbontar2021barlow", "bardes2022vicreg",
    "radford2021learning", "devlin2019bert", "wang2020understanding", "mcinnes2018umap",
]


def cells(path: Path, kind: str) -> list:
    return [(i, "".join(c["source"])) for i, c in enumerate(json.loads(path.read_text())["cells"])
            if c["cell_type"] == kind]


def chapter_number(path: Path) -> int:
    return int(re.match(r"ch(\d+)", path.stem).group(1))


def hard_coded_numbers(path: Path) -> list:
    """The result numbers in a chapter's prose that are neither glued nor allowed."""
    allowed = ALLOWED.get(path.stem, {})
    found = []
    for i, text in cells(path, "markdown"):
        prose = NOT_PROSE.sub(" ", re.sub(r"\{glue:?\w*\}`[^`]*`", " ", text))
        for match in RESULT_NUMBER.finditer(prose):
            number = match.group(1)
            before = prose[max(0, match.start() - 12):match.start()].lower()
            section = re.fullmatch(rf"{chapter_number(path)}\.\d{{1,2}}", number) or re.search(r"sections?\s+$", before)
            if not section and number.replace(" %", "%") not in allowed:
                found.append(f"{path.name} cell {i}: {number!r} in '...{prose[max(0, match.start() - 40):match.end() + 20]}...'")
    return found


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_numbers_in_the_prose_are_glued(path):
    found = hard_coded_numbers(path)
    assert not found, "hard-coded result numbers (glue them, or add a fact to ALLOWED with its reason):\n" + \
        "\n".join(found)


def test_the_number_rule_catches_results_and_spares_the_rest(tmp_path):
    nb = {"cells": [{"cell_type": "markdown", "source": [
        "Two components keep about 29% of the variance, a ratio of 0.46, and 12 000 images; "
        "section 2.4 and 4.3 are references, $\\eta = 0.5$ is math, `lr=0.1` is code, "
        "{glue:text}`ch04_ratio:.2f` is glued."]}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "ch04_example.ipynb"
    path.write_text(json.dumps(nb))
    found = [f.split("'")[1] for f in hard_coded_numbers(path)]
    assert found == ["29%", "0.46", "12 000"]


STUDENT_FACING = CHAPTERS + sorted((ROOT / "book").glob("*.md")) + EXERCISES


@pytest.mark.parametrize("path", STUDENT_FACING, ids=[str(p.relative_to(ROOT)) for p in STUDENT_FACING])
def test_student_text_never_mentions_the_course_sources(path):
    if path.suffix == ".md":
        texts = [(0, path.read_text())]
    else:
        comments = [(i, "\n".join(re.findall(r"#.*", code))) for i, code in cells(path, "code")]
        texts = cells(path, "markdown") + comments
    hits = [f"cell {i}: ...{text[max(0, m.start() - 30):m.end() + 30]}..." for i, text in texts
            for m in LECTURE_WORDING.finditer(text)]
    assert not hits, f"{path.name} speaks of the course's sources; cite the works instead:\n" + "\n".join(hits)


def test_the_wording_rule_catches_the_usual_phrasings():
    for bad in ["The seed's recipe", "the seeds call it", "(seed lecture 6)", "The lecture's correntropy",
                "The seeds' answer:"]:
        assert LECTURE_WORDING.search(bad), bad
    for fine in ["with the random seed and the epochs", "seed_everything(0)", "with a few seeds."]:
        assert not LECTURE_WORDING.search(fine), fine


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_checks_are_asserts_not_prints(path):
    printed = [i for i, code in cells(path, "code") if PRINTED_CHECK.search(code)]
    assert not printed, f"{path.name}: cells {printed} print a check; assert it (with a message) instead"
    assert PRINTED_CHECK.search('print("ok:", np.allclose(a, b))') and not PRINTED_CHECK.search("assert np.allclose(a, b)")


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_no_chapter_cell_runs_past_the_limit(path):
    long = [(i, len(code.splitlines())) for i, code in cells(path, "code") if len(code.splitlines()) > MAX_CELL_LINES]
    assert not long, f"{path.name}: cells (index, lines) {long} exceed {MAX_CELL_LINES} lines; move helpers to course_lib"


def bib_keys() -> set:
    return set(re.findall(r"^@\w+\{([^,]+),", (ROOT / "references.bib").read_text(), re.M))


def test_every_cited_key_is_in_the_bibliography():
    keys = bib_keys()
    missing = {}
    for path in STUDENT_FACING:
        text = path.read_text()
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text if path.suffix == ".md" else
                                "".join(t for _, t in cells(path, "markdown"))):
            missing.update({k.strip(): path.name for k in group.split(",") if k.strip() not in keys})
    assert not missing, f"cited but not in references.bib: {missing}"


def test_the_bibliography_holds_every_work_the_course_cites_and_the_chapters_cite_it():
    assert not set(REQUIRED_REFERENCES) - bib_keys(), set(REQUIRED_REFERENCES) - bib_keys()
    cited = sum(len(re.findall(r"\{cite(?::\w+)?\}`", "".join(t for _, t in cells(p, "markdown")))) for p in CHAPTERS)
    assert cited >= len(CHAPTERS), "the chapters should cite their sources with {cite} roles"
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert "references.bib" in config["bibtex_bibfiles"]


def test_toc_has_the_references_and_execution_pages():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = {c["file"] for part in toc["parts"] for c in part["chapters"]}
    assert "book/references" in files and "book/execution" in files
    assert "{bibliography}" in (ROOT / "book" / "references.md").read_text()
    assert "{nb-exec-table}" in (ROOT / "book" / "execution.md").read_text()


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapters_glue_through_course_lib(chapter):
    # myst_nb is not installed on Colab: a chapter that imports it directly fails there at once
    for i, source in cells(chapter, "code"):
        assert "from myst_nb import" not in source, (
            f"{chapter.name} cell {i}: use `from course_lib.book import glue`, which runs without MyST-NB")
