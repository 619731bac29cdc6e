from flask_wtf import FlaskForm
from wtforms import SelectField, SelectMultipleField, StringField, SubmitField
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from ..models import OrgRole
from ..services.tokens import SCOPES

EXPIRY_CHOICES = [("7", "7 days"), ("30", "30 days"), ("90", "90 days"), ("366", "1 year"), ("never", "No expiry")]


class TokenForm(FlaskForm):
    name = StringField("Name (what the token is for)", filters=[lambda s: s.strip() if isinstance(s, str) else s],
                       validators=[DataRequired("Give the token a name."), Length(max=80)])
    scopes = SelectMultipleField("Scopes", choices=[(k, f"{k}: {v}") for k, v in SCOPES.items()],
                                 default=["read"], validate_choice=True,
                                 option_widget=CheckboxInput(), widget=ListWidget(prefix_label=False))
    expires = SelectField("Expires after", choices=EXPIRY_CHOICES, default="90", validate_choice=True)
    submit = SubmitField("Create token")


class OrgTokenForm(TokenForm):
    role = SelectField("Acts in the organisation as", choices=OrgRole.choices(), default=OrgRole.MEMBER.value,
                       validate_choice=True)
