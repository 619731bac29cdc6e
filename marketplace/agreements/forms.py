"""Forms for data-sharing sheets and agreements (CSRF on every one, via Flask-WTF)."""
from __future__ import annotations

from wtforms import BooleanField, MultipleFileField, SelectField, StringField, SubmitField, TextAreaField

from ..formtools import FlaskForm
from ..items.forms import strip
from ..models.agreements import EndOfTerm


class SheetForm(FlaskForm):
    purpose = TextAreaField("Purpose limitation", filters=[strip],
                            description="What the data may be used for, and nothing else.")
    allowed_uses = TextAreaField("Allowed uses", filters=[strip])
    access_roles = TextAreaField("Roles that may access", filters=[strip],
                                 description="One role a line, e.g. “data scientist”. Only people named in these roles get access.")
    duration_days = StringField("Duration (days)", filters=[strip])
    onward_sharing = BooleanField("Onward sharing allowed")
    end_of_term = SelectField("At the end", choices=[(e.value, e.label) for e in EndOfTerm], validate_choice=False)
    end_of_term_days = StringField("Deletion or return within (days after the end)", filters=[strip], default="30")
    confidentiality_days = StringField("Confidentiality after the end (days)", filters=[strip], default="0")
    surviving_terms = TextAreaField("Terms surviving the end (licence survival)", filters=[strip])
    publication_rules = TextAreaField("Publication rules", filters=[strip])
    personal_data = BooleanField("The data contains personal data")
    governing_law = StringField("Governing law", filters=[strip])
    submit = SubmitField("Publish this version")


class FilesForm(FlaskForm):
    files = MultipleFileField("Files")
    submit = SubmitField("Add files")
