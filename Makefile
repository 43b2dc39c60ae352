# Two commands on a fresh machine: `make demo` and `make test`. Both create the virtual environment,
# install Kuzet with everything it needs, and obtain the default detector model first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
KUZET := $(VENV)/bin/kuzet
PYTEST_ARGS ?=

.PHONY: demo test setup models lint clean

demo: models
	$(KUZET) demo

test: models
	$(PY) -m pytest $(PYTEST_ARGS)

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[edge,central,provisioning,dev]'
	touch $@

models: setup
	$(KUZET) models ensure

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
