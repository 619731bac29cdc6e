"""Challenges, failures and assets: lists, detail pages, posting and managing."""
from flask import Blueprint

bp = Blueprint("items", __name__)

from . import views  # noqa: E402,F401
