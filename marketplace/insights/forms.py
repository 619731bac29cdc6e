"""Forms of the learning loop (the review's per-idea outcomes are read by the service from
the posted form, one ``fate-ID`` / ``note-ID`` pair per awarded idea)."""
from __future__ import annotations

from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from ..formtools import FlaskForm
from ..items.forms import VIS_CHOICES, strip


class ReviewForm(FlaskForm):
    achieved = TextAreaField("What did the challenge achieve?", filters=[strip], validators=[
        DataRequired("Say what the challenge achieved."), Length(max=5000, message="At most 5,000 characters.")])
    differently = TextAreaField("What would you do differently next time?", filters=[strip], validators=[
        DataRequired("Say what you would do differently."), Length(max=5000, message="At most 5,000 characters.")])


class PublishForm(FlaskForm):
    title = StringField("Title of the lesson", filters=[strip], validators=[
        DataRequired("Give the lesson a title."), Length(max=200, message="At most 200 characters.")])
    summary = StringField("One-line summary", filters=[strip], validators=[
        Optional(), Length(max=500, message="At most 500 characters.")])
    visibility = SelectField("Who may read it", choices=VIS_CHOICES, default="organisation", validate_choice=True)


class StartFromForm(FlaskForm):
    title = StringField("Title of the new challenge", filters=[strip], validators=[
        DataRequired("Give the new challenge a title."), Length(max=200, message="At most 200 characters.")])
    visibility = SelectField("Visibility", choices=VIS_CHOICES, validate_choice=True)
