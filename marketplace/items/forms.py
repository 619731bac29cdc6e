from __future__ import annotations

from wtforms import SelectField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from ..formtools import FlaskForm, LocalDateTimeField, PersonOrOrgForm
from ..models import AssetKind, Visibility

VIS_CHOICES = [
    ("public", "Public: anyone"),
    ("registered", "Registered: any signed-in user"),
    ("invited", "Invited: our members and people/organisations we grant"),
    ("organisation", "Organisation: our members only"),
]


def strip(s):
    return s.strip() if isinstance(s, str) else s


# Times organisations enter are read in the organisation's time zone (formtools). The old
# name stays importable for code written before time zones.
UTCDateTimeField = LocalDateTimeField


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
    opens_at = LocalDateTimeField("Opens at", validators=[Optional()])
    deadline = LocalDateTimeField("Deadline", validators=[Optional()])
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


class GrantForm(PersonOrOrgForm):
    email = StringField("Person (e-mail of a registered account)", filters=[strip],
                        validators=[Optional(), Length(max=254)])
    org = StringField("or organisation (its name)", filters=[strip], validators=[Optional(), Length(max=140)],
                      render_kw={"list": "organisation-names", "autocomplete": "off"})
    expires_at = LocalDateTimeField("Access ends", validators=[Optional()], optional=True)
    submit = SubmitField("Grant access")
