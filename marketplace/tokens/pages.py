"""What the organisation's integration pages (its API tokens here, its webhooks in
marketplace/webhooks/) share: loading the organisation for someone who may manage its
integrations, and the create form that hands its data to a service."""
from __future__ import annotations

from typing import Any, Callable

from .. import policy
from ..formtools import attach_service_error
from ..models import Organisation
from ..services.common import ServiceError


def integrations_org(slug: str) -> Organisation:
    """The organisation `slug`: 404 when it does not exist or the viewer may not see it, 403
    when they may see it but not manage its integrations."""
    org = policy.get_visible_org_or_404(slug)
    policy.require("manage_integrations", org)
    return org


def submit(form, create: Callable[[Any], Any]) -> tuple[Any, Any]:
    """Validate a posted create form and call `create(form)`. Returns the form to show and
    what `create` returned: on success a blank form of the same class (the page shows the new
    thing, not the data again), else the same form, carrying the service's refusal, and None."""
    if not form.validate_on_submit():
        return form, None
    try:
        created = create(form)
    except ServiceError as e:
        attach_service_error(form, e)
        return form, None
    return type(form)(formdata=None), created
