# wattsched — the two commands a newcomer needs are `make demo` and `make test`.
# Everything they need (a virtualenv, the Go-built control plane, helm) is installed here.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export PYTHONUNBUFFERED := 1

.PHONY: demo demo-down test lint unit crds crds-check controlplane venv bench e2e-kind clean help

help:
	@echo "make demo    - run wattsched on a local control plane with the Ulsan samples"
	@echo "make demo-down - stop what make demo left running"
	@echo "make test    - lint, type-check and run every test (builds the control plane once)"
	@echo "make crds    - regenerate crds/ from the API models"
	@echo "make bench   - engine and end-to-end benchmarks (results in bench/results/)"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

controlplane: venv
	$(PY) -m e2e.providers.build --with-helm

crds: venv
	$(VENV)/bin/wattsched crds --out crds
	$(VENV)/bin/wattsched crds --out helm/wattsched/crds

crds-check: venv
	$(VENV)/bin/wattsched crds --out crds --check
	$(VENV)/bin/wattsched crds --out helm/wattsched/crds --check

lint: venv
	$(VENV)/bin/ruff check operator tests e2e bench
	$(VENV)/bin/ruff format --check operator tests e2e bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

unit: venv
	$(PY) -m pytest tests/unit -q

test: venv controlplane lint crds-check
	$(PY) -m pytest tests e2e/suite -v --durations=15

demo: venv controlplane
	$(PY) -m e2e.demo

demo-down: venv
	$(PY) -m e2e.demo down

bench: venv controlplane
	$(PY) bench/engine.py --record
	$(PY) bench/e2e.py

e2e-kind: venv
	e2e/kind/run-suite.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .demo out
