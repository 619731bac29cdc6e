from ..formtools import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, PasswordField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length

from .. import timezones
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
    # Filled from the browser by static/js/site.js; empty or unknown: the site default
    # (never an error: nobody can correct a field they cannot see).
    timezone = HiddenField(render_kw={"data-browser-timezone": ""})
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
    """Ends every session but the current one, once the current password is typed again
    (ASVS 7.5.2: someone at an unlocked browser cannot lock the owner out of the others)."""

    password = PasswordField("Current password", validators=[DataRequired("Enter your current password."),
                                                             Length(max=200)])
    submit = SubmitField("Sign out other sessions")


EMAIL = [DataRequired("Enter your e-mail address."), Length(max=254, message="Enter a valid e-mail address."),
         EmailAddress("Enter a valid e-mail address.")]


def _strip(s):
    return s.strip() if isinstance(s, str) else s


class ForgotPasswordForm(FlaskForm):
    email = EmailField("E-mail", filters=[_strip], validators=EMAIL)
    submit = SubmitField("Send me a reset link")


class ResetPasswordForm(FlaskForm):
    password = PasswordField("New password", validators=PASSWORD)
    confirm = PasswordField("Repeat new password",
                            validators=[EqualTo("password", "The passwords do not match.")])
    submit = SubmitField("Set the new password")


class EmailChangeForm(FlaskForm):
    email = EmailField("New e-mail address", filters=[_strip], validators=EMAIL)
    password = PasswordField("Current password", validators=[DataRequired("Enter your current password."),
                                                             Length(max=200)])
    submit = SubmitField("Send a confirmation link")


class ConfirmForm(FlaskForm):
    submit = SubmitField("Confirm")


class TimezoneForm(FlaskForm):
    timezone = SelectField("Time zone", validate_choice=True,
                           description="Every time on the site is shown to you in this zone.")
    submit = SubmitField("Save time zone")

    def __init__(self, *args, current: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        names = list(timezones.zone_names())
        if current and current not in names and timezones.is_valid_zone(current):
            names.insert(1, current)  # a zone the browser gave that the short list leaves out
        self.timezone.choices = [(n, n.replace("_", " ")) for n in names]
        if self.timezone.data is None:
            self.timezone.data = current or timezones.UTC_NAME
