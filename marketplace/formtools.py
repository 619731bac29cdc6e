"""Form helpers shared by the feature blueprints."""
from __future__ import annotations

from .services.common import ServiceError


def attach_service_error(form, e: ServiceError) -> None:
    """Show a service's refusal on the form: on its field when it names one, else on top."""
    target = getattr(form, e.field, None) if e.field else None
    if target is not None and hasattr(target, "errors") and not isinstance(target.errors, dict):
        if isinstance(target.errors, tuple):
            target.errors = list(target.errors)
        target.errors.append(e.message)
    else:
        form.form_errors.append(e.message)
