#!/usr/bin/env bash
# Run the whole test suite the way CI does: `make test` calls this (after installing).
#
#   scripts/test.sh [PYTEST ARGS...]
#
# 1. Starts a throwaway PostgreSQL (scripts/pg.sh, its own folder, removed afterwards) and
#    exports TEST_DATABASE_URL for tests/test_postgres.py.
#    Starts a throwaway Redis (scripts/redis.sh, its own folder, removed afterwards) and exports
#    TEST_REDIS_URL: the rate-limit tests run against it as well as against the database.
# 2. Runs pytest with pytest-xdist on 2 workers (PYTEST_WORKERS to change).
# 3. Fails on any failure *and* when no test ran (pytest exit code 5): an empty or broken
#    collection must never look like a green build.
#
# Under CI=true nothing may quietly fall away: if PostgreSQL cannot start this script fails,
# the browser and postgres fixtures fail (instead of skipping) when their server or Chromium
# is missing, and a run in which any test was skipped fails (tests/conftest.py).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV:-.venv}/bin"
CI="${CI:-}"
is_ci() { [ "$CI" = true ] || [ "$CI" = 1 ]; }

# Playwright must drive Debian's /usr/bin/chromium; it must never fetch a browser of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

start=$(date +%s)
PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/marketplace-test-pg.XXXXXX")"
export PG_DIR
REDIS_DIR="$(mktemp -d "${TMPDIR:-/tmp}/marketplace-test-redis.XXXXXX")"
export REDIS_DIR
cleanup() {
  scripts/pg.sh destroy 2>/dev/null || true; rm -rf "$PG_DIR"
  scripts/redis.sh destroy 2>/dev/null || true; rm -rf "$REDIS_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${TEST_DATABASE_URL:-}" ]; then
  if url="$(scripts/pg.sh start)"; then
    export TEST_DATABASE_URL="$url"
  elif is_ci; then
    echo "test.sh: PostgreSQL could not be started; under CI the postgres tests may not be skipped" >&2
    exit 1
  else
    echo "test.sh: PostgreSQL could not be started; the postgres tests will be skipped" >&2
  fi
fi

if [ -z "${TEST_REDIS_URL:-}" ]; then
  if url="$(scripts/redis.sh start)"; then
    export TEST_REDIS_URL="$url"
  elif is_ci; then
    echo "test.sh: Redis could not be started; under CI the Redis tests may not be skipped" >&2
    exit 1
  else
    echo "test.sh: Redis could not be started; the Redis tests will be skipped" >&2
  fi
fi

"$BIN/python" -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
rc=$?
case $rc in
  0) ;;
  5) echo "test.sh: pytest collected no tests (exit code 5): treating that as a failure" >&2; rc=1 ;;
  *) echo "test.sh: pytest failed (exit code $rc)" >&2 ;;
esac
echo "test.sh: finished in $(( $(date +%s) - start ))s" >&2
exit $rc
