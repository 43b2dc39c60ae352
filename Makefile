# Two commands on a fresh machine: `make demo` and `make test`. Both create the virtual environment,
# install Kuzet with everything it needs, and obtain the default detector model first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
KUZET := $(VENV)/bin/kuzet
PYTEST_ARGS ?=

.PHONY: demo test setup models lint clean translations

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

# After changing words on the page: collect them into messages.pot, merge into each language's catalogue
# (a translator fills in the new entries), and compile the .mo files the page reads (committed;
# tests/central/test_translations.py fails while a word is untranslated or a .mo is out of date).
translations: setup
	$(VENV)/bin/pybabel extract -F babel.cfg -k lazy_gettext --no-location --sort-output --omit-header \
		-o central/web/translations/messages.pot .
	$(VENV)/bin/pybabel update -i central/web/translations/messages.pot -d central/web/translations \
		--no-fuzzy-matching --width 110
	$(VENV)/bin/pybabel compile -d central/web/translations

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
