"""Moderation forms (Flask-WTF: CSRF on every one)."""
from __future__ import annotations

from ..formtools import FlaskForm
from wtforms import IntegerField, SelectField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from ..models.moderation import ActionKind, ReportCategory


def strip(s):
    return s.strip() if isinstance(s, str) else s


class ReportForm(FlaskForm):
    category = SelectField("What is wrong?", choices=ReportCategory.choices(), validate_choice=True)
    # No Optional(): it would stop the chain before validate_note runs on an empty note.
    note = TextAreaField("Note for the moderators", filters=[strip], validators=[
        Length(max=2000, message="At most 2,000 characters.")])
    submit = SubmitField("Send report")

    def validate_note(self, field):
        if self.category.data == ReportCategory.OTHER.value and not field.data:
            raise ValidationError("Say what is wrong when you choose “Other”.")


class ActionForm(FlaskForm):
    action = SelectField("Decision", choices=[], validate_choice=True)
    reason = TextAreaField("Reason (the author sees it)", filters=[strip], validators=[
        DataRequired("Give a reason; the author will see it."),
        Length(max=2000, message="At most 2,000 characters.")])
    rule = StringField("Participation rule broken (for a disqualification)", filters=[strip],
                       validators=[Optional(), Length(max=300, message="At most 300 characters.")])
    days = IntegerField("Suspend for (days)", validators=[
        Optional(), NumberRange(min=1, max=365, message="A suspension lasts 1 to 365 days.")])
    user_id = SelectField("Account", choices=[], coerce=int, validate_choice=False)
    submit = SubmitField("Take decision")

    def validate_rule(self, field):
        if self.action.data == ActionKind.DISQUALIFY.value and not field.data:
            raise ValidationError("Name the participation rule the idea broke.")

    def validate_days(self, field):
        if self.action.data == ActionKind.SUSPEND.value and not field.data:
            raise ValidationError("Give the length of the suspension in days.")


class AppealForm(FlaskForm):
    statement = TextAreaField("Why should this decision be changed?", filters=[strip], validators=[
        DataRequired("Say why the decision should be changed."),
        Length(min=10, max=4000, message="Between 10 and 4,000 characters.")])
    submit = SubmitField("Send appeal")


class DecideAppealForm(FlaskForm):
    outcome = SelectField("Outcome", choices=[("uphold", "Uphold the decision"),
                                              ("overturn", "Overturn the decision (undo it)")],
                          validate_choice=True)
    reason = TextAreaField("Reason (the author sees it)", filters=[strip], validators=[
        DataRequired("Give a reason; the author will see it."),
        Length(max=2000, message="At most 2,000 characters.")])
    submit = SubmitField("Decide appeal")


class FlagForm(FlaskForm):
    outcome = SelectField("Outcome", choices=[("confirm", "Confirm (then act on the idea)"),
                                              ("dismiss", "Dismiss (not a breach)")], validate_choice=True)
    note = TextAreaField("Note", filters=[strip], validators=[
        DataRequired("Give a short note on your decision."), Length(max=2000, message="At most 2,000 characters.")])
    submit = SubmitField("Resolve flag")


class ScopeForm(FlaskForm):
    email = StringField("Moderator (e-mail of the account)", filters=[strip], validators=[
        DataRequired("Give the e-mail address of the account."), Length(max=254)])
    org = StringField("Organisation (its name)", filters=[strip], validators=[
        DataRequired("Give the organisation's name."), Length(max=140)],
                      render_kw={"list": "organisation-names", "autocomplete": "off"})
    submit = SubmitField("Appoint")


class BlockedDomainForm(FlaskForm):
    domain = StringField("Domain", filters=[strip], validators=[
        DataRequired("Give a domain such as example.com."), Length(max=253)])
    reason = StringField("Reason", filters=[strip], validators=[
        DataRequired("Say why the domain is blocked."), Length(max=500)])
    submit = SubmitField("Block domain")


class ReasonForm(FlaskForm):
    """A bare CSRF-protected POST (revoking a scope, unblocking a domain)."""

    submit = SubmitField("Confirm")
