# Two promises: `make demo` and `make test` work on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian's Chromium, for the dashboard's browser test (Playwright drives it; it never downloads a browser)
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo demo-failure serve test test-fast lint bench clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)  # leaves the local stage up with the demo's data, for `make serve`
	$(BIN)/lakehouse demo --keep-running

serve: $(STAMP)  # the API and dashboard on the local stage (http://127.0.0.1:8000/), until Ctrl-C
	$(BIN)/lakehouse serve

demo-failure: $(STAMP)  # the same, with the orders Glue job failing first: the alert, FAILED files, recovery
	$(BIN)/lakehouse demo --fail-job orders

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

test: $(STAMP) $(CHROMIUM)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest

test-fast: $(STAMP)  # the fast loop: lint, layers, types and every test but the end-to-end ones (under a minute)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest -m "not e2e"

bench: $(STAMP)
	$(BIN)/python bench/cold_start.py
	$(BIN)/python bench/validate.py
	$(BIN)/python bench/etl.py
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/sql.py

clean:
	-$(BIN)/lakehouse down
	rm -rf $(VENV) .lakehouse .pytest_cache .ruff_cache .import_linter_cache
