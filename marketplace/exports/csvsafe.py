"""Spreadsheet-safe CSV: the one place that neutralises formula injection.

A spreadsheet treats a cell beginning with ``=``, ``+``, ``-`` or ``@`` as a formula (and
some also after a leading tab or carriage return), so text a contributor typed could run
``=HYPERLINK(...)`` or worse on the machine of whoever opens the export. Every text cell
that begins with one of these gets a leading apostrophe, which spreadsheets show as text
and do not evaluate. Numbers (int, float) we computed ourselves are written as numbers:
they cannot carry a formula, and a negative z-score must stay a number.

Every CSV the site writes goes through `writer` / `safe_row`; importers that read CSV back
strip the apostrophe with `unneutralise`.
"""
from __future__ import annotations

import csv
import io
from typing import Any, Iterable

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str | int | float:
    """One cell as written: None -> "", numbers unchanged, text neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return value
    text = str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def safe_row(row: Iterable[Any]) -> list:
    return [safe_cell(v) for v in row]


class SafeWriter:
    """csv.writer whose every row goes through safe_row."""

    def __init__(self, f, **kw):
        self._w = csv.writer(f, lineterminator="\r\n", **kw)

    def writerow(self, row: Iterable[Any]) -> None:
        self._w.writerow(safe_row(row))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for r in rows:
            self.writerow(r)


def writer(f, **kw) -> SafeWriter:
    return SafeWriter(f, **kw)


def to_csv(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    buf = io.StringIO()
    w = writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def unneutralise(cell: str) -> str:
    """The text a neutralised cell stood for (for importers reading our own CSV back)."""
    if len(cell) > 1 and cell[0] == "'" and cell[1:].startswith(FORMULA_STARTS):
        return cell[1:]
    return cell


def write_rows(rows: Iterable[Iterable[Any]], out: io.TextIOBase | None = None) -> str:
    """Write `rows` (the header first) as CSV with every cell made safe; returns the text
    when no `out` is given."""
    buf = out if out is not None else io.StringIO()
    writer(buf).writerows(rows)
    return buf.getvalue() if out is None else ""
