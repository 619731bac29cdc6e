"""Numbers and redirect targets read from a request: bounded, or refused with a clear message.

Every whole number a view reads from a query string or a form goes through `int_arg` (a
count, a page) or `id_arg` (a row id); every `next=` target through `safe_next`. They exist
because the obvious ways are unsafe: `request.args.get("org", type=int)` turns "abc" into
None silently and lets 2**64 through to the database (SQLite raises OverflowError, PostgreSQL
a data error: a 500), and a `next=` holding CR/LF breaks the Location header (another 500),
while `//evil.example`, `/\\evil.example` or `/<TAB>/evil.example` leave the site.

The converters (marketplace/converters.py) bound path ids the same way; `errors.py` is the
safety net for a number that still slips through (OverflowError, DataError: a 400).
"""
from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

from flask import abort, request, url_for

from .converters import MAX_ID

# Digits only, optionally signed; no spaces, underscores ("1_000" is an int to Python),
# exponents or other scripts' digits (int() accepts "١٢٣").
_WHOLE = re.compile(r"^[+-]?[0-9]{1,30}$")
MAX_NEXT_LENGTH = 2000


def parse_int(raw, minimum: int | None = None, maximum: int | None = None) -> int | None:
    """`raw` as a whole number within [minimum, maximum], or None when it is not one."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        value = raw
    else:
        text = str(raw).strip() if raw is not None else ""
        if not _WHOLE.match(text):
            return None
        value = int(text)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        return None
    return value


def int_arg(name: str, default: int | None = None, *, minimum: int = 1, maximum: int = MAX_ID,
            label: str | None = None, source=None) -> int | None:
    """The request's whole-number parameter `name` (query string, else form), or `default`
    when absent or empty; anything else than a whole number in [minimum, maximum] is a 400
    saying what is allowed."""
    values = request.values if source is None else source
    raw = values.get(name)
    if raw is None or not str(raw).strip():
        return default
    value = parse_int(raw, minimum, maximum)
    if value is None:
        what = label or f"The parameter '{name}'"
        abort(400, f"{what} must be a whole number from {minimum:,} to {maximum:,}.")
    return value


def id_arg(name: str, *, source=None) -> int | None:
    """The request's id parameter `name`, or None when absent or empty. An id that is not a
    positive 64-bit whole number names nothing: 404, as for a path id (converters.py)."""
    values = request.values if source is None else source
    raw = values.get(name)
    if raw is None or not str(raw).strip():
        return None
    value = parse_int(raw, 1, MAX_ID)
    if value is None:
        abort(404)
    return value


def is_safe_next(target) -> bool:
    """True when `target` is a path on this site: it starts with exactly one "/", has no
    scheme or host, no backslash (browsers read it as "/") and no whitespace or control
    character (browsers drop tabs and newlines, turning "/\\t/evil.example" into
    "//evil.example"; CR/LF would also split the Location header)."""
    if not isinstance(target, str) or not target or len(target) > MAX_NEXT_LENGTH:
        return False
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return False
    for ch in target:
        # Cc: controls (TAB, CR, LF, NUL...); Cf: invisible format characters; Z*: spaces.
        if unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp"):
            return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def safe_next(target, fallback: str | None = None) -> str:
    """Where to send the visitor after signing in (or registering, or any other `next=`):
    `target` when it is a same-site relative path (`is_safe_next`), else `fallback` (the
    home page)."""
    if is_safe_next(target):
        return target
    return fallback if fallback is not None else url_for("main.index")
