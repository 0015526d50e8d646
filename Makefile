# The course's commands. `make book` and `make test` do all the set-up they need.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# bubblewrap: the grader's sandbox (tools/secure_grading.py); postgresql: the gradebook-server test
APT_PACKAGES := dataset-fashion-mnist bible-kjv bubblewrap postgresql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Tools the commands call by name (nbgrader runs alembic, the book runs jupyter) come from the venv.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup data book test release headers bench clean grade budgets

setup: $(INSTALLED) data

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

# The book at full size, into _build/html. A notebook that raises fails the build.
book: setup
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
