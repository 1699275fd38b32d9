# Two commands: `make demo` and `make test`. Each sets up .venv from the pinned constraints first.
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

BENCH_STAMP := $(VENV)/.installed-bench
E2E_STAMP := $(VENV)/.installed-e2e
PACKAGE_STAMP := $(VENV)/.installed-package

.PHONY: demo test test-e2e lint bench package clean

$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "make: Python 3.11 or newer is required (set PYTHON=...)" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	PIP_CONSTRAINT=constraints.txt $(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

$(E2E_STAMP): $(STAMP)
	PIP_CONSTRAINT=constraints.txt $(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,e2e]'
	command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server; }
	touch $@

$(PACKAGE_STAMP): $(STAMP)
	PIP_CONSTRAINT=constraints.txt $(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,package]'
	touch $@

$(BENCH_STAMP): $(STAMP)
	PIP_CONSTRAINT=constraints.txt $(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	touch $@

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy airflow_enos_provider

test: lint
	$(BIN)/pytest

# Airflow's own scheduler, dag-processor, triggerer and api-server against the emulator (logs in build/e2e).
test-e2e: $(E2E_STAMP)
	$(BIN)/pytest tests/e2e -p no:cacheprovider

bench: $(BENCH_STAMP)
	$(BIN)/python bench/run.py

# Build the wheel and sdist, check them, install the wheel into a fresh virtualenv and ask Airflow.
package: $(PACKAGE_STAMP)
	rm -rf dist build/package-venv
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*
	! $(BIN)/python -m zipfile -l dist/*.whl | grep -E '(^|/)(tests|bench|example_dags)/'
	$(PYTHON) -m venv build/package-venv
	PIP_CONSTRAINT=constraints.txt build/package-venv/bin/pip install --quiet --disable-pip-version-check dist/*.whl
	version=$$(build/package-venv/bin/python -c 'import airflow_enos_provider as p; print(p.__version__)') && \
	AIRFLOW_HOME=$$(mktemp -d) build/package-venv/bin/airflow providers list | tee build/package-providers.txt | \
	grep -E "^airflow-enos-provider +\| .* \| $$version"

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
