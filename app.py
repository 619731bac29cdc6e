"""WSGI entry point: `flask --app app ...` and `gunicorn app:app`.

A configuration the site cannot run with (no SECRET_KEY, a Redis URL without the Redis
client...) ends the process with its one-line message, not a traceback.
"""
import sys

from marketplace import create_app
from marketplace.config import ConfigError

try:
    app = create_app()
except ConfigError as e:
    print(f"marketplace: {e}", file=sys.stderr)
    raise SystemExit(1) from None
