# The course's commands. `make book` and `make test` do all the set-up they need.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# chromium, chromium-driver: the browser test of the built book; bubblewrap: the grader's sandbox
# (tools/secure_grading.py); postgresql: the gradebook-server test
APT_PACKAGES := dataset-fashion-mnist bible-kjv chromium chromium-driver bubblewrap postgresql
# MathJax 3 from the npm registry, unpacked into _vendor/ (copied to the book's _static/) so that the book renders math offline.
MATHJAX_VERSION := 3.2.2
MATHJAX := _vendor/mathjax/tex-mml-chtml.js
# Execution caches are keyed by the notebooks' text only: a change to course_lib must empty them.
COURSE_LIB_HASH = $$(cat pyproject.toml course_lib/*.py | sha256sum | cut -c1-16)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Tools the commands call by name (nbgrader runs alembic, the book runs jupyter) come from the venv.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup data mathjax book test release headers bench clean grade budgets

setup: $(INSTALLED) data mathjax

# Virtual environment with the pinned requirements and course_lib (editable).
$(INSTALLED): requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# Offline data: Debian packages, and the single-cell file from the scanpy wheel.
data: $(INSTALLED)
	@dpkg -s $(APT_PACKAGES) >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(APT_PACKAGES); }
	@$(PY) tools/fetch_data.py

mathjax: $(MATHJAX)
$(MATHJAX):
	@mkdir -p .cache/npm _vendor/mathjax
	cd .cache/npm && { [ -f mathjax-$(MATHJAX_VERSION).tgz ] || npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null; }
	tar -xzf .cache/npm/mathjax-$(MATHJAX_VERSION).tgz -C _vendor/mathjax --strip-components=2 package/es5
	@test -f $@

# The book at full size, into _build/html, executing only the chapters that changed since the last
# build (jupyter-cache in _build/.jupyter_cache; the tests' quick-mode build lives in _build/quick/).
# A notebook that raises fails the build.
book: setup
	@mkdir -p _build; h=$(COURSE_LIB_HASH); [ "$$(cat _build/.course_lib_hash 2>/dev/null)" = "$$h" ] || \
	  { rm -rf _build/.jupyter_cache; echo "$$h" > _build/.course_lib_hash; }
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "book: $(CURDIR)/_build/html/index.html"

# Everything: unit tests, nbgrader round trips, solution notebooks (nbval) and the
# book built in quick mode (inside tests/test_book.py).
test: setup
	COURSE_QUICK=1 $(PY) -m pytest -q -ra -n 2 --dist loadscope tests solutions --nbval-lax --durations=15

# Regenerate the student notebooks (notebooks/) from the nbgrader sources (solutions/).
release: $(INSTALLED)
	$(PY) tools/notebook_header.py
	@for dir in solutions/*/; do \
	  a=$$(basename $$dir); $(VENV)/bin/nbgrader generate_assignment $$a --force --log-level=WARN || exit 1; \
	done
	@rm -f gradebook.db
	$(MAKE) budgets

# Each graded cell's time budget: re-time the solution notebooks whose code changed
# (grading/time_budgets.json; run at full size, the size a class is graded at).
budgets: $(INSTALLED)
	env -u COURSE_QUICK $(PY) tools/time_budgets.py --changed-only

# Grade a whole class: `make grade ASSIGNMENT=ch01 [SUBMISSIONS=export.zip] [WORKERS=2]`.
# Submissions: submitted/<student>/<assignment>/ (nbgrader's layout) or an LMS zip; writes the
# gradebook, feedback/, grades_<assignment>.csv and prints a summary (see the README).
WORKERS ?= $(shell nproc)
grade: setup
	@test -n "$(ASSIGNMENT)" || { echo "usage: make grade ASSIGNMENT=ch01 [SUBMISSIONS=folder-or-zip] [WORKERS=n]"; exit 2; }
	$(VENV)/bin/nbgrader generate_assignment $(ASSIGNMENT) --force --log-level=WARN
	$(PY) tools/grade_class.py $(ASSIGNMENT) $(SUBMISSIONS) --workers $(WORKERS)

headers: $(INSTALLED)
	$(PY) tools/notebook_header.py

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf _build gradebook.db submitted autograded feedback grades_*.csv grading_summary_*.json
