# make run  — install into .venv, migrate, seed demo data, serve on http://127.0.0.1:5000
# make test — install with [dev] into .venv, lint, type-check, run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint install install-dev worker beat clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/shanhuo db upgrade
	$(BIN)/shanhuo seed-demo
	$(BIN)/shanhuo run --host 127.0.0.1 --port 5000

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

worker: install
	$(BIN)/celery -A wsgi.celery_app worker --loglevel=INFO

beat: install
	$(BIN)/celery -A wsgi.celery_app beat --loglevel=INFO

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache .hypothesis
