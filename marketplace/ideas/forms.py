"""Forms for terms, rules, ideas, co-authorship, review and receipts (CSRF on every one)."""
from __future__ import annotations

from flask_wtf.file import FileField, MultipleFileField
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from ..formtools import FlaskForm, LocalDateTimeField
from ..items.forms import strip
from ..models import Confidentiality, IncentiveKind, IPModel, WhoMaySubmit
from ..services.attachments import ALLOWED_EXTENSIONS

IP_CHOICES = [
    ("contributor-retains", "Contributor retains all rights (the organisation may evaluate only)"),
    ("non-exclusive-licence", "Non-exclusive licence to the organisation"),
    ("exclusive-licence", "Exclusive licence to the organisation"),
    ("assignment-on-award", "Assignment on award (IP passes only when awarded and paid)"),
    ("open-licence", "Open licence (published under a named open licence)"),
]
assert [c for c, _ in IP_CHOICES] == IPModel.values()
CONF_CHOICES = [
    ("sealed", "Sealed: ideas seen only by our reviewers, never by other contributors"),
    ("open", "Open: ideas seen by everyone who may see the challenge"),
]
assert sorted(c for c, _ in CONF_CHOICES) == sorted(Confidentiality.values())
WHO_CHOICES = [
    ("registered", "Any registered user who can see the challenge"),
    ("invited", "Only people invited to the challenge"),
    ("organisation", "Only members of our organisation"),
]
assert [c for c, _ in WHO_CHOICES] == WhoMaySubmit.values()
TEXT = [Optional(), Length(max=5000, message="At most 5,000 characters.")]


def _required_text(name: str, limit: int = 5000) -> list:
    """A terms field every sheet must fill (services/terms.py checks it too, with the same words)."""
    from ..services.terms import required_message

    return [DataRequired(required_message(name)), Length(max=limit, message=f"At most {limit:,} characters.")]


class IncentiveForm(Form):
    kind = SelectField("Type", choices=[("", "— none —")] + [(k.value, k.label) for k in IncentiveKind],
                       validate_choice=True, default="")
    amount = StringField("Amount", filters=[strip], validators=[Optional(), Length(max=20)])
    currency = StringField("Currency", filters=[strip], validators=[Optional(), Length(max=3)])
    winners = IntegerField("Winners", validators=[Optional(), NumberRange(1, 100, "1 to 100.")])
    milestone = StringField("Milestone", filters=[strip], validators=[Optional(), Length(max=200)])
    percentage = StringField("Percentage", filters=[strip], validators=[Optional(), Length(max=10)])
    base = StringField("Royalty base", filters=[strip], validators=[Optional(), Length(max=200)])
    description = StringField("Description", filters=[strip], validators=[Optional(), Length(max=500)])


class TermsForm(FlaskForm):
    ip_model = SelectField("IP model", choices=IP_CHOICES, validate_choice=True)
    open_licence = StringField("Open licence (for the open-licence model)", filters=[strip],
                               validators=[Optional(), Length(max=80)])
    field_of_use = TextAreaField("Field of use", validators=_required_text("field_of_use"))
    territory = TextAreaField("Territory", validators=_required_text("territory"))
    licence_duration = StringField("Licence duration", filters=[strip],
                                   validators=_required_text("licence_duration", 200))
    post_termination_rights = TextAreaField("Post-termination rights (after the challenge ends or is cancelled)",
                                            validators=_required_text("post_termination_rights"))
    background_ip = TextAreaField("Background IP", validators=_required_text("background_ip"))
    foreground_ip = TextAreaField("Foreground IP", validators=_required_text("foreground_ip"))
    confidentiality = SelectField("Confidentiality", choices=CONF_CHOICES, validate_choice=True)
    reveal_at = LocalDateTimeField("Reveal date for sealed ideas", validators=[Optional()], optional=True)
    nda_text = TextAreaField("NDA to accept before the full brief is shown (optional)",
                             validators=[Optional(), Length(max=20_000)])
    incentives = FieldList(FormField(IncentiveForm), "Incentive", min_entries=5, max_entries=10)
    dispute_resolution = TextAreaField("Dispute resolution", validators=_required_text("dispute_resolution"))
    governing_law = StringField("Governing law", filters=[strip], validators=_required_text("governing_law", 200))
    submit = SubmitField("Save as a new terms version")

    def data_for_service(self) -> dict:
        out = {f: getattr(self, f).data for f in (
            "ip_model", "open_licence", "field_of_use", "territory", "licence_duration",
            "post_termination_rights", "background_ip", "foreground_ip", "confidentiality", "reveal_at",
            "nda_text", "dispute_resolution", "governing_law")}
        # Every row, empty ones too: the service names a faulty row by its place in the form.
        out["incentives"] = [dict(e.data) for e in self.incentives.entries]
        return out


class RulesForm(FlaskForm):
    who_may_submit = SelectField("Who may submit", choices=WHO_CHOICES, validate_choice=True)
    max_ideas_per_contributor = IntegerField("Maximum ideas per contributor", default=1, validators=[
        DataRequired("Enter a number."), NumberRange(1, 100, "Between 1 and 100.")])
    team_allowed = BooleanField("Team submissions allowed (co-authors)")
    max_team_size = IntegerField("Maximum team size (lead author included)", default=1,
                                 validators=[Optional(), NumberRange(1, 20, "Between 1 and 20.")])
    allowed_domains = TextAreaField("Allowed e-mail domains (one per line; empty: any)",
                                    validators=[Optional(), Length(max=5000)])
    blocked_domains = TextAreaField("Blocked e-mail domains (one per line)", validators=[Optional(), Length(max=5000)])
    org_members_may_participate = BooleanField("Members of our organisation may take part")
    eligibility_statement = TextAreaField("Eligibility statement contributors must confirm (optional)",
                                          validators=TEXT)
    coi_declaration = TextAreaField("Conflict-of-interest declaration contributors must confirm (optional)",
                                    validators=TEXT)
    submit = SubmitField("Save participation rules")



