from __future__ import annotations

from flask_wtf.file import FileField, FileRequired
from wtforms import IntegerField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from ..converters import MAX_ID
from ..formtools import FlaskForm, LocalDateTimeField, PersonOrOrgForm
from ..items.forms import strip
from ..services.lists import DESCRIPTION_MAX, NAME_MAX


class ListForm(FlaskForm):
    name = StringField("Name", filters=[strip], validators=[
        DataRequired("Give the list a name."), Length(max=NAME_MAX, message=f"At most {NAME_MAX} characters.")])
    description = TextAreaField("Description (plain text)", validators=[
        Optional(), Length(max=DESCRIPTION_MAX, message=f"At most {DESCRIPTION_MAX} characters.")])
    submit = SubmitField("Save list")


class MemberForm(PersonOrOrgForm):
    email = StringField("Person (e-mail address)", filters=[strip],
                        validators=[Optional(), Length(max=254, message="At most 254 characters.")])
    # Own ids: the list page shows this form and ShareForm, both with an `org` field.
    org = StringField("or member organisation (its name)", filters=[strip], id="member-org",
                      render_kw={"list": "organisation-names", "autocomplete": "off"},
                      validators=[Optional(), Length(max=140, message="At most 140 characters.")])
    expires_at = LocalDateTimeField("On the list until", validators=[Optional()], optional=True)
    submit = SubmitField("Add to list")


class ShareForm(FlaskForm):
    org = StringField("Organisation (its name)", filters=[strip], id="share-org", validators=[
        DataRequired("Give the name of the organisation."), Length(max=140, message="At most 140 characters.")],
                      render_kw={"list": "organisation-names", "autocomplete": "off"})
    submit = SubmitField("Share list")


class AttachForm(FlaskForm):
    list_id = IntegerField("List", validators=[InputRequired("Choose a list."),
                                             NumberRange(1, MAX_ID, "Choose one of the lists offered.")])
    submit = SubmitField("Attach list")


class ConfirmForm(FlaskForm):
    submit = SubmitField("Confirm")


class ImportForm(FlaskForm):
    """A CSV file of people (e-mail addresses) and organisations to add to a list."""

    file = FileField("CSV file (UTF-8)", validators=[FileRequired("Choose a CSV file to import.")])
    submit = SubmitField("Check and import")
