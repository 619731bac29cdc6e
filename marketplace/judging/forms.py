"""Forms of the judging pages. Choices (panels, rounds, ideas, judges) are filled by the
views from what the policy lets the viewer see."""
from __future__ import annotations

from wtforms import (
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
    widgets,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from ..formtools import FlaskForm, LocalDateTimeField
from ..items.forms import strip


class CheckboxesField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class RoundForm(FlaskForm):
    name = StringField("Round name", filters=[strip], validators=[DataRequired("Name the round."), Length(max=80)],
                       description="For example: screening, evaluation, final.")
    starts_at = LocalDateTimeField("Starts", validators=[DataRequired("Give the date the round starts.")])
    ends_at = LocalDateTimeField("Ends", validators=[DataRequired("Give the date the round ends.")])
    advance_count = IntegerField("Ideas that go through", validators=[
        DataRequired("How many ideas go through?"), NumberRange(1, 10_000, "A whole number from 1.")],
        description="To the next round; from the last round, to the shortlist.")
    criteria = TextAreaField("Criteria and weights", validators=[DataRequired("A round needs at least one criterion."),
                                                                 Length(max=5000)],
                             description="One per line, “Name: weight”, weights whole numbers from 1 to 100.")
    panel = CheckboxesField("Panel", coerce=int, validate_choice=False,
                            description="Chosen from the challenge's appointed reviewers.")
    submit = SubmitField("Add round")


class AssignForm(FlaskForm):
    round_id = SelectField("Round", coerce=int, validate_choice=False)
    idea_id = IntegerField("Idea number", validators=[DataRequired("Give the idea's number.")])
    judge_id = SelectField("Judge", coerce=int, validate_choice=False)
    submit = SubmitField("Assign")


class AutoAssignForm(FlaskForm):
    round_id = SelectField("Round", coerce=int, validate_choice=False)
    per_idea = IntegerField("Judges per idea", default=2, validators=[
        DataRequired("How many judges per idea?"), NumberRange(1, 100, "A whole number from 1.")])
    submit = SubmitField("Assign automatically")


class CommentForm(FlaskForm):
    body = TextAreaField("Comment to the panel (seen by this round's panel and the challenge's admins only)",
                         validators=[DataRequired("Write the comment."), Length(max=10_000)])
    submit = SubmitField("Post to the panel")


class ConflictForm(FlaskForm):
    scope = RadioField("Conflict of interest with", choices=[
        ("idea", "this idea only"), ("authors", "its authors (every idea of theirs here)"),
        ("organisations", "its authors' organisations (every idea by their members here)")],
        default="idea", validators=[DataRequired("Choose with whom the conflict is.")])
    reason = TextAreaField("Why (optional; seen by the challenge's admins)", validators=[Optional(), Length(max=2000)])
    submit = SubmitField("Declare the conflict and step aside")


class BulkForm(FlaskForm):
    ideas = SelectMultipleField("Ideas", coerce=int, validate_choice=False)
    decision = RadioField("Decision", choices=[("advance", "Put through (next round, or the shortlist)"),
                                               ("decline", "Decline")],
                          validators=[DataRequired("Choose the decision.")])
    reason = TextAreaField("Reason (one for all; shown to the authors when declining)",
                           validators=[Optional(), Length(max=2000)])
    submit = SubmitField("Apply to the chosen ideas")
