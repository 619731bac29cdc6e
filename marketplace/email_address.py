"""The one e-mail address check, shared by forms, services and the CLI.

Syntax only, by the email-validator library (no DNS look-up: sign-up must not depend on the
network). The reserved `.test` domain (RFC 2606) is accepted because demo and test accounts
use it; the other special-use domains (`localhost`, `invalid`, `onion`...) are refused.
Addresses are stored lower-cased (look-ups compare lower-cased addresses).
"""
from __future__ import annotations

import email_validator

MAX_LENGTH = 254
MESSAGE = "Enter a valid e-mail address."


class InvalidEmail(ValueError):
    """An address that is not one: `str(e)` is a sentence for a form, `reason` the bare why."""

    def __init__(self, reason: str):
        super().__init__(f"{MESSAGE[:-1]}: {reason}")
        self.reason = reason


def normalise(address: str | None) -> str:
    return (address or "").strip().lower()


def check(address: str | None) -> str:
    """Return the address normalised (trimmed, lower-cased), or raise InvalidEmail."""
    value = normalise(address)
    if not value:
        raise InvalidEmail("it is empty.")
    if len(value) > MAX_LENGTH:
        raise InvalidEmail(f"it may have at most {MAX_LENGTH} characters.")
    try:
        # test_environment=True: accept `.test` (and never query DNS); nothing else differs.
        email_validator.validate_email(value, check_deliverability=False, test_environment=True)
    except email_validator.EmailNotValidError as e:
        raise InvalidEmail(str(e)) from None
    return value


class EmailAddress:
    """WTForms validator running `check` (so a form refuses exactly what the service would)."""

    def __init__(self, message: str | None = None):
        self.message = message

    def __call__(self, form, field) -> None:
        from wtforms.validators import StopValidation

        try:
            check(field.data)
        except InvalidEmail as e:
            raise StopValidation(self.message or str(e)) from None
