# Our Voice. `make run` and `make test` do all the set-up they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install run setup test test-faults test-unit lint bench clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(INSTALLED)

setup: install
	$(BIN)/ourvoice setup

run: install
	$(BIN)/ourvoice run

test: install
	$(BIN)/pytest

# Kills, broker and database restarts while cases flow, on instances of its own.
test-faults: install
	$(BIN)/pytest -m chaos -s tests/faults

test-unit: install
	$(BIN)/pytest -m "not e2e and not faults and not chaos"

# Style, then the boundaries between ourvoice/, services/ and shared/ (import-linter's
# contracts in pyproject.toml, and no import hidden in an importlib call).
lint: install
	$(BIN)/ruff check ourvoice shared services tests bench
	$(BIN)/lint-imports
	$(BIN)/pytest -q -p no:cacheprovider ourvoice/tests/test_boundaries.py

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache

# -- Docker Compose (see the README's runbook) -----------------------------------------
# The Compose plugin where the engine has it, else the standalone docker-compose.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
STACK = $(COMPOSE) -p ourvoice --env-file deploy/.env \
	-f deploy/docker-compose.yml -f deploy/docker-compose.override.yml

.PHONY: up down logs test-deploy

deploy/.env:
	@echo "deploy/.env is missing: copy deploy/.env.example to deploy/.env and set its secrets" >&2
	@exit 1

up: deploy/.env
	$(STACK) build
	$(STACK) up -d
	deploy/wait-healthy.sh ourvoice

down: deploy/.env
	$(STACK) down

logs: deploy/.env
	$(STACK) logs --follow --tail=100

# Builds the images on this machine and runs the stack on a real Docker engine; minutes.
test-deploy: install
	tests/deploy/prepare.sh
	OURVOICE_TEST_DEPLOY=1 $(BIN)/pytest tests/deploy
