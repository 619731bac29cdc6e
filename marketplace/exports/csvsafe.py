"""Spreadsheet-safe CSV: a cell a spreadsheet would run as a formula is written as text.

Spreadsheets (Excel, LibreOffice, Google Sheets) treat a cell beginning with ``=``, ``+``,
``-`` or ``@`` as a formula, and a leading tab or carriage return can hide such a
beginning (OWASP "CSV injection"). `safe_cell` prefixes those cells with an apostrophe,
which spreadsheets show as text and do not display; `write_rows` applies it to every cell.
"""
from __future__ import annotations

import csv
import io
from typing import Any, Iterable

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """The cell as text, neutralised if a spreadsheet would read it as a formula."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def write_rows(rows: Iterable[Iterable[Any]], out: io.TextIOBase | None = None) -> str:
    """Write `rows` (the header first) as CSV with every cell made safe; returns the text
    when no `out` is given."""
    buf = out if out is not None else io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    for row in rows:
        w.writerow([safe_cell(c) for c in row])
    return buf.getvalue() if out is None else ""
