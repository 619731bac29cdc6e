"""Home and static information pages."""
from flask import Blueprint

bp = Blueprint("main", __name__)

from . import views, wellknown  # noqa: E402,F401
