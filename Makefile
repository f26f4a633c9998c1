# One Data portal. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
HOST ?= 127.0.0.1
PORT ?= 5000

.DEFAULT_GOAL := help
.PHONY: help system browser venv install dev translations demo serve test lint types pytest bench messages clean

help: ## Show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

APT := $(shell command -v sudo) env DEBIAN_FRONTEND=noninteractive apt-get

system: ## Install missing system packages with apt-get (python3-venv)
	@if ! $(PYTHON) -c 'import venv, ensurepip' 2>/dev/null; then \
	  echo "Installing python3-venv with apt-get"; \
	  $(APT) update -qq && $(APT) install -y -qq python3-venv python3-pip; \
	fi

browser: ## Install Debian's chromium for the browser tests (Playwright drives it)
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "Installing chromium with apt-get (browser tests)"; \
	  $(APT) update -qq && $(APT) install -y -qq chromium; \
	fi

$(BIN)/python:
	@$(MAKE) --no-print-directory system
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

venv: $(BIN)/python ## Create the virtual environment

install: $(VENV)/.installed translations ## Install the portal into .venv

dev: $(VENV)/.dev-installed translations ## Install the portal and the developer tools

translations: $(VENV)/.installed ## Compile the Bahasa Indonesia / English catalogues
	@$(BIN)/pybabel compile -d portal/translations

messages: $(VENV)/.dev-installed ## Re-extract translatable texts and update the catalogues
	$(BIN)/pybabel extract -F babel.cfg -k _l -o portal/translations/messages.pot .
	$(BIN)/pybabel update -i portal/translations/messages.pot -d portal/translations

demo: install ## Initialise an embedded instance, harvest datasets/, serve on http://127.0.0.1:5000
	$(BIN)/onedata demo --host $(HOST) --port $(PORT)

serve: install ## Serve an existing instance
	$(BIN)/onedata serve --host $(HOST) --port $(PORT)

lint: dev ## ruff and the import contracts
	$(BIN)/ruff check .
	$(BIN)/lint-imports

types: dev ## mypy
	$(BIN)/mypy

pytest: dev browser ## The test suite (SQLite and PostgreSQL; migrations checked on both)
	ONEDATA_TEST_DATABASE_URL=$${ONEDATA_TEST_DATABASE_URL:-$(PG_TEST_URL)} $(BIN)/pytest --cov --cov-report=term

test: lint types pytest ## Everything CI runs: lint, types, migrations and tests on both databases

bench: dev ## Benchmarks (ratios against a baseline measured in the same run)
	$(BIN)/python -m tests.bench

clean: ## Remove the venv and the demo instance
	rm -rf $(VENV) instance .mypy_cache .pytest_cache .ruff_cache
