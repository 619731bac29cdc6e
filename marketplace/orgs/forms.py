from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, SubmitField, TextAreaField, URLField
from wtforms.validators import DataRequired, Length, Optional, URL

from ..models import OrgKind, OrgRole


def strip(s):
    return s.strip() if isinstance(s, str) else s


class OrgForm(FlaskForm):
    name = StringField("Name", filters=[strip], validators=[DataRequired("Give the organisation a name."),
                                                            Length(min=2, max=120)])
    kind = SelectField("Kind", choices=OrgKind.choices(), validate_choice=True)
    description = TextAreaField("About (Markdown)", validators=[Optional(), Length(max=20_000)])
    website = URLField("Website", filters=[strip], validators=[Optional(), URL(message="Enter a full web address."),
                                                               Length(max=255)])
    submit = SubmitField("Save")


class OrgEditForm(FlaskForm):
    description = TextAreaField("About (Markdown)", validators=[Optional(), Length(max=20_000)])
    website = URLField("Website", filters=[strip], validators=[Optional(), URL(message="Enter a full web address."),
                                                               Length(max=255)])
    submit = SubmitField("Save")


class MemberForm(FlaskForm):
    email = StringField("E-mail of a registered account", filters=[strip],
                        validators=[DataRequired("Enter an e-mail address."), Length(max=254)])
    role = SelectField("Role", choices=OrgRole.choices(), default=OrgRole.MEMBER.value, validate_choice=True)
    submit = SubmitField("Add member")


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=OrgRole.choices(), validate_choice=True)
    submit = SubmitField("Change")
