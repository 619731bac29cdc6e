"""A person's own data, from their account page: download it all as JSON
(/settings/data.json) and delete the account (/settings/delete)."""
from flask import Blueprint

bp = Blueprint("people", __name__)

from . import views  # noqa: E402,F401
