from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length

from ..email_address import EmailAddress

NAME = [DataRequired("Enter a display name."), Length(min=2, max=80, message="Use 2 to 80 characters.")]
PASSWORD = [DataRequired("Enter a password."),
            Length(min=10, max=200, message="Use at least 10 characters (at most 200).")]


class RegisterForm(FlaskForm):
    email = EmailField("E-mail", filters=[lambda s: s.strip() if isinstance(s, str) else s],
                       validators=[DataRequired("Enter your e-mail address."),
                                   Length(max=254, message="Enter a valid e-mail address."),
                                   EmailAddress("Enter a valid e-mail address.")])
    display_name = StringField("Display name", validators=NAME)
    password = PasswordField("Password", validators=PASSWORD)
    confirm = PasswordField("Repeat password", validators=[EqualTo("password", "The passwords do not match.")])
    submit = SubmitField("Create account")


class LoginForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired("Enter your e-mail address."), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired("Enter your password."), Length(max=200)])
    remember = BooleanField("Keep me signed in on this device")
    submit = SubmitField("Sign in")


class ProfileForm(FlaskForm):
    display_name = StringField("Display name", validators=NAME)
    submit = SubmitField("Save name")


class PasswordForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired("Enter your current password."),
                                                            Length(max=200)])
    password = PasswordField("New password", validators=PASSWORD)
    confirm = PasswordField("Repeat new password",
                            validators=[EqualTo("password", "The passwords do not match.")])
    submit = SubmitField("Change password")


class OtherSessionsForm(FlaskForm):
    """A bare form: its CSRF token and button end every session but the current one."""

    submit = SubmitField("Sign out other sessions")
