# Two entry points: `make run` and `make test`. Everything else is a helper.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
export FLASK_APP := app

.PHONY: run test bench install install-test browser clean pg

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

install: $(STAMP)

$(TEST_STAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install-test: $(TEST_STAMP)

# Debian's Chromium for Playwright; we never download a browser of Playwright's own.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium could not be installed: browser tests will be skipped"; }

run: $(STAMP)
	@mkdir -p instance
	$(BIN)/flask --app app db upgrade
	$(BIN)/flask --app app demo load --if-empty
	$(BIN)/flask --app app run --host 127.0.0.1 --port 5000

test: $(TEST_STAMP) browser
	$(BIN)/python -m pytest -n 2 --dist loadfile

bench: $(STAMP)
	$(BIN)/python bench/search_bench.py

clean:
	rm -rf $(VENV) instance/*.db instance/search*
