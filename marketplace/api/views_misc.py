"""Search (the page's results, counts and facets), reports and moderators' actions, and the
caller's own things (profile, grants, receipts, notifications)."""
from __future__ import annotations

from flask import g, url_for
from flask_login import current_user
from sqlalchemy import select

from .. import policy
from ..extensions import db
from ..models import AccessGrant, Notification, Report, TermsAcceptance
from ..notify import CATEGORIES, NOT_SHOWN, mark_all_read, with_shown
from ..search import service as search_svc
from ..services import moderation as mod_svc
from ..services import notifications as notif_svc
from . import schemas as s
from .auth import token_scopes
from .core import PageQuery, listing, newest_visible, operation, page_list, page_meta, paginate
from .serializers import iso, org_ref, report_json

# --------------------------------------------------------------------------- search


@operation("/v1/search", summary="Search", tag="Search", query=s.SearchQuery, response=s.SearchOut,
           paginated=True)
def search(q: s.SearchQuery):
    """The same query language, results, counts and facets as the search page; never
    anything the caller may not see."""
    r = search_svc.search(current_user, q.q, sort=q.sort, page=q.page, per_page=q.per_page)
    return {
        "q": r.q, "sort": r.sort, **page_meta(r.total, r.page, r.per_page),
        "results": [search_svc.hit_json(h) for h in r.hits],
        "facets": {f.field: [{"value": v.value, "label": v.label, "count": v.count} for v in f.values]
                   for f in r.facets},
        "suggestion": r.suggestion, "notice": r.notice,
    }


# --------------------------------------------------------------------------- moderation


@operation("/v1/reports", "POST", summary="Report something to the moderators", tag="Moderation",
           scope="reports:write", body=s.ReportCreate, response=s.ReportOut, status=201, errors=(403, 404, 409))
def report_create(body: s.ReportCreate):
    """Anything you may see; a target that does not exist or that you may not see is 404."""
    r = mod_svc.file_report(current_user, body.target_type, body.target_id, body.category, body.note)
    return report_json(r)


@operation("/v1/reports", summary="Reports you filed, or (moderators) those in your queue", tag="Moderation",
           query=PageQuery, response=s.ReportList, paginated=True, auth=True)
def reports(q):
    return listing("reports", newest_visible(Report), q, report_json)


@operation("/v1/moderation/actions", "POST", summary="Take a moderation action (moderators)", tag="Moderation",
           scope="moderation:write", body=s.ModerationActionCreate, response=s.ModerationActionOut, status=201,
           errors=(403, 404, 409))
def moderation_action(body: s.ModerationActionCreate):
    """The moderation page's decision: hide, restore, lock, disqualify, suspend, ban, ..."""
    a = mod_svc.take_action(current_user, body.target_type, body.target_id, body.kind, body.reason,
                            rule=body.rule, days=body.days, user_id=body.account_id)
    return {"id": a.id, "kind": a.action, "target_type": a.target_type, "target_id": a.target_id}


# --------------------------------------------------------------------------- me


@operation("/v1/me", summary="Who is calling", tag="Me", response=s.MeOut)
def me():
    """Anonymous callers get `authenticated: false`. A token request also names the token's
    scopes and, for an organisation token, its organisation."""
    if not current_user.is_authenticated:
        return {"authenticated": False}
    v = policy.viewer_for(current_user)
    out = {"authenticated": True, "id": current_user.id, "display_name": current_user.display_name,
           "site_role": current_user.site_role,
           "organisations": [{"id": o, "role": r} for o, r in sorted(v.org_roles.items())]}
    scopes = token_scopes()
    if scopes is not None:
        t = g.api_token
        out["token"] = {"name": t.name, "scopes": sorted(scopes), "expires_at": iso(t.expires_at),
                        "organisation": org_ref(t.organisation)}
    return out


@operation("/v1/me/grants", summary="Your active access grants", tag="Me", response=s.GrantList, auth=True)
def my_grants():
    """Grants to you, or to an organisation you belong to, on items you may see."""
    v = policy.viewer_for(current_user)
    rows = db.session.execute(policy.active_grants_for_viewer(v).order_by(AccessGrant.id).limit(500)).scalars()
    return {"grants": [{"id": g.id, "item_id": g.item_id, "expires_at": iso(g.expires_at),
                        "via_org": org_ref(g.organisation)}
                       for g in rows if policy.can(current_user, "view", g.item)]}


@operation("/v1/me/receipts", summary="Your terms acceptance receipts", tag="Me", query=PageQuery,
           response=s.ReceiptList, paginated=True, auth=True)
def my_receipts(q):
    rows = db.session.execute(select(TermsAcceptance).where(TermsAcceptance.user_id == current_user.id)
                              .order_by(TermsAcceptance.id.desc()).limit(1000)).scalars().all()
    rows = [a for a in rows if policy.can(current_user, "view", a)]
    page, meta = page_list(rows, q)
    return {"receipts": [{"id": a.id, "purpose": a.purpose, "challenge_id": a.challenge_id, "idea_id": a.idea_id,
                          "terms_version": a.terms_version, "terms_digest": a.terms_digest,
                          "accepted_at": iso(a.accepted_at),
                          "receipt_url": url_for("ideas.receipt_json", acc_id=a.id, _external=True)}
                         for a in page], **meta}


@operation("/v1/me/notifications", summary="Your notifications", tag="Me", query=PageQuery,
           response=s.NotificationList, paginated=True, auth=True)
def my_notifications(q):
    """The notifications page's list: one about something you may no longer see keeps its
    kind and time, but not its message or link (`shown: false`)."""
    rows, meta = paginate(newest_visible(Notification), q)
    return {"notifications": [{"id": n.id, "kind": n.kind, "message": n.message if shown else NOT_SHOWN,
                               "url": n.url if shown else "", "shown": shown,
                               "created_at": iso(n.created_at), "read": n.read_at is not None}
                              for n, shown in with_shown(current_user, list(rows))],
            **meta}


@operation("/v1/me/notifications/read", "POST", summary="Mark your notifications read", tag="Me",
           scope="notifications:write", response=s.Count)
def my_notifications_read():
    return {"updated": mark_all_read(current_user)}


def _notification_settings() -> dict:
    current = notif_svc.channels(current_user)
    return {"categories": [{"key": c.key, "label": c.label, "channel": current[c.key]} for c in CATEGORIES.values()]}


@operation("/v1/me/notification-settings", summary="How you hear about each kind of notification", tag="Me",
           response=s.NotificationSettingsOut, auth=True)
def my_notification_settings():
    """The notification choices page."""
    return _notification_settings()


@operation("/v1/me/notification-settings", "PATCH", summary="Change how you hear about some kinds of notification",
           tag="Me", scope="notifications:write", body=s.NotificationSettingsChange,
           response=s.NotificationSettingsOut)
def my_notification_settings_change(body: s.NotificationSettingsChange):
    """The notification choices page's form, through the same service."""
    notif_svc.set_channels(current_user, dict(body.channels))
    return _notification_settings()
