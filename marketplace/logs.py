"""Logging: one configuration for every way the app runs, and a request id on every line.

`configure_logging(app)` applies one `logging.config.dictConfig` in create_app, so the web
server (`make run`, `make serve`), the CLI and the workers all log the same way: to standard
error (and to LOG_FILE when set), at LOG_LEVEL. Alembic's own `fileConfig` is not used
(migrations/env.py): it would disable every logger that exists when a migration runs in the
same process as the app (`make run` does), including the one that logs 500s.

Each request gets an id: a sane incoming `X-Request-ID` (from a proxy) or a fresh one. It is
on every log line written during the request, in the `X-Request-ID` response header and on
the 500 page, so a visitor's report leads to the traceback.

What is never logged: passwords, tokens (invitation and appeal links carry them in the path,
so request lines show the route pattern, not the path), SQL parameters (the engine hides
them) or the text people write.

One record is one line (ASVS 16.4.1, no log injection): `SafeFormatter` writes CR, LF, tabs
and every other control character of a message as escapes (`\r`, `\n`, `\x1b`, `\u2028`),
so a value someone sent (an HTTP method, a header, a quoted exception) cannot start a forged
line; a traceback's own lines are indented under their record.
"""
from __future__ import annotations

import logging
import logging.config
import re
import time
import uuid

from flask import Flask, g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-ID"
# What a proxy's request id may look like; anything else is replaced, so a header cannot
# forge log lines or smuggle text into them.
_SANE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,127}$")
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"

access_log = logging.getLogger("marketplace.access")


# C0 and C1 controls, DEL, and the Unicode line and paragraph separators (which some log
# viewers break lines on).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}


def escape_controls(text: str) -> str:
    """`text` with every control character written as an escape: one line, nothing hidden."""
    def one(m: re.Match) -> str:
        ch = m.group(0)
        return _NAMED.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
    return _CONTROL.sub(one, text)


class SafeFormatter(logging.Formatter):
    """The format of every log line: the message with its control characters escaped, and
    a traceback (or stack) indented under it, so no line of it looks like a record of its own."""

    def format(self, record: logging.LogRecord) -> str:
        # As logging.Formatter.format, but the traceback is formatted here every time, not
        # taken from record.exc_text: another handler may have cached it there unindented.
        record.message = escape_controls(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        s = self.formatMessage(record)
        if record.exc_info:
            s += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            s += "\n" + _indent(record.exc_text)
        if record.stack_info:
            s += "\n" + self.formatStack(record.stack_info)
        return s

    def formatException(self, ei) -> str:
        return _indent(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indent(super().formatStack(stack_info))


def _indent(text: str) -> str:
    # Each traceback line keeps its own line, indented; control characters in it (an
    # exception's message can quote what was sent) are escaped like a message's.
    return "\n".join("    " + escape_controls(line) for line in text.splitlines())


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record ("-" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            rid = None
            if has_request_context():
                rid = g.get("request_id")
            record.request_id = rid or "-"
        return True


def logging_config(level: str = "INFO", log_file: str | None = None) -> dict:
    """The dictConfig for the whole process (the app's loggers, Alembic, SQLAlchemy, Werkzeug)."""
    handlers: dict = {
        "console": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                    "formatter": "default", "filters": ["request_id"]},
    }
    if log_file:
        # WatchedFileHandler reopens the file after logrotate moves it.
        handlers["file"] = {"class": "logging.handlers.WatchedFileHandler", "filename": log_file,
                            "encoding": "utf-8", "formatter": "default", "filters": ["request_id"]}
    return {
        "version": 1,
        # Loggers created before this call (libraries imported earlier) keep working.
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"default": {"()": SafeFormatter, "format": FORMAT}},
        "handlers": handlers,
        "root": {"level": level, "handlers": list(handlers)},
        "loggers": {
            "marketplace": {"level": level},
            # Alembic: the migration steps (scripts/run.sh shows "Running upgrade" lines) and
            # autogenerate's findings; not its plugin set-up chatter on every command.
            "alembic": {"level": "WARNING"},
            "alembic.runtime.migration": {"level": "INFO"},
            "alembic.autogenerate.compare": {"level": "INFO"},
            "alembic.env": {"level": "INFO"},
            "sqlalchemy.engine": {"level": "WARNING"},
            # Werkzeug's request lines show the full path (tokens included): our access log
            # (route patterns) replaces them. Its start-up banner is a WARNING and stays.
            "werkzeug": {"level": "WARNING"},
        },
    }


def configure_logging(app: Flask) -> None:
    """Apply the logging configuration (unless the app's config says LOG_CONFIGURE=False,
    as tests do: pytest owns logging in its process)."""
    if not app.config.get("LOG_CONFIGURE", True):
        return
    level = str(app.config.get("LOG_LEVEL") or "INFO").upper()
    if level not in logging.getLevelNamesMapping():
        from .config import ConfigError

        raise ConfigError(f"LOG_LEVEL={level!r} is not a level; use DEBUG, INFO, WARNING or ERROR.")
    log_file = app.config.get("LOG_FILE")
    try:
        logging.config.dictConfig(logging_config(level, log_file))
    except ValueError as e:  # e.g. LOG_FILE in a folder that does not exist
        from .config import ConfigError

        cause = e.__cause__ or e
        raise ConfigError(f"cannot set up logging (LOG_FILE={log_file!r}): {cause}") from None


def request_id() -> str | None:
    return g.get("request_id") if has_request_context() else None


def choose_request_id(incoming: str) -> str:
    """The id of a request: the proxy's when it is sane, else a fresh one (also used by the
    page cache, which answers hits before the app runs)."""
    return incoming if _SANE_ID.match(incoming) else uuid.uuid4().hex


def init_request_ids(app: Flask) -> None:
    @app.before_request
    def _assign_request_id():
        g.request_id = choose_request_id(request.headers.get(REQUEST_ID_HEADER, ""))
        g.request_started = time.perf_counter()

    @app.after_request
    def _send_request_id(response):
        rid = g.get("request_id")
        if rid:
            response.headers[REQUEST_ID_HEADER] = rid
        started = g.get("request_started")
        rule = request.url_rule.rule if request.url_rule is not None else "(no route)"
        ms = (time.perf_counter() - started) * 1000 if started is not None else 0.0
        access_log.info("%s %s %s %.0fms", request.method, rule, response.status_code, ms)
        return response
