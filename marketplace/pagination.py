"""One page of a list: the page number read from the request (bounded, a 400 with a message
otherwise), the total from one COUNT query, and the LIMIT/OFFSET of the page.

A page past the last one is clamped to the last page rather than refused: a link to "page 7"
of a thread that has since shrunk still lands on its end.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .params import int_arg

MAX_PAGE = 10_000


@dataclass(frozen=True)
class Page:
    number: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @classmethod
    def of(cls, number: int, size: int, total: int) -> "Page":
        """The page `number` of `total` rows, clamped to [1, last page]."""
        last = max(1, math.ceil(total / size))
        return cls(min(max(1, number), last), size, total)


def page_arg(name: str = "page") -> int:
    """The request's page number (1 when absent); not a whole number in [1, MAX_PAGE]: 400."""
    return int_arg(name, 1, maximum=MAX_PAGE, label="The page number")


def page_of_position(position: int, size: int) -> int:
    """The page holding the row with `position` rows before it."""
    return position // size + 1


def paginate(query, order_by, size: int, number: int | None = None) -> tuple[list, Page]:
    """(rows, page) of a SELECT of one model: the total from one COUNT of the same query (so
    a count can never include what the list leaves out), then one page of rows in `order_by`
    order. `number` defaults to the request's ``page``."""
    from sqlalchemy import func, select

    from .extensions import db

    total = db.session.execute(
        select(func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    pg = Page.of(page_arg() if number is None else number, size, total)
    rows = []
    if total:
        rows = db.session.execute(query.order_by(*order_by).limit(size).offset(pg.offset)).scalars().all()
    return rows, pg
