# Two entry points (README): `make demo` deploys the built-in example, `make test` runs every check.
# Both bring up the local test environment first (scripts/testenv: Docker engine, registry, sshd; cached).

VENV ?= .venv
PY := $(VENV)/bin/python
TESTENV_ENV := /var/lib/shipline-testenv/env

.PHONY: setup testenv demo test unit lint bench clean-demo testenv-down

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

testenv:
	scripts/testenv up

testenv-down:
	scripts/testenv down

demo: setup testenv
	. $(TESTENV_ENV) && $(PY) scripts/demo.py

clean-demo: setup
	$(PY) scripts/demo.py --remove

lint: setup
	$(PY) -m ruff check .
	$(PY) -m mypy

unit: setup
	$(PY) -m pytest tests/unit -q

test: setup testenv lint
	. $(TESTENV_ENV) && $(PY) -m pytest -q

bench: setup testenv
	$(PY) -m pip install --quiet -e '.[test,bench]'
	. $(TESTENV_ENV) && $(PY) bench/pipeline.py && $(PY) bench/downtime.py && $(PY) bench/recovery.py && $(PY) bench/webhooks.py && $(PY) bench/plan_scale.py