class _TermsVersionForm(FlaskForm):
    """Names the exact terms version the person was shown (checked again by the service)."""

    terms_version = HiddenField()
    terms_digest = HiddenField()


class _AcceptForm(_TermsVersionForm):
    accept_terms = BooleanField("I accept these terms")
    confirm_eligibility = BooleanField("I confirm the eligibility statement above")
    confirm_coi = BooleanField("I confirm the conflict-of-interest declaration above")
    coi_note = TextAreaField("Conflicts to disclose (optional)", validators=[Optional(), Length(max=2000)])

    def accept_data(self) -> dict:
        return {f: getattr(self, f).data for f in ("terms_version", "terms_digest", "accept_terms",
                                                    "confirm_eligibility", "confirm_coi", "coi_note")}


class IdeaForm(_AcceptForm):
    challenge_id = HiddenField()
    submission_key = HiddenField()
    title = StringField("Title", filters=[strip], validators=[DataRequired("Give the idea a title."),
                                                             Length(max=200, message="At most 200 characters.")])
    summary = StringField("One-line summary", filters=[strip],
                          validators=[Optional(), Length(max=500, message="At most 500 characters.")])
    body = TextAreaField("The idea (Markdown)", validators=[DataRequired("Describe the idea."),
                                                            Length(max=50_000, message="At most 50,000 characters.")])
    attachments = MultipleFileField(f"Attachments ({', '.join(ALLOWED_EXTENSIONS)})")
    coauthors = TextAreaField("Co-authors (e-mail addresses of their accounts, one per line)",
                              validators=[Optional(), Length(max=2000)])
    submit = SubmitField("Accept the terms and submit")

    def data_for_service(self) -> dict:
        out = self.accept_data()
        out.update({f: getattr(self, f).data for f in ("challenge_id", "submission_key", "title", "summary",
                                                       "body", "coauthors")})
        return out


class ReviseForm(_AcceptForm):
    title = IdeaForm.title
    summary = IdeaForm.summary
    body = IdeaForm.body
    attachments = MultipleFileField(f"Add attachments ({', '.join(ALLOWED_EXTENSIONS)})")
    submit = SubmitField("Accept the terms and save the revision")

    def data_for_service(self) -> dict:
        out = self.accept_data()
        out.update({f: getattr(self, f).data for f in ("title", "summary", "body")})
        return out


class CoauthorForm(_AcceptForm):
    submit = SubmitField("Accept the terms as co-author")


class NDAForm(_TermsVersionForm):
    accept = BooleanField("I accept this NDA")
    submit = SubmitField("Accept the NDA")


class ReviewerNDAForm(FlaskForm):
    nda_digest = HiddenField()
    accept = BooleanField("I accept this reviewer NDA")
    submit = SubmitField("Accept and start reviewing")


class ReviewerForm(FlaskForm):
    email = StringField("Reviewer's e-mail address", filters=[strip],
                        validators=[DataRequired("Enter an e-mail address."), Length(max=254)])
    nda_text = TextAreaField("Reviewer NDA (required for outside judges; members need none)",
                             validators=[Optional(), Length(max=20_000)])
    submit = SubmitField("Appoint reviewer")


class CriterionForm(FlaskForm):
    name = StringField("Criterion", filters=[strip], validators=[DataRequired("Name the criterion."),
                                                                Length(max=120)])
    weight = IntegerField("Weight", default=1, validators=[DataRequired("Enter a weight."),
                                                           NumberRange(1, 100, "Between 1 and 100.")])
    description = StringField("What reviewers look for", filters=[strip], validators=[Optional(), Length(max=500)])
    submit = SubmitField("Add criterion")


class ActionForm(FlaskForm):
    """A bare form: CSRF for one-button actions and dynamic fields (scores)."""


class NoteForm(FlaskForm):
    body = TextAreaField("Private note (only you see it; never shown to authors)",
                         validators=[DataRequired("Write the note."), Length(max=10_000)])
    submit = SubmitField("Add note")


class ReasonForm(FlaskForm):
    reason = TextAreaField("Reason (shown to the authors)", validators=[DataRequired("Give a reason."),
                                                                         Length(max=2000)])
    submit = SubmitField("Confirm")


class DisqualifyForm(FlaskForm):
    """A moderation decision on an idea: it names the participation rule broken, the authors
    are told both and may appeal (marketplace/services/moderation.py)."""

    reason = TextAreaField("Reason (shown to the authors)", validators=[
        DataRequired("Give the reason for disqualifying the idea."), Length(max=2000)])
    rule = StringField("Participation rule broken", validators=[
        DataRequired("Name the participation rule the idea broke."), Length(max=300)])
    submit = SubmitField("Disqualify")


class AwardForm(FlaskForm):
    incentive = SelectField("Incentive granted", coerce=int, validate_choice=True, choices=[])
    note = TextAreaField("Note (optional)", validators=[Optional(), Length(max=2000)])
    submit = SubmitField("Award")


class VerifyForm(FlaskForm):
    receipt = TextAreaField("Paste the receipt (JSON)", validators=[Optional(), Length(max=20_000)])
    file = FileField("or upload RECEIPT.json")
    submit = SubmitField("Verify")
