# Two promises: `make demo` and `make test` work on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-failure test lint bench clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lakehouse demo

demo-failure: $(STAMP)  # the same, with the orders Glue job failing first: the alert, FAILED files, recovery
	$(BIN)/lakehouse demo --fail-job orders

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/cold_start.py
	$(BIN)/python bench/validate.py
	$(BIN)/python bench/etl.py
	$(BIN)/python bench/quality.py

clean:
	-$(BIN)/lakehouse down
	rm -rf $(VENV) .lakehouse .pytest_cache .ruff_cache
