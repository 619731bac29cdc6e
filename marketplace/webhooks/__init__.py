"""Webhooks: the organisation's page (/orgs/<slug>/webhooks: register, remove, deliveries
with their status and response, re-send), the delivery worker (worker.py) and its command
(`flask webhooks deliver [--watch]`, cli.py). Registration and the outbox are in
marketplace/services/webhooks.py."""
from flask import Blueprint

bp = Blueprint("webhooks", __name__)

from . import views  # noqa: E402,F401
from .cli import webhooks_cli  # noqa: E402
from .. import cli as _cli  # noqa: E402

if webhooks_cli not in _cli.EXTRA_COMMANDS:
    _cli.EXTRA_COMMANDS.append(webhooks_cli)
