#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and local trials.
#
#   scripts/pg.sh start    install the server if missing, initdb, start, create the database,
#                          print its SQLAlchemy URL (postgresql+psycopg://...)
#   scripts/pg.sh url      print the URL of the running server (exit 1 when not running)
#   scripts/pg.sh stop     stop the server, keep its files
#   scripts/pg.sh destroy  stop the server and delete its folder
#   scripts/pg.sh status   say whether it runs
#
# The cluster lives in $PG_DIR (default: a folder per checkout under $TMPDIR or /tmp) and
# listens only on a unix socket inside that folder, so several clusters (one per `make test`)
# never fight over a port and nothing is reachable over the network. Set PG_TCP=1 to also
# listen on 127.0.0.1 on a free port (the URL then uses TCP; handy for a second machine-local
# client such as gunicorn in another container). Authentication is `trust` for the socket,
# and the folder is mode 700: only its owner (and root) can connect.
#
# PostgreSQL refuses to run as root: as root the server runs as the `postgres` system user
# (created by Debian's package; created here if missing). Nothing here touches a system
# cluster or /etc/postgresql.
#
# Only the URL goes to stdout; progress and errors go to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CMD="${1:-}"
_default_dir() {
  local sum
  sum="$(printf %s "$ROOT" | cksum | cut -d' ' -f1)"
  printf '%s/marketplace-pg-%s-%s' "${TMPDIR:-/tmp}" "$(id -u)" "$sum"
}
PG_DIR="${PG_DIR:-$(_default_dir)}"
PG_DB="${PG_DATABASE:-marketplace}"
PG_SUPERUSER=postgres
DATA="$PG_DIR/data"
LOG="$PG_DIR/server.log"

say() { echo "pg.sh: $*" >&2; }
die() { say "$*"; exit 1; }

bindir() {
  local d
  if [ -n "${PG_BINDIR:-}" ]; then echo "$PG_BINDIR"; return; fi
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return; fi
  d="$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")"
  [ -x "$d/initdb" ] && echo "$d"
}

ensure_server_installed() {
  if [ -z "$(bindir)" ]; then
    say "PostgreSQL server not found; installing Debian's postgresql package"
    "$ROOT/scripts/apt_install.sh" postgresql \
      || die "could not install PostgreSQL (needs root and apt-get); install the 'postgresql' package"
  fi
  BIN="$(bindir)"
  [ -n "$BIN" ] || die "PostgreSQL server binaries still not found after installing"
}

# Run a command as the user that owns the cluster.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "$PG_OS_USER" -- "$@"
  else
    "$@"
  fi
}

choose_os_user() {
  if [ "$(id -u)" -ne 0 ]; then PG_OS_USER="$(id -un)"; return; fi
  PG_OS_USER="${PG_OS_USER:-postgres}"
  if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
    say "creating system user $PG_OS_USER to run the server (PostgreSQL refuses to run as root)"
    useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_OS_USER"
  fi
}

running() {
  [ -f "$DATA/PG_VERSION" ] || return 1
  local b; b="$(bindir)"; [ -n "$b" ] || return 1
  choose_os_user
  as_owner "$b/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

url() {
  cat "$PG_DIR/url"
}

start() {
  if running; then url; return; fi
  ensure_server_installed
  choose_os_user
  mkdir -p "$PG_DIR"
  chmod 700 "$PG_DIR"
  [ "$(id -u)" -ne 0 ] || chown "$PG_OS_USER" "$PG_DIR"
  if [ ! -f "$DATA/PG_VERSION" ]; then
    say "initdb in $DATA"
    as_owner "$BIN/initdb" -D "$DATA" -U "$PG_SUPERUSER" --auth=trust -E UTF8 --no-locale --no-sync \
      >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
  fi
  local port listen host
  if [ "${PG_TCP:-0}" = 1 ]; then
    port="$(free_port)"; listen=127.0.0.1; host=127.0.0.1
  else
    port=5432; listen=""; host=""
  fi
  # A throwaway cluster: durability settings off for speed; socket only in our folder.
  as_owner "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 -o "\
 -c listen_addresses='$listen' -c port=$port -c unix_socket_directories='$PG_DIR'\
 -c fsync=off -c synchronous_commit=off -c full_page_writes=off\
 -c max_connections=200 -c shared_buffers=64MB" start >/dev/null \
    || { tail -n 30 "$LOG" >&2 || true; die "the server did not start"; }
  if ! as_owner "$BIN/psql" -h "$PG_DIR" -p "$port" -U "$PG_SUPERUSER" -d postgres -Atqc \
      "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" | grep -q 1; then
    as_owner "$BIN/createdb" -h "$PG_DIR" -p "$port" -U "$PG_SUPERUSER" "$PG_DB"
  fi
  if [ -n "$host" ]; then
    echo "postgresql+psycopg://$PG_SUPERUSER@$host:$port/$PG_DB" >"$PG_DIR/url"
  else
    echo "postgresql+psycopg://$PG_SUPERUSER@/$PG_DB?host=$PG_DIR&port=$port" >"$PG_DIR/url"
  fi
  say "PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') running in $PG_DIR"
  url
}

stop() {
  if running; then
    as_owner "$(bindir)/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null
    say "stopped the server in $PG_DIR"
  fi
}

case "$CMD" in
  start) start ;;
  url) running || die "no server running in $PG_DIR (scripts/pg.sh start)"; url ;;
  stop) stop ;;
  destroy) stop; rm -rf "$PG_DIR" ;;
  status) if running; then say "running in $PG_DIR: $(url)"; else say "not running ($PG_DIR)"; exit 1; fi ;;
  *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
