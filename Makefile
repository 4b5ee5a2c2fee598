# Two commands set everything up on a fresh machine:
#   make demo   generate microstructures with the default settings (installs what is missing)
#   make test   run the unit tests and execute every book chapter (installs what is missing)
# Point LGTUTORIAL_DATA at a folder of reference files, or let the package download them.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# A CPU build of torch that pip finds on the project machines; Colab/conda bring their own.
TORCH_SPEC ?= torch==2.13.0
# Reference data: a local copy when there is one next to the checkout (absolute, because the book's
# notebooks run from book/); otherwise the package downloads into its cache.
ifneq ($(wildcard ../shared/data),)
LGTUTORIAL_DATA ?= $(abspath ../shared/data)
export LGTUTORIAL_DATA
endif

.PHONY: install demo test book student browser-check lint benchmark clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: install
	$(VENV)/bin/lgtutorial demo

test: install
	$(PY) -m pytest -q

# The book executes every chapter at its default parameters. MPLBACKEND is unset for it: a
# non-inline backend (CI exports MPLBACKEND=Agg for the tests) would leave the pages without figures.
book: install
	env -u MPLBACKEND $(VENV)/bin/jupyter-book build .

# The student edition: the book without its exercise solutions in _student/ (notebooks and HTML);
# fails if a stub does not raise NotImplementedError or any other cell fails without the solutions.
student: install
	env -u MPLBACKEND $(PY) tools/student_edition.py --build

# Opens every built page in headless Chromium (Debian: apt-get install chromium chromium-driver) and
# fails on math MathJax cannot render, images that did not load, error or warning outputs, broken
# links or citations, tables left as raw text, widgets without a static figure; on chapter pages also
# the Colab launch button and collapsed exercise solutions (see tests/browser/check_book.py).
browser-check: install
	$(PY) -c "import selenium" 2>/dev/null || $(PY) -m pip install --quiet -e ".[browser]"
	$(PY) tests/browser/check_book.py

# ruff; the house's import contracts (layers, no cycles; pyproject.toml [tool.importlinter]); dead code
# (vulture); the Pages workflow against GitHub's workflow schema (check-jsonschema)
lint: install
	$(VENV)/bin/ruff check lgtutorial tests benchmarks tools book/figures
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(VENV)/bin/lint-imports --no-cache
	$(PY) tools/dead_code.py

benchmark: install
	$(PY) benchmarks/grf_throughput.py

clean:
	rm -rf _build book/_build _student .pytest_cache
