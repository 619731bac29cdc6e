"""Text that XML cannot carry never gets in.

XML 1.0 has no way to write the C0 control characters other than tab, line feed and carriage
return (nor U+FFFE, U+FFFF or lone surrogates), even escaped: one form feed pasted into a
title would make every Atom feed that lists it ill-formed. So at every way in:

- forms: NUL is refused with a 400 (it is never typed; PostgreSQL refuses it too), the other
  characters are stripped (they come from pasting, and the reader cannot see them);
- JSON bodies (POST/PUT/PATCH/DELETE): refused with a 400 naming the problem, since a
  program should be told rather than have its data changed;
- the CLI: `CleanText`, a click type that strips them from text arguments;
- output: the `xmltext` filter strips them in the feed template, for rows written before
  this check existed.
"""
from __future__ import annotations

import re
from typing import Any

import click
from flask import Flask, abort, request
from markupsafe import Markup
from werkzeug.datastructures import ImmutableMultiDict

XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
REFUSED_JSON = "Text may not contain control characters (other than tab and line breaks)."


def strip_xml_illegal(value: str) -> str:
    return XML_ILLEGAL.sub("", value)


def _json_has_illegal(value: Any, depth: int = 0) -> bool:
    if depth > 50:  # a JSON body nested this deep is refused as it is, never walked further
        return True
    if isinstance(value, str):
        return XML_ILLEGAL.search(value) is not None
    if isinstance(value, dict):
        return any(_json_has_illegal(k, depth + 1) or _json_has_illegal(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(_json_has_illegal(v, depth + 1) for v in value)
    return False


def _clean_form() -> None:
    form = request.form
    dirty = False
    for key, value in form.items(multi=True):
        if "\x00" in key or "\x00" in value:
            abort(400, "Text may not contain NUL characters.")
        if not dirty and (XML_ILLEGAL.search(key) or XML_ILLEGAL.search(value)):
            dirty = True
    if dirty:
        request.form = ImmutableMultiDict(
            [(strip_xml_illegal(k), strip_xml_illegal(v)) for k, v in form.items(multi=True)])


def _check_json() -> None:
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and request.is_json:
        data = request.get_json(silent=True)
        if data is not None and _json_has_illegal(data):
            abort(400, REFUSED_JSON)


def init_app(app: Flask) -> None:
    @app.before_request
    def _clean_text_input():
        # Query strings are validated by each view (lists, search) with their own messages;
        # nothing from them is stored.
        _clean_form()
        _check_json()

    app.jinja_env.filters["xmltext"] = xmltext


def xmltext(value: Any) -> str:
    """Jinja filter: the value as text XML can carry (Markup stays Markup)."""
    if value is None:
        return ""
    if isinstance(value, Markup):
        return Markup(strip_xml_illegal(str(value)))
    return strip_xml_illegal(str(value))


class CleanText(click.ParamType):
    """A click text argument with the characters XML cannot carry stripped."""

    name = "text"

    def convert(self, value, param, ctx):
        return strip_xml_illegal(value) if isinstance(value, str) else value


CLEAN_TEXT = CleanText()
