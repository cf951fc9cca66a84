# chatstore's front door. `make help` lists the targets.
# Every target that needs Python first builds .venv (once, and again when
# pyproject.toml changes), so a fresh clone needs nothing but python3 and make.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PY_SOURCES := clients/python/chatstore service/chatstore_server tests scripts

.DEFAULT_GOAL := help
.PHONY: help install run test lint fmt generate check-generated clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[server,cli,dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install chatstore with its server and dev extras

run: $(STAMP) ## Serve on 127.0.0.1:50051 with SQLite in ./chatstore.db (migrates first)
	$(BIN)/chatstore-server

test: $(STAMP) ## Run the whole test suite (real server, SQLite and PostgreSQL)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff, mypy --strict, buf lint and buf format
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)
	$(BIN)/mypy -p chatstore -p chatstore_server
	$(BIN)/mypy tests scripts
	$(BIN)/buf lint
	$(BIN)/buf format --diff --exit-code protos

fmt: $(STAMP) ## Format Python and protos in place
	$(BIN)/ruff check --fix $(PY_SOURCES)
	$(BIN)/ruff format $(PY_SOURCES)
	$(BIN)/buf format --write protos

generate: $(STAMP) ## Regenerate clients/python/chatstore/v1 from protos/
	$(BIN)/python scripts/generate.py

check-generated: $(STAMP) ## Fail if regenerating would change the committed code
	$(BIN)/python scripts/generate.py --check

clean: ## Remove the virtual environment and caches (keeps chatstore.db)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
