"""Form helpers shared by the feature blueprints."""
from __future__ import annotations

from datetime import datetime

import flask_wtf
from wtforms import DateTimeLocalField, FieldList, FormField
from wtforms.widgets import HiddenInput, SubmitInput

from . import timezones
from .services.common import ServiceError


class FlaskForm(flask_wtf.FlaskForm):
    """The base of every form of the site (Flask-WTF's, CSRF included).

    Hidden inputs and submit buttons are rendered without an id: no label points at them,
    and a page holding several forms (an idea under review has five) would otherwise repeat
    id="csrf_token" and id="submit".
    """

    class Meta:
        def render_field(self, field, render_kw):
            if isinstance(field.widget, (HiddenInput, SubmitInput)) and "id" not in render_kw:
                render_kw = {**render_kw, "id": False}
            return super().render_field(field, render_kw)


class PersonOrOrgForm(FlaskForm):
    """A form naming a person (``email``) or an organisation (``org``), exactly one of the
    two: access grants and invitation list members. Subclasses declare both fields."""

    def validate(self, extra_validators=None):
        ok = super().validate(extra_validators)
        if ok and bool(self.email.data) == bool(self.org.data):
            self.email.errors.append("Give either a person's e-mail or an organisation, not both.")
            return False
        return ok


def attach_service_error(form, e: ServiceError) -> None:
    """Show a service's refusal on the form: on its field when it names one, else on top.
    Several at once (FieldErrors) each go to their own field; a field of a repeated row is
    named as the form posts it ("incentives-1-amount")."""
    for name, message in getattr(e, "errors", None) or [(e.field, e.message)]:
        attach_error(form, name, message)


def attach_error(form, name: str | None, message: str) -> None:
    target = field_named(form, name) if name else None
    if target is not None and hasattr(target, "errors") and not isinstance(target.errors, dict):
        if isinstance(target.errors, tuple):
            target.errors = list(target.errors)
        if message not in target.errors:
            target.errors.append(message)
    elif message not in form.form_errors:
        form.form_errors.append(message)


def field_named(form, name: str):
    """The field called `name` (its short name, or its full posted name in a sub-form)."""
    found = getattr(form, name, None)
    if found is not None and hasattr(found, "errors"):
        return found

    def walk(fields):
        for f in fields:
            if f.name == name:
                return f
            inner = f.form if isinstance(f, FormField) else f.entries if isinstance(f, FieldList) else None
            if inner is not None:
                hit = walk(inner)
                if hit is not None:
                    return hit
        return None

    return walk(form)


def error_list(form) -> list[tuple[str | None, str, str]]:
    """Every error of a form as (field id, label, message), in the form's order, rows of
    repeated sub-forms included ("Incentive 2: Amount"), then the form-wide ones (id None).
    The error summary at the top of a form lists them all, each linked to its field, so an
    error on a field the page does not show still says which field it is."""
    out: list[tuple[str | None, str, str]] = []

    def walk(f, prefix: str = "") -> None:
        if isinstance(f, FormField):
            for sub in f.form:
                walk(sub, prefix)
        elif isinstance(f, FieldList):
            for i, entry in enumerate(f.entries, 1):
                walk(entry, f"{prefix}{f.label.text} {i}: ")
            out.extend((f.id, f"{prefix}{f.label.text}", e) for e in f.errors if isinstance(e, str))
        else:
            out.extend((f.id, f"{prefix}{f.label.text}", e) for e in f.errors if isinstance(e, str))

    for f in form:
        walk(f)
    out.extend((None, "", e) for e in getattr(form, "form_errors", ()) or ())
    return out


class LocalDateTimeField(DateTimeLocalField):
    """A datetime-local input read in a time zone and stored in UTC.

    The zone is the form's ``meta.timezone`` (views pass the organisation's:
    ``Form(meta=zone_meta(org))``), UTC when none is given. The label names the zone
    ("Deadline (Europe/Paris)"), shown values are in it, and a local time that does not name
    exactly one instant (daylight-saving gaps and repeats) is a form error, see
    marketplace/timezones.py. Dates lie between the years MIN_YEAR and MAX_YEAR: Python's
    datetimes end at years 1 and 9999, so a date near either end overflows as soon as a zone
    offset or a duration is applied to it (a deadline minus the question cut-off).
    """

    MIN_YEAR, MAX_YEAR = 1900, 9000

    def __init__(self, label=None, validators=None, optional: bool = False, **kwargs):
        kwargs.setdefault("format", list(timezones.INPUT_FORMATS))
        super().__init__(label, validators, **kwargs)
        self.zone = timezones.clean_zone(getattr(self.meta, "timezone", None), timezones.UTC_NAME)
        self.label.text = f"{self.label.text} ({self.zone}{', optional' if optional else ''})"

    def process_formdata(self, valuelist):
        if not valuelist or not " ".join(valuelist).strip():
            self.data = None
            return
        self.data = None
        try:
            naive = timezones.parse_local(" ".join(valuelist))
        except ValueError as e:
            raise ValueError(str(e)) from None
        if not self.MIN_YEAR <= naive.year <= self.MAX_YEAR:
            raise ValueError(f"Give a date between the years {self.MIN_YEAR} and {self.MAX_YEAR}.")
        keep = self.object_data if isinstance(self.object_data, datetime) else None
        # LocalTimeError is a ValueError: WTForms shows it as this field's error.
        self.data = timezones.local_to_utc(naive, self.zone, keep=keep)

    def _value(self):
        if self.raw_data:
            return " ".join(self.raw_data)
        return timezones.utc_to_local_input(self.data, self.zone) if isinstance(self.data, datetime) else ""


def zone_meta(org) -> dict:
    """Form meta for forms whose times the organisation `org` enters (in its time zone)."""
    return {"timezone": getattr(org, "timezone", None) or timezones.UTC_NAME}


CONFIRMED_FIELD = "confirmed"


def unconfirmed(question: str, action_label: str, back_url: str, *, danger: bool = False):
    """For actions that ask before they act (award, decline, close...): None when the post
    says it was confirmed (static/js/site.js adds ``confirmed=yes`` once the person has
    answered the ``data-confirm`` dialog), else the confirmation page to return instead, so
    the question is asked with JavaScript off too. The page re-posts what was sent."""
    from flask import render_template, request

    if request.form.get(CONFIRMED_FIELD) == "yes":
        return None
    fields = [(k, v) for k, vs in request.form.lists() if k != CONFIRMED_FIELD for v in vs]
    return render_template("confirm.html", question=question, action_label=action_label, back_url=back_url,
                           fields=fields, danger=danger)
