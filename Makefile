# The two commands of the README:
#   make quickstart   set up .venv and run examples/quickstart.py
#   make test         set up .venv (and the system packages some tests need) and run the tests
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: setup quickstart test lint system-deps

$(PY):
	$(PYTHON) -m venv $(VENV)

setup: $(PY)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e ".[dev,examples,benchmarks]"

system-deps:
	bash scripts/install-system-deps.sh

quickstart: setup
	$(PY) examples/quickstart.py

lint: setup
	$(PY) -m ruff check optuna_dyhpo tests benchmarks examples
	$(PY) -m ruff format --check optuna_dyhpo tests benchmarks examples
	$(PY) -m mypy

test: setup system-deps lint
	$(PY) -m pytest -q -n 2 --dist loadfile
