#!/usr/bin/env bash
# Start the site: `make run` (Flask's server) and `make serve` (gunicorn) call this.
#
#   scripts/run.sh dev        migrate, load demo data on first start, print the demo accounts,
#                             serve on http://$HOST:$PORT (default 127.0.0.1:5000)
#   scripts/run.sh gunicorn   migrate, then gunicorn -c gunicorn.conf.py (127.0.0.1:8000);
#                             when the search feature has an out-of-process index writer
#                             (`flask search worker` or `flask search apply --watch`), one of
#                             it runs beside gunicorn and the web workers use SEARCH_WORKER=off;
#                             if the writer ends it is restarted with back-off (the site
#                             keeps serving); only gunicorn's end stops `make serve`
#
# SECRET_KEY: taken from the environment when set, otherwise from instance/secret_key, which
# is generated (random, mode 600) on first use; the app reads that file itself too, so `flask`
# commands need no SECRET_KEY either. The app's insecure default is never used.
# DATABASE_URL: SQLite in instance/ unless set, e.g. DATABASE_URL="$(scripts/pg.sh start)".
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-dev}"
BIN="${VENV:-.venv}/bin"
export FLASK_APP=app
if [ -z "${SECRET_KEY:-}" ]; then
  SECRET_KEY="$(scripts/secret_key.sh)"
  export SECRET_KEY
fi
flask() { "$BIN/flask" --app app "$@"; }

migrate() {
  # Quiet on success (Alembic logs every step at INFO); everything on failure.
  local log
  log="$(mktemp)"
  if ! flask db upgrade >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"
    echo "run.sh: database migration failed" >&2
    exit 1
  fi
  grep -E "Running upgrade" "$log" >&2 || true
  rm -f "$log"
}

search_writer_cmd() {
  # The out-of-process index writer the search feature provides, if any:
  # `flask search worker`, or `flask search apply --watch`.
  local cmds
  cmds="$(flask search --help 2>/dev/null | sed -n '/^Commands:/,$p')" || return 1
  if grep -qE '^  worker( |$)' <<<"$cmds"; then echo "search worker"
  elif grep -qE '^  apply( |$)' <<<"$cmds"; then echo "search apply --watch"
  else return 1
  fi
}

case "$MODE" in
  dev)
    # One process for migrate + demo data + serve: see scripts/dev_server.py.
    exec "$BIN/python" scripts/dev_server.py
    ;;
  gunicorn)
    migrate
    # Several gunicorn workers must not all write the Whoosh index: when the search feature
    # provides an out-of-process writer, run exactly one of it and switch the web workers'
    # writer thread off. SEARCH_WORKER set by the caller is respected (e.g. "thread" with
    # WEB_CONCURRENCY=1, or "off" with the writer run under a process supervisor).
    if [ -n "${SEARCH_WORKER:-}" ] || ! writer="$(search_writer_cmd)"; then
      exec "$BIN/gunicorn" -c gunicorn.conf.py
    fi
    export SEARCH_WORKER=off
    # The writer is supervised here, not made a reason to stop the site: whenever it ends
    # it is started again after 1, 2, 4 ... up to 60 s (back to 1 s after a run of 5 min).
    # Meanwhile gunicorn serves; jobs wait in the outbox and /healthz shows the lag.
    supervise_writer() {
      local delay=1 started rc child=""
      trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; wait 2>/dev/null; exit 0' TERM
      while true; do
        started=$SECONDS
        # shellcheck disable=SC2086  # $writer is several words on purpose
        "$BIN/flask" --app app $writer &
        child=$!
        echo "run.sh: search index writer \`flask $writer\` started (pid $child); web workers use SEARCH_WORKER=off" >&2
        rc=0
        wait "$child" || rc=$?
        if (( SECONDS - started >= 300 )); then delay=1; fi
        echo "run.sh: the search index writer (pid $child) ended with status $rc; starting it again in ${delay} s (the site keeps serving)" >&2
        child=""
        sleep "$delay" &
        wait $! || true
        delay=$(( delay * 2 > 60 ? 60 : delay * 2 ))
      done
    }
    supervise_writer &
    supervisor_pid=$!
    "$BIN/gunicorn" -c gunicorn.conf.py &
    web_pid=$!
    stop() { kill -TERM "$web_pid" "$supervisor_pid" 2>/dev/null || true; }
    trap stop INT TERM
    # Only gunicorn's end (or Ctrl-C / TERM) ends `make serve`; the writer's never does.
    rc=0
    wait "$web_pid" || rc=$?
    stop
    wait "$web_pid" "$supervisor_pid" 2>/dev/null || true
    exit "$rc"
    ;;
  *)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
