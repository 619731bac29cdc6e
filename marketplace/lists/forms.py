from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from ..converters import MAX_ID
from ..items.forms import UTCDateTimeField, strip
from ..services.lists import DESCRIPTION_MAX, NAME_MAX


class ListForm(FlaskForm):
    name = StringField("Name", filters=[strip], validators=[
        DataRequired("Give the list a name."), Length(max=NAME_MAX, message=f"At most {NAME_MAX} characters.")])
    description = TextAreaField("Description (plain text)", validators=[
        Optional(), Length(max=DESCRIPTION_MAX, message=f"At most {DESCRIPTION_MAX} characters.")])
    submit = SubmitField("Save list")


class MemberForm(FlaskForm):
    email = StringField("Person (e-mail of a registered account)", filters=[strip],
                        validators=[Optional(), Length(max=254, message="At most 254 characters.")])
    org = StringField("or member organisation (its short name)", filters=[strip],
                      validators=[Optional(), Length(max=140, message="At most 140 characters.")])
    expires_at = UTCDateTimeField("On the list until (UTC, optional)", validators=[Optional()])
    submit = SubmitField("Add to list")

    def validate(self, extra_validators=None):
        ok = super().validate(extra_validators)
        if ok and bool(self.email.data) == bool(self.org.data):
            self.email.errors.append("Give either a person's e-mail or an organisation, not both.")
            return False
        return ok


class ShareForm(FlaskForm):
    org = StringField("Organisation (its short name)", filters=[strip], validators=[
        DataRequired("Give the short name of the organisation."), Length(max=140, message="At most 140 characters.")])
    submit = SubmitField("Share list")


class AttachForm(FlaskForm):
    list_id = IntegerField("List", validators=[InputRequired("Choose a list."),
                                             NumberRange(1, MAX_ID, "Choose one of the lists offered.")])
    submit = SubmitField("Attach list")


class ConfirmForm(FlaskForm):
    submit = SubmitField("Confirm")
