# Two entry points: `make run` and `make test`. Everything else is a helper.
#   make run      .venv + install + migrate + demo data (first start) -> http://127.0.0.1:5000
#   make test     install test extras, Debian Chromium and PostgreSQL if missing, run everything
#   make serve    gunicorn on 127.0.0.1:8000 (gunicorn.conf.py), same database as `make run`
#   make pg       start a throwaway PostgreSQL and print its DATABASE_URL (scripts/pg.sh)
#   make redis    start a throwaway Redis and print its RATELIMIT_STORAGE_URI (scripts/redis.sh)
#   make mutants  mutation testing of marketplace/policy/ (mutmut; slow)
#   make bench    search, page (issue 16) and load/fault (issue 13) benchmarks; see README
# Extra pytest arguments: make test PYTEST_ARGS="-k visibility -x"
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
PYTEST_ARGS ?=
export FLASK_APP := app

.PHONY: run serve test bench bench-search bench-pages bench-load install install-test browser clean pg pg-stop redis redis-stop mutants

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Stamps: reinstall only when pyproject.toml changes, so a second `make run` starts at once.
# The distribution used to be called "marketplace" (the name of an unrelated PyPI project):
# drop that old editable install from existing .venvs so only one provides the package.
$(STAMP): pyproject.toml | $(BIN)/python
	@$(BIN)/pip uninstall -q -y marketplace >/dev/null 2>&1 || true
	$(BIN)/pip install -q -e .
	touch $@

install: $(STAMP)

$(TEST_STAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install-test: $(TEST_STAMP)

# Debian's Chromium for Playwright; we never download a browser of Playwright's own.
# When it cannot be installed the browser tests say why and skip (locally) or fail (CI=true).
browser:
	@test -x /usr/bin/chromium || scripts/apt_install.sh chromium fonts-liberation \
	  || echo "make: Debian chromium could not be installed: browser tests will be skipped (or fail under CI=true)" >&2

run: $(STAMP)
	@scripts/run.sh dev

serve: $(STAMP)
	@scripts/run.sh gunicorn

test: $(TEST_STAMP) browser
	@scripts/test.sh $(PYTEST_ARGS)

pg:
	@scripts/pg.sh start

pg-stop:
	@scripts/pg.sh stop

redis:
	@scripts/redis.sh start

redis-stop:
	@scripts/redis.sh stop

# Mutation testing of the rule book (slow: tens of minutes). Prints killed/survived.
mutants: $(TEST_STAMP)
	$(BIN)/pip install -q -e '.[mutants]'
	@scripts/mutants.sh

# Benchmarks (figures, never pass/fail): search, then pages (issue 16) and load/faults (issue 13)
# on SQLite and PostgreSQL. The page/load data set is generated once (bench/dataset.py, a few
# minutes) into $(BENCH_DIR) and reused. BENCH_DB=sqlite or postgres for one database only.
BENCH_DB ?= both
BENCH_DIR ?= /tmp/marketplace-bench
bench: bench-search bench-pages bench-load

bench-search: $(STAMP)
	$(BIN)/python bench/search_bench.py --docs 20000

bench-pages: $(STAMP)
	BENCH_DIR=$(BENCH_DIR) $(BIN)/python bench/pages.py --db $(BENCH_DB) --duration 3

bench-load: $(STAMP)
	BENCH_DIR=$(BENCH_DIR) $(BIN)/python bench/load.py --db $(BENCH_DB) --duration 15

clean:
	rm -rf $(VENV) instance/*.db instance/search* tests/browser/artifacts
