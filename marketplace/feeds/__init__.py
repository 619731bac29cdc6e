"""Atom feeds of the newest items, filtered by the policy for whoever asks (anonymous
feed readers get public items only)."""
from flask import Blueprint

bp = Blueprint("feeds", __name__)

from . import views  # noqa: E402,F401
