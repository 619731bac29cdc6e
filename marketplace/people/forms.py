from __future__ import annotations

from wtforms import BooleanField, PasswordField, SubmitField
from wtforms.validators import DataRequired, Length

from ..formtools import FlaskForm


class DeleteAccountForm(FlaskForm):
    password = PasswordField("Your password", validators=[DataRequired("Enter your password."), Length(max=200)])
    confirm = BooleanField("I understand: my account is deleted for good, and this cannot be undone.")
    submit = SubmitField("Delete my account")
