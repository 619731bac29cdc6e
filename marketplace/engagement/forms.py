"""Forms for engagement (CSRF on every one, via Flask-WTF)."""
from __future__ import annotations

from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
)

from ..converters import MAX_ID
from ..formtools import FlaskForm, LocalDateTimeField
from ..items.forms import strip
from ..models.engagement import FeeModel, LicenceKind, Participation, RequestKind
from ..params import parse_int
from ..services.engagement import (
    MAX_ANSWER,
    MAX_COMMENT,
    MAX_CUTOFF_HOURS,
    MAX_MESSAGE,
    MAX_OPEN_REQUESTS,
    MAX_QUESTION,
)

PARTICIPATION_CHOICES = [(p.value, p.label) for p in Participation]


def _body(label: str, max_len: int, what: str):
    return TextAreaField(label, filters=[strip], validators=[
        DataRequired(f"The {what} is empty; write something first."),
        Length(max=max_len, message=f"The {what} is too long: at most {max_len:,} characters.")])


class AskForm(FlaskForm):
    body = _body("Your question (Markdown)", MAX_QUESTION, "question")
    show_name = BooleanField("Show my name with the question when it is published")
    submit = SubmitField("Ask")


class AnswerForm(FlaskForm):
    body = _body("Answer (Markdown; publishes the question and the answer)", MAX_ANSWER, "answer")
    submit = SubmitField("Answer and publish")


class CommentForm(FlaskForm):
    body = _body("Comment (Markdown)", MAX_COMMENT, "comment")
    parent_id = HiddenField()
    submit = SubmitField("Post")

    def parent_value(self) -> int | None:
        raw = (self.parent_id.data or "").strip()
        if not raw:
            return None
        value = parse_int(raw, 1, MAX_ID)
        return -1 if value is None else value


class EditForm(FlaskForm):
    body = _body("Text (Markdown)", max(MAX_COMMENT, MAX_ANSWER, MAX_QUESTION), "text")
    submit = SubmitField("Save")


class RulesForm(FlaskForm):
    open_until = LocalDateTimeField("Open for participation until", validators=[Optional()], optional=True)
    submit = SubmitField("Save rules")
    kind_fields: tuple[str, ...] = ()

    def data_for_service(self) -> dict:
        out = {"open_until": self.open_until.data}
        for f in self.kind_fields:
            out[f] = getattr(self, f).data
        return out


class ChallengeRulesForm(RulesForm):
    ask_rule = SelectField("Who may ask questions", choices=PARTICIPATION_CHOICES, validate_choice=True)
    question_cutoff_hours = IntegerField(
        "Questions close this many hours before the deadline",
        validators=[InputRequired("Give a number of hours (0 for none)."),
                    NumberRange(0, MAX_CUTOFF_HOURS, f"Between 0 and {MAX_CUTOFF_HOURS} hours.")])
    kind_fields = ("ask_rule", "question_cutoff_hours")


class FailureRulesForm(RulesForm):
    comment_rule = SelectField("Who may comment", choices=PARTICIPATION_CHOICES, validate_choice=True)
    kind_fields = ("comment_rule",)


class AssetRulesForm(RulesForm):
    request_rule = SelectField("Who may send requests", choices=PARTICIPATION_CHOICES, validate_choice=True)
    max_open_requests = IntegerField(
        "Open requests allowed per requester",
        validators=[InputRequired("Give a number."),
                    NumberRange(1, MAX_OPEN_REQUESTS, f"Between 1 and {MAX_OPEN_REQUESTS}.")])
    kind_fields = ("request_rule", "max_open_requests")


RULES_FORM_BY_KIND = {"challenge": ChallengeRulesForm, "failure": FailureRulesForm, "asset": AssetRulesForm}

LICENCE_CHOICES = [
    (LicenceKind.EXCLUSIVE.value, "Exclusive licence"),
    (LicenceKind.NON_EXCLUSIVE.value, "Non-exclusive licence"),
    (LicenceKind.OPEN.value, "Open licence"),
    (LicenceKind.COLLABORATION_ONLY.value, "Collaboration only (nothing is licensed)"),
]
FEE_CHOICES = [
    (FeeModel.NONE.value, "None (collaboration only)"),
    (FeeModel.FREE.value, "Free"),
    (FeeModel.FIXED.value, "Fixed fee"),
    (FeeModel.ROYALTY.value, "Royalty"),
    (FeeModel.FIXED_PLUS_ROYALTY.value, "Fixed fee plus royalty"),
    (FeeModel.NEGOTIABLE.value, "Negotiable"),
]


class TermsForm(FlaskForm):
    licence_kind = SelectField("Licence kind", choices=LICENCE_CHOICES, validate_choice=True)
    field_of_use = StringField("Field of use", filters=[strip], validators=[Optional(), Length(max=200)])
    territory = StringField("Territory", filters=[strip], validators=[Optional(), Length(max=120)])
    duration = StringField("Duration", filters=[strip], validators=[Optional(), Length(max=120)])
    fee_model = SelectField("Fee model", choices=FEE_CHOICES, validate_choice=True)
    notes = TextAreaField("Notes (plain text)", filters=[strip], validators=[Optional(), Length(max=2000)])
    submit = SubmitField("Publish as a new version")


REQUEST_KIND_CHOICES = [
    (RequestKind.INTEREST.value, "Register interest"),
    (RequestKind.LICENCE.value, "Request a licence"),
    (RequestKind.COLLABORATION.value, "Request a collaboration"),
]


class RequestForm(FlaskForm):
    kind = SelectField("What you are asking for", choices=REQUEST_KIND_CHOICES, validate_choice=True)
    # Shown only to people who may speak for an organisation; for everyone else it is not on
    # the page at all, so "not sent" must mean "myself" (default), never "not a valid choice".
    on_behalf_of = SelectField("Sent by", choices=[("", "Myself")], validate_choice=True, default="")
    message = TextAreaField("Message (Markdown; required for licence and collaboration requests)",
                            filters=[strip], validators=[Optional(), Length(
                                max=MAX_MESSAGE, message=f"The message is too long: at most {MAX_MESSAGE:,} characters.")])
    terms_version = HiddenField()
    terms_digest = HiddenField()
    submit = SubmitField("Send to the organisation")

    def version_value(self) -> int | None:
        if not self.terms_version.data:
            return None
        value = parse_int(self.terms_version.data, 1, MAX_ID)
        return -1 if value is None else value


class DecisionForm(FlaskForm):
    decision = SelectField("Decision", choices=[("accept", "Accept"), ("decline", "Decline"),
                                                ("follow-up", "Propose a follow-up")], validate_choice=True)
    message = TextAreaField("Message (a reason is required to decline; a proposal to follow up)", filters=[strip],
                            validators=[Optional(), Length(max=MAX_MESSAGE, message=f"At most {MAX_MESSAGE:,} characters.")])
    submit = SubmitField("Send decision")


class RespondForm(FlaskForm):
    message = _body("Message (Markdown)", MAX_MESSAGE, "message")
    submit = SubmitField("Send")


class WithdrawForm(FlaskForm):
    message = TextAreaField("Why (optional)", filters=[strip], validators=[Optional(), Length(max=MAX_MESSAGE)])
    submit = SubmitField("Withdraw request")
