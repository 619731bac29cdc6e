"""URL converters: every id in a path fits the database's 64-bit integers.

Werkzeug's ``int`` converter accepts any number of digits; a path id beyond 2**63 - 1 then
reached the database and failed there (a 500 on SQLite, a data error on PostgreSQL). Bounded,
such a path matches no route: a 404, exactly like an id that does not exist.
"""
from __future__ import annotations

from flask import Flask
from werkzeug.routing import IntegerConverter

MAX_ID = 2**63 - 1


class BoundedInt(IntegerConverter):
    def __init__(self, map, fixed_digits: int = 0, min: int | None = None, max: int | None = None,
                 signed: bool = False) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=MAX_ID if max is None else max,
                         signed=signed)


def init_app(app: Flask) -> None:
    app.url_map.converters["int"] = BoundedInt
