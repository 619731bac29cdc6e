"""The JSON API (v1) for programs and pages' scripts: personal and organisation tokens or the
browser session, the same services and policy as the pages, one error shape, and an OpenAPI
3.1 document generated from the declared operations (/api/v1/openapi.json, /api/docs).

Modules: core (operation declarations, parsing, pagination, ETags), auth (tokens, scopes,
CSRF for cookie sessions, rate limits), schemas (pydantic), serializers, openapi, and the
resources: views (organisations, items, terms), views_ideas, views_engagement,
views_invites (invitations, lists), views_misc (search, moderation, me).
"""
from flask import Blueprint

bp = Blueprint("api", __name__)

from . import auth, core, openapi, views, views_engagement, views_ideas, views_invites, views_misc  # noqa: E402,F401
from .. import templating as _templating  # noqa: E402

if ("API", "api.docs") not in _templating.FOOTER_LINKS:
    _templating.FOOTER_LINKS.append(("API", "api.docs"))
