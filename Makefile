# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint bench bench-shops faults fuzz clean screenshots

$(BIN)/connector: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/connector

## Run web + worker + embedded Redis + SQLite, a local Customer.io stand-in, and post signed samples.
run: $(BIN)/connector
	$(BIN)/connector serve --demo

## Lint, type-check, check the import layers, then the whole test suite (real Redis;
## PostgreSQL too when reachable).
test: $(BIN)/connector
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest

## Refresh the screenshots in docs/ (the browser tests write them only when asked).
screenshots: $(BIN)/connector
	CONNECTOR_SCREENSHOTS=$(CURDIR)/docs $(BIN)/pytest tests/browser

## Post 10,000 signed, mutated webhooks of every handled topic through the app and workers
## (SQLite and PostgreSQL); prints the figures docs/reliability.md quotes.
fuzz: $(BIN)/connector
	FUZZ_WEBHOOKS=10000 $(BIN)/pytest -q -s -p no:randomly tests/fuzz

bench: $(BIN)/connector
	$(BIN)/python bench/run.py

## Many shops: 200 orders/s for 10 s spread over 1, 100 and 1,000 shops (each with its own
## Customer.io workspace), gunicorn + 2 RQ workers; latency, work and PASS/FAIL per run.
## Options: make bench-shops ARGS="--shops 1,10 --seconds 3".
bench-shops: $(BIN)/connector
	$(BIN)/python bench/shops.py $(ARGS)

## Run the fault suite (tests/faults, also part of `make test`) and print its table;
## `bench/faults.py --write-doc` also puts the table into docs/reliability.md.
faults: $(BIN)/connector
	$(BIN)/python bench/faults.py

clean:
	rm -rf $(VENV) var .pytest_cache
