# Set-up lives here so a fresh machine needs only `make quickstart` or `make test`.
# TORCH pins the CPU wheel these machines hold; on a GPU machine use e.g. `make TORCH=torch quickstart`.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install quickstart test lint bench

$(BIN)/shiftbench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(BIN)/shiftbench

quickstart: install
	$(BIN)/shiftbench run suites/quickstart.yaml --model probe

test: install
	$(BIN)/ruff check shiftbench tests
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python tests/benchmarks/runner_throughput.py
