# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/connector: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/connector

## Run web + worker + embedded Redis + SQLite, a local Customer.io stand-in, and post signed samples.
run: $(BIN)/connector
	$(BIN)/connector serve --demo

## Lint, then the whole test suite (real Redis; PostgreSQL too when reachable).
test: $(BIN)/connector
	$(BIN)/ruff check .
	$(BIN)/pytest

bench: $(BIN)/connector
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var .pytest_cache
