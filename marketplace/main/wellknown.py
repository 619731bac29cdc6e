"""/.well-known/ documents: the public keys that sign terms acceptance receipts."""
from __future__ import annotations

from flask import jsonify

from .. import receipt_keys
from . import bp


@bp.route("/.well-known/receipt-keys.json")
def receipt_keys_jwks():
    """Every public key that has signed receipts here (current and retired), as a JWK set.

    Public by design: a contributor saves it with their receipt and can check the receipt
    offline later, without asking the site (README: "Checking a receipt offline").
    """
    resp = jsonify(receipt_keys.jwks())
    resp.headers["Cache-Control"] = "public, max-age=3600"
    resp.headers["Access-Control-Allow-Origin"] = "*"
    return resp
