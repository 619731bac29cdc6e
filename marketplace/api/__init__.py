"""Read-only JSON API (v1). Same session authentication as the pages; every list starts
from policy.visible() and every object is loaded with the policy's 404-on-invisible loader."""
from flask import Blueprint

bp = Blueprint("api", __name__)

from . import views  # noqa: E402,F401
