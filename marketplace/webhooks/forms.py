from flask_wtf import FlaskForm
from wtforms import SelectMultipleField, StringField, SubmitField
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from ..services.webhooks import EVENTS


class WebhookForm(FlaskForm):
    url = StringField("Endpoint (https://…)", filters=[lambda s: s.strip() if isinstance(s, str) else s],
                      validators=[DataRequired("Enter the endpoint's URL."), Length(max=500)])
    events = SelectMultipleField("Events", choices=[(k, f"{k}: {v}") for k, v in EVENTS.items()],
                                 default=list(EVENTS), validate_choice=True,
                                 option_widget=CheckboxInput(), widget=ListWidget(prefix_label=False))
    submit = SubmitField("Add webhook")
