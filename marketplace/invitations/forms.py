from __future__ import annotations

from wtforms import EmailField, IntegerField, SubmitField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from ..email_address import EmailAddress
from ..formtools import FlaskForm, LocalDateTimeField
from ..items.forms import strip
from ..services.invitations import DEFAULT_DAYS, MAX_DAYS


class InviteForm(FlaskForm):
    email = EmailField("E-mail address", filters=[strip], validators=[
        DataRequired("Enter the e-mail address to invite."),
        Length(max=254, message="At most 254 characters."), EmailAddress("Enter a valid e-mail address.")])
    days = IntegerField("Link valid for (days)", default=DEFAULT_DAYS, validators=[
        InputRequired("Say for how many days the link works."),
        NumberRange(min=1, max=MAX_DAYS, message=f"Use 1 to {MAX_DAYS} days.")])
    access_until = LocalDateTimeField("Access ends", validators=[Optional()], optional=True)
    submit = SubmitField("Send invitation")


class ConfirmForm(FlaskForm):
    """An empty form: only its CSRF token matters (accept, decline, revoke)."""

    submit = SubmitField("Confirm")
