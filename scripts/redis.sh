#!/usr/bin/env bash
# A throwaway Redis server for tests and local trials (rate-limit counters shared by processes).
#
#   scripts/redis.sh start    install Debian's redis-server if missing, start a private server
#                             on a free port of 127.0.0.1, print its URL (redis://:PASSWORD@...)
#   scripts/redis.sh url      print the URL of the running server (exit 1 when not running)
#   scripts/redis.sh stop     stop the server, keep its folder
#   scripts/redis.sh destroy  stop the server and delete its folder
#   scripts/redis.sh status   say whether it runs
#
# The server lives in $REDIS_DIR (default: a folder per checkout under $TMPDIR or /tmp, mode
# 700), listens on 127.0.0.1 only, on a port chosen free at start, and requires a random
# password kept in that folder, so another local user cannot read or reset the counters.
# Nothing is written to disk by Redis itself (no RDB snapshots, no append-only file): the
# counters are rate-limit windows, worthless after a restart. Nothing here touches a system
# Redis, /etc/redis or a systemd unit.
#
# Only the URL goes to stdout; progress and errors go to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CMD="${1:-}"
_default_dir() {
  local sum
  sum="$(printf %s "$ROOT" | cksum | cut -d' ' -f1)"
  printf '%s/marketplace-redis-%s-%s' "${TMPDIR:-/tmp}" "$(id -u)" "$sum"
}
REDIS_DIR="${REDIS_DIR:-$(_default_dir)}"
PIDFILE="$REDIS_DIR/redis.pid"
LOG="$REDIS_DIR/redis.log"

say() { echo "redis.sh: $*" >&2; }
die() { say "$*"; exit 1; }

server_bin() { command -v redis-server 2>/dev/null || { [ -x /usr/bin/redis-server ] && echo /usr/bin/redis-server; }; }

ensure_installed() {
  if [ -z "$(server_bin)" ]; then
    say "redis-server not found; installing Debian's redis-server package"
    "$ROOT/scripts/apt_install.sh" redis-server \
      || die "could not install Redis (needs root and apt-get); install the 'redis-server' package"
  fi
  [ -n "$(server_bin)" ] || die "redis-server still not found after installing"
}

running() {
  [ -f "$PIDFILE" ] && [ -f "$REDIS_DIR/url" ] || return 1
  local pid; pid="$(cat "$PIDFILE" 2>/dev/null)" || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

ping() {  # ping PORT PASSWORD: true when the server answers PONG
  python3 - "$1" "$2" <<'EOF' >/dev/null 2>&1
import socket, sys
port, password = int(sys.argv[1]), sys.argv[2]
with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
    s.sendall(f"AUTH {password}\r\nPING\r\n".encode())
    data = b""
    while b"PONG" not in data:
        chunk = s.recv(100)
        if not chunk:
            sys.exit(1)
        data += chunk
EOF
}

start() {
  if running; then cat "$REDIS_DIR/url"; return; fi
  ensure_installed
  mkdir -p "$REDIS_DIR"
  chmod 700 "$REDIS_DIR"
  local port password
  port="$(free_port)"
  password="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
  # The password goes in a config file (mode 600), not on the command line, where `ps` shows it.
  umask 077
  cat >"$REDIS_DIR/redis.conf" <<EOF
bind 127.0.0.1
port $port
protected-mode yes
requirepass $password
dir $REDIS_DIR
pidfile $PIDFILE
logfile $LOG
daemonize yes
save ""
appendonly no
EOF
  "$(server_bin)" "$REDIS_DIR/redis.conf" || { tail -n 20 "$LOG" >&2 || true; die "redis-server did not start"; }
  local i
  for i in $(seq 1 100); do
    if ping "$port" "$password"; then
      echo "redis://:$password@127.0.0.1:$port/0" >"$REDIS_DIR/url"
      say "Redis $("$(server_bin)" --version | awk '{print $3}' | sed 's/^v=//') running on 127.0.0.1:$port ($REDIS_DIR)"
      cat "$REDIS_DIR/url"
      return
    fi
    sleep 0.1
  done
  tail -n 20 "$LOG" >&2 || true
  die "redis-server did not answer on 127.0.0.1:$port"
}

stop() {
  if running; then
    local pid; pid="$(cat "$PIDFILE")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    say "stopped the server in $REDIS_DIR"
  fi
  rm -f "$REDIS_DIR/url"
}

case "$CMD" in
  start) start ;;
  url) running || die "no server running in $REDIS_DIR (scripts/redis.sh start)"; cat "$REDIS_DIR/url" ;;
  stop) stop ;;
  destroy) stop; rm -rf "$REDIS_DIR" ;;
  status) if running; then say "running in $REDIS_DIR: $(cat "$REDIS_DIR/url")"; else say "not running ($REDIS_DIR)"; exit 1; fi ;;
  *) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
