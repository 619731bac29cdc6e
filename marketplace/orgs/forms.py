from ..formtools import FlaskForm
from wtforms import SelectField, StringField, SubmitField, TextAreaField, URLField
from wtforms.validators import DataRequired, Length, Optional, URL

from .. import timezones
from ..models import OrgKind, OrgRole


def strip(s):
    return s.strip() if isinstance(s, str) else s


class _ZoneMixin:
    """The organisation's time zone: the deadlines and other times it enters are read in it."""

    def set_zone_choices(self, current: str | None) -> None:
        names = list(timezones.zone_names())
        if current and current not in names and timezones.is_valid_zone(current):
            names.insert(1, current)
        self.timezone.choices = [(n, n.replace("_", " ")) for n in names]
        if self.timezone.data is None:
            self.timezone.data = current or timezones.UTC_NAME


ZONE_HELP = "Deadlines and other times your organisation enters are read in this zone; everyone sees them in their own."


class OrgForm(_ZoneMixin, FlaskForm):
    name = StringField("Name", filters=[strip], validators=[DataRequired("Give the organisation a name."),
                                                            Length(min=2, max=120)])
    kind = SelectField("Kind", choices=OrgKind.choices(), validate_choice=True)
    description = TextAreaField("About (Markdown)", validators=[Optional(), Length(max=20_000)])
    website = URLField("Website", filters=[strip], validators=[Optional(), URL(message="Enter a full web address."),
                                                               Length(max=255)])
    timezone = SelectField("Time zone", validate_choice=True, description=ZONE_HELP)
    submit = SubmitField("Save")


class OrgEditForm(_ZoneMixin, FlaskForm):
    description = TextAreaField("About (Markdown)", validators=[Optional(), Length(max=20_000)])
    website = URLField("Website", filters=[strip], validators=[Optional(), URL(message="Enter a full web address."),
                                                               Length(max=255)])
    timezone = SelectField("Time zone", validate_choice=True, description=ZONE_HELP)
    submit = SubmitField("Save")


class MemberForm(FlaskForm):
    email = StringField("E-mail of a registered account", filters=[strip],
                        validators=[DataRequired("Enter an e-mail address."), Length(max=254)])
    role = SelectField("Role", choices=OrgRole.choices(), default=OrgRole.MEMBER.value, validate_choice=True)
    submit = SubmitField("Add member")


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=OrgRole.choices(), validate_choice=True)
    submit = SubmitField("Change")
