# Two set-up commands (see README): `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: run test install install-dev lint migration clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

install-dev: $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'

## Run Entrepot: embedded SQLite (./entrepot.db), demo data, the API and the worker on localhost.
run: install
	$(BIN)/entrepot init
	$(BIN)/entrepot demo --if-missing --port $(PORT)
	$(BIN)/entrepot serve --port $(PORT)

## The whole test suite: ruff, import-linter layer contracts, pytest on SQLite and PostgreSQL.
test: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports
	$(BIN)/pytest -n 2 -q -p no:cacheprovider

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) entrepot.db entrepot.db-wal entrepot.db-shm

## Regenerate the initial migration from the models (pre-release only; see scripts/regen_migration.py).
migration: install-dev
	$(BIN)/python scripts/regen_migration.py
	$(BIN)/ruff check --fix -q src/entrepot/db/migrations/versions || true

## Every benchmark at the sizes the issues name, one after the other (see bench/README.md; ~30 minutes).
bench: install-dev
	$(BIN)/python bench/api_overhead.py --db both
	$(BIN)/python bench/events.py --db sqlite --nats nats://127.0.0.1:4222
	$(BIN)/python bench/events.py --db postgresql --nats nats://127.0.0.1:4222
	$(BIN)/python bench/pricing.py
	$(BIN)/python bench/import.py --rows 100000
	$(BIN)/python bench/allocation.py --db sqlite
	$(BIN)/python bench/ledger.py --db sqlite
	$(BIN)/python bench/o2c.py --orders 1000 --via service --db sqlite
	$(BIN)/python bench/o2c.py --orders 300 --via http --db sqlite
	$(BIN)/python bench/o2c.py --orders 0 --big
	$(BIN)/python bench/o2c.py --orders 1000 --via floor
	$(BIN)/python bench/raw_floor.py --orders 3000
