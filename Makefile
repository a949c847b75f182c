# Civic Ledger: `make run` starts a local network, `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VALIDATORS ?= 4

.PHONY: run test check bootstrap clean bench system-deps chaos fuzz

bootstrap: $(STAMP) system-deps

# System libraries the test suite needs: libfaketime for the chaos clock-skew scenario.
system-deps:
	scripts/install-faketime.sh

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,plot]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/civic up --validators $(VALIDATORS)

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q

check: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/civic bench

# Long fuzzing runs: every fuzz test with FUZZ_EXAMPLES examples (docs/reliability.md).
FUZZ_EXAMPLES ?= 5000
fuzz: $(STAMP)
	CIVIC_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q tests/unit/test_encoding.py \
		tests/unit/test_fuzz_decoders.py tests/unit/test_fuzz_wire.py tests/unit/test_fuzz_api.py

# The full chaos matrix (about 6 minutes on 2 cores); results in chaos-results.md.
chaos: $(STAMP) system-deps
	$(BIN)/civic chaos matrix chaos/scenarios --output chaos-results.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .civic
