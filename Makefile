# Our Voice. `make run` and `make test` do all the set-up they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install lock run setup test test-faults test-unit lint bench clean

# Every package, transitive ones included, at the version and hashes of the lock files:
# requirements-dev.lock (the project and its dev extra) here, requirements.lock (the
# project alone) in the image. The project itself goes in without dependencies, built by
# the locked setuptools.
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock

$(INSTALLED): pyproject.toml $(DEV_LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

install: $(INSTALLED)

# Makes the lock files again from pyproject.toml, after a pin there changed (each package
# at the newest version the pins allow; commit both). The project's lock is made within
# the dev lock, so the two never disagree.
UV_COMPILE = $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 \
	--generate-hashes --quiet

lock: install
	$(UV_COMPILE) --extra dev --upgrade -o $(DEV_LOCK)
	$(UV_COMPILE) --constraint $(DEV_LOCK) --upgrade -o $(LOCK)

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
