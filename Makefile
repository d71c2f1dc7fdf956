# Our Voice. `make run` and `make test` do all the set-up they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install run setup test test-unit lint bench clean

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

test-unit: install
	$(BIN)/pytest -m "not e2e and not faults"

lint: install
	$(BIN)/ruff check shared services tests bench

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache
