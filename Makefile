# The few commands a contributor needs (see CONTRIBUTING.md). Each creates .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint typecheck format bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $@

demo: $(VENV)/.installed        ## the main job: a month of LLM traffic through the real pipeline, then what it shows
	$(VENV)/bin/spanledger demo

test: $(VENV)/.installed        ## every test (unit, integration, browser)
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/ruff check src tests

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

format: $(VENV)/.installed
	$(VENV)/bin/ruff format src tests
	$(VENV)/bin/ruff check --fix src tests

clean:
	rm -rf $(VENV) .spanledger .pytest_cache .mypy_cache .ruff_cache

bench: $(VENV)/.installed       ## every benchmark, side by side with its baseline (~30 min on 2 cores): bench/results.json, bench/RESULTS.md
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) bench/run_all.py
