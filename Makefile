# chatstore's front door. `make help` lists the targets.
# Every target that needs Python first builds .venv (once, and again when
# pyproject.toml changes), so a fresh clone needs nothing but python3 and make.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := clients/node/node_modules/.package-lock.json
TS_STAMP := clients/typescript/node_modules/.package-lock.json
CITUS_ENGINE ?= ../shared/engines/citus
PY_SOURCES := clients/python/chatstore service/chatstore_server tests scripts bench

.DEFAULT_GOAL := help
.PHONY: help install citus go run test lint fmt generate check-generated breaking bench bench-quick clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[server,cli,tracing,integrations,dev]'
	touch $(STAMP)

$(NODE_STAMP): clients/node/package-lock.json
	npm ci --prefix clients/node --no-audit --no-fund --loglevel=error

$(TS_STAMP): clients/typescript/package-lock.json
	npm ci --prefix clients/typescript --no-audit --no-fund --loglevel=error

install: $(STAMP) $(NODE_STAMP) $(TS_STAMP) ## Install everything: .venv (chatstore, server, cli, tracing, integrations, dev), the Node and TypeScript client packages

citus: ## Install Citus into the machine's PostgreSQL for the Citus tests, if missing (root; ~5 min once)
	@bash $(CITUS_ENGINE)/build.sh || { \
		echo "citus: not installed ($(CITUS_ENGINE)/build.sh failed): its tests will be skipped"; \
		[ "$$CI" != true ]; }

go: ## Install Debian's Go toolchain and packages for the Go client test, if missing (root)
	@bash scripts/install-go.sh || { \
		echo "go: not installed (scripts/install-go.sh failed): the Go client test will be skipped"; \
		[ "$$CI" != true ]; }

run: $(STAMP) ## Serve on 127.0.0.1:50051 with SQLite in ./chatstore.db (migrates first)
	$(BIN)/chatstore-server

test: $(STAMP) $(NODE_STAMP) $(TS_STAMP) citus go ## Run the whole test suite (real servers: SQLite, PostgreSQL, a Citus cluster; Node, TypeScript and Go clients)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP) $(TS_STAMP) ## ruff, mypy --strict, buf lint and format, tsc --strict, hadolint, kubernetes-validate
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)
	$(BIN)/mypy -p chatstore -p chatstore_server
	$(BIN)/mypy tests scripts bench
	$(BIN)/buf lint
	$(BIN)/buf format --diff --exit-code protos
	npm run --prefix clients/typescript --silent lint
	$(BIN)/hadolint Dockerfile
	$(BIN)/kubernetes-validate --strict --quiet deploy/kubernetes.yaml

fmt: $(STAMP) ## Format Python and protos in place
	$(BIN)/ruff check --fix $(PY_SOURCES)
	$(BIN)/ruff format $(PY_SOURCES)
	$(BIN)/buf format --write protos

generate: $(STAMP) $(TS_STAMP) ## Regenerate the Python and TypeScript client code and docs/api.md from protos/
	$(BIN)/python scripts/generate.py

check-generated: $(STAMP) $(TS_STAMP) ## Fail if regenerating would change the committed code
	$(BIN)/python scripts/generate.py --check

bench: $(STAMP) ## Full benchmark, SQLite, PostgreSQL and Citus, beside an echo ceiling (~15 min)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-quick: $(STAMP) ## Short benchmark on SQLite (< 1 min)
	$(BIN)/python -m bench.run --quick $(BENCH_ARGS)

breaking: $(STAMP) ## Fail if the protos break compatibility with the previous commit
	@if git rev-parse --verify --quiet HEAD~1 >/dev/null; then \
		$(BIN)/buf breaking --against '.git#ref=HEAD~1'; \
	else \
		echo "breaking: no previous commit to compare with"; \
	fi

clean: ## Remove the virtual environment, node_modules and caches (keeps chatstore.db)
	rm -rf $(VENV) clients/node/node_modules clients/typescript/node_modules clients/typescript/dist .mypy_cache .ruff_cache .pytest_cache
