from __future__ import annotations

from datetime import timezone

from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField, SelectField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from ..models import AssetKind, Visibility

VIS_CHOICES = [
    ("public", "Public: anyone"),
    ("registered", "Registered: any signed-in user"),
    ("invited", "Invited: our members and people/organisations we grant"),
    ("organisation", "Organisation: our members only"),
]


def strip(s):
    return s.strip() if isinstance(s, str) else s


class UTCDateTimeField(DateTimeLocalField):
    """datetime-local input interpreted as UTC (the form says so), between the years
    MIN_YEAR and MAX_YEAR: Python's datetimes end at year 9999, so a date near either end
    overflows as soon as a duration is added to it (a deadline minus the question cut-off)."""

    MIN_YEAR, MAX_YEAR = 1900, 9000

    def __init__(self, *a, **kw):
        kw.setdefault("format", ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"])
        super().__init__(*a, **kw)

    def process_formdata(self, valuelist):
        super().process_formdata(valuelist)
        if self.data is not None:
            if not self.MIN_YEAR <= self.data.year <= self.MAX_YEAR:
                self.data = None
                raise ValueError(f"Give a date between the years {self.MIN_YEAR} and {self.MAX_YEAR}.")
            self.data = self.data.replace(tzinfo=timezone.utc)

    def _value(self):
        if self.raw_data:
            return " ".join(self.raw_data)
        return self.data.strftime("%Y-%m-%dT%H:%M") if self.data else ""


class ItemForm(FlaskForm):
    title = StringField("Title", filters=[strip], validators=[
        DataRequired("Give it a title."), Length(max=200, message="At most 200 characters.")])
    summary = StringField("One-line summary", filters=[strip], validators=[
        Optional(), Length(max=500, message="At most 500 characters.")])
    body = TextAreaField("Description (Markdown)", validators=[
        DataRequired("Describe it."), Length(max=50_000, message="At most 50,000 characters.")])
    tags = StringField("Tags (comma separated)", filters=[strip], validators=[Optional(), Length(max=400)])
    visibility = SelectField("Visibility", choices=VIS_CHOICES, default=Visibility.ORGANISATION.value,
                             validate_choice=True)
    save = SubmitField("Save as draft")
    publish = SubmitField("Publish")

    kind_fields: tuple[str, ...] = ()
    body_label = "Description"

    def data_for_service(self) -> dict:
        out = {f: getattr(self, f).data for f in ("title", "summary", "body", "tags", "visibility")}
        out["summary"] = out["summary"] or ""
        for f in self.kind_fields:
            val = getattr(self, f).data
            out[f] = val.strip() if isinstance(val, str) else val
        return out


LONG = [Optional(), Length(max=50_000, message="At most 50,000 characters.")]


class ChallengeForm(ItemForm):
    body = TextAreaField("Problem statement (Markdown)", validators=[
        DataRequired("Describe the problem."), Length(max=50_000, message="At most 50,000 characters.")])
    context = TextAreaField("Context (Markdown)", validators=LONG)
    expected_outcome = TextAreaField("Expected outcome (Markdown)", validators=LONG)
    incentive_summary = StringField("Prize or incentive, in one line", filters=[strip],
                                    validators=[Optional(), Length(max=300)])
    opens_at = UTCDateTimeField("Opens at (UTC)", validators=[Optional()])
    deadline = UTCDateTimeField("Deadline (UTC)", validators=[Optional()])
    kind_fields = ("context", "expected_outcome", "incentive_summary", "opens_at", "deadline")

    def validate(self, extra_validators=None):
        # Not an inline validate_deadline: Optional() stops the chain on an empty field,
        # so an inline check for "empty when publishing" would never run.
        ok = super().validate(extra_validators)
        if self.publish.data and self.deadline.data is None and not self.deadline.errors:
            self.deadline.errors = [*self.deadline.errors,
                                    "A challenge needs a deadline before it can be published."]
            return False
        return ok


class FailureForm(ItemForm):
    body = TextAreaField("What was tried (Markdown)", validators=[
        DataRequired("Say what was tried."), Length(max=50_000, message="At most 50,000 characters.")])
    went_wrong = TextAreaField("What went wrong (Markdown)", validators=LONG)
    lessons = TextAreaField("Lessons learned (Markdown)", validators=LONG)
    kind_fields = ("went_wrong", "lessons")


class AssetForm(ItemForm):
    asset_kind = SelectField("Kind of asset", choices=AssetKind.choices(), validate_choice=True)
    availability = TextAreaField("Availability (Markdown)", validators=LONG)
    licensing_note = TextAreaField("Licensing and collaboration note (Markdown)", validators=LONG)
    kind_fields = ("asset_kind", "availability", "licensing_note")


FORM_BY_KIND = {"challenge": ChallengeForm, "failure": FailureForm, "asset": AssetForm}


class VisibilityForm(FlaskForm):
    visibility = SelectField("Visibility", choices=VIS_CHOICES, validate_choice=True)
    submit = SubmitField("Change visibility")


class GrantForm(FlaskForm):
    email = StringField("Person (e-mail of a registered account)", filters=[strip],
                        validators=[Optional(), Length(max=254)])
    org = StringField("or organisation (its short name)", filters=[strip], validators=[Optional(), Length(max=140)])
    expires_at = UTCDateTimeField("Access ends (UTC, optional)", validators=[Optional()])
    submit = SubmitField("Grant access")

    def validate(self, extra_validators=None):
        ok = super().validate(extra_validators)
        if ok and bool(self.email.data) == bool(self.org.data):
            self.email.errors.append("Give either a person's e-mail or an organisation, not both.")
            return False
        return ok
