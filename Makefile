# Civic Ledger: `make run` starts a local network, `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VALIDATORS ?= 4

.PHONY: run test check bootstrap clean bench

bootstrap: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,plot]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/civic up --validators $(VALIDATORS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

check: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/civic bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .civic
