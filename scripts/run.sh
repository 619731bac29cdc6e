#!/usr/bin/env bash
# Start the site: `make run` (Flask's server) and `make serve` (gunicorn) call this.
#
#   scripts/run.sh dev        migrate, load demo data on first start, print the demo accounts,
#                             serve on http://$HOST:$PORT (default 127.0.0.1:5000)
#   scripts/run.sh gunicorn   migrate, then gunicorn -c gunicorn.conf.py (127.0.0.1:8000) and,
#                             beside it, one `flask worker` (every background job: the search
#                             outbox, mail, webhooks, reminders and digests); the web workers
#                             then use SEARCH_WORKER=off and MAIL_WORKER=off. If the worker
#                             ends it is restarted with back-off (the site keeps serving); only
#                             gunicorn's end stops `make serve`. SEARCH_WORKER set by the caller:
#                             gunicorn only (the caller runs the background jobs)
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

case "$MODE" in
  dev)
    # One process for migrate + demo data + serve: see scripts/dev_server.py.
    exec "$BIN/python" scripts/dev_server.py
    ;;
  gunicorn)
    migrate
    # Several gunicorn workers must not all write the Whoosh index, and background jobs
    # (webhooks, digests) run only in a worker: run exactly one `flask worker` beside
    # gunicorn and switch the web workers' own writer and mail threads off. SEARCH_WORKER
    # set by the caller is respected (e.g. "thread" with WEB_CONCURRENCY=1, or "off" with
    # `flask worker` run under a process supervisor of its own): then gunicorn runs alone.
    if [ -n "${SEARCH_WORKER:-}" ]; then
      exec "$BIN/gunicorn" -c gunicorn.conf.py
    fi
    export SEARCH_WORKER=off
    # The worker sends the mail too; MAIL_WORKER set by the caller is respected ("thread":
    # each web process sends as well, which is safe: every mail is claimed by one sender).
    export MAIL_WORKER="${MAIL_WORKER:-off}"
    # Polls every second when idle, as the index writer it replaces did.
    worker=(worker --interval 1)
    # The worker is supervised here, not made a reason to stop the site: whenever it ends
    # it is started again after 1, 2, 4 ... up to 60 s (back to 1 s after a run of 5 min).
    # Meanwhile gunicorn serves; jobs wait in their outboxes and /healthz shows the lag.
    supervise_worker() {
      local delay=1 started rc child=""
      trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; wait 2>/dev/null; exit 0' TERM
      while true; do
        started=$SECONDS
        "$BIN/flask" --app app "${worker[@]}" &
        child=$!
        echo "run.sh: background worker \`flask ${worker[*]}\` started (pid $child; it writes the search index); web workers use SEARCH_WORKER=off MAIL_WORKER=$MAIL_WORKER" >&2
        rc=0
        wait "$child" || rc=$?
        if (( SECONDS - started >= 300 )); then delay=1; fi
        echo "run.sh: the background worker (pid $child) ended with status $rc; starting it again in ${delay} s (the site keeps serving)" >&2
        child=""
        sleep "$delay" &
        wait $! || true
        delay=$(( delay * 2 > 60 ? 60 : delay * 2 ))
      done
    }
    supervise_worker &
    supervisor_pid=$!
    "$BIN/gunicorn" -c gunicorn.conf.py &
    web_pid=$!
    stop() { kill -TERM "$web_pid" "$supervisor_pid" 2>/dev/null || true; }
    trap stop INT TERM
    # Only gunicorn's end (or Ctrl-C / TERM) ends `make serve`; the worker's never does.
    rc=0
    wait "$web_pid" || rc=$?
    stop
    wait "$web_pid" "$supervisor_pid" 2>/dev/null || true
    exit "$rc"
    ;;
  *)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
