"""gunicorn settings: `make serve`, or `gunicorn -c gunicorn.conf.py` with SECRET_KEY set.

Environment:
  GUNICORN_BIND     address to listen on (default 127.0.0.1:8000; put a proxy in front)
  WEB_CONCURRENCY   number of worker processes (default 2 x cores + 1)
  GUNICORN_TIMEOUT  seconds before a silent worker is restarted (default 30)
  GUNICORN_LOGLEVEL gunicorn's own log level (default info)
  GUNICORN_ACCESSLOG  "-" (stderr) or a file for gunicorn's access log; off by default: the
                    app logs each request itself (logger marketplace.access) with the route
                    pattern instead of the path, since invitation and appeal links carry tokens
  DATABASE_URL      SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db (default SQLite)

The app is not preloaded: each worker imports it after the fork, so no database connection
or thread (the search index writer) is shared between processes.

Search index: only one process may write the Whoosh index. SEARCH_WORKER=thread runs a writer
thread in *every* web process, which is right for `make run` (one process) but not for several
gunicorn workers. `make serve` (scripts/run.sh gunicorn) therefore sets SEARCH_WORKER=off (and
MAIL_WORKER=off) and starts one `flask --app app worker` beside gunicorn, which writes the index
and does the other background jobs. Elsewhere, run exactly one such worker per index under your
process supervisor and SEARCH_WORKER=off for gunicorn.
"""
import os


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may use (containers)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


wsgi_app = "app:app"
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * _cores() + 1))
worker_class = "sync"
preload_app = False
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so a slow leak cannot grow without bound.
max_requests = 2000
max_requests_jitter = 200
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# Trust X-Forwarded-* only from a proxy on this machine (the app itself uses them only when
# TRUSTED_PROXIES > 0: werkzeug's ProxyFix, see marketplace/__init__.py).
forwarded_allow_ips = "127.0.0.1"
proc_name = "marketplace"
# gunicorn >= 24's runtime control socket defaults to one path per user (~/.gunicorn), so two
# servers (a second checkout, a test run) would collide; nothing here uses it.
control_socket_disable = True
