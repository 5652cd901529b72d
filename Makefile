# Two set-up commands (see README): `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: run test install install-dev lint migration clean

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
