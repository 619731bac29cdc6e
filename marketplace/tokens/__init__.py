"""Pages for API tokens: a person's own (/settings/tokens) and an organisation's
(/orgs/<slug>/tokens, its owners and admins). A new token is shown once, on the page that
created it; lists show names, scopes, expiry and last use, never the token."""
from flask import Blueprint

bp = Blueprint("tokens", __name__)

from . import views  # noqa: E402,F401
