# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint bench bench-shops bench-flash bench-scale faults fuzz clean screenshots

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

## Flash sale: 10,000 orders of one shop posted flat out to 2 web servers, 2 RQ workers, on
## PostgreSQL; drain time, exactly-once, the workspace's busiest second, console pages meanwhile.
## Options: make bench-flash ARGS="--orders 500".
bench-flash: $(BIN)/connector
	$(BIN)/python bench/flash_sale.py $(ARGS)

## Scale-out: one backlog (5,000 orders over 100 shops) drained by 1, 2 and 4 RQ workers on
## one PostgreSQL and one Redis; events/s, CPU, transactions and commands per event.
## Options: make bench-scale ARGS="--orders 600 --shops 20 --workers 1,2".
bench-scale: $(BIN)/connector
	$(BIN)/python bench/scale_out.py $(ARGS)

## Run the fault suite (tests/faults, also part of `make test`) and print its table;
## `bench/faults.py --write-doc` also puts the table into docs/reliability.md.
faults: $(BIN)/connector
	$(BIN)/python bench/faults.py

clean:
	rm -rf $(VENV) var .pytest_cache
