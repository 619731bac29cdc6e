"""Rows as the API (and webhook deliveries) show them. Only rows the reader may see are
passed in (every list starts from policy.visible(), every object from the policy's loader);
what a row shows beyond that (a sealed idea's text, an NDA'd brief, an asker's name) is
asked of the policy here, for the reader given."""
from __future__ import annotations

from typing import Any

from flask import url_for

from .. import policy
from ..models import Item, Organisation


def iso(dt) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def _url(endpoint: str, fallback: str, **kw) -> str:
    try:
        return url_for(endpoint, _external=True, **kw)
    except RuntimeError:  # no request and no SERVER_NAME (CLI, background work)
        return fallback


def org_ref(o: Organisation | None) -> dict | None:
    return {"slug": o.slug, "name": o.name} if o is not None else None


def org_json(o: Organisation) -> dict:
    return {"slug": o.slug, "name": o.name, "kind": o.kind,
            "url": _url("orgs.detail", f"/orgs/{o.slug}", slug=o.slug)}


def item_json(item: Item, reader: Any = None, full: bool = False) -> dict:
    out = {
        "id": item.id,
        "kind": item.kind,
        "title": item.title,
        "summary": item.summary,
        "visibility": item.visibility,
        "status": item.status,
        "hidden": item.hidden_at is not None,
        "tags": item.tags,
        "organisation": org_ref(item.organisation),
        "created_at": iso(item.created_at),
        "published_at": iso(item.published_at),
        "url": _url("items.detail", f"/items/{item.id}", kind=item.kind, item_id=item.id),
    }
    if item.kind == "challenge":
        out.update(opens_at=iso(item.opens_at), deadline=iso(item.deadline),
                   incentive_summary=item.incentive_summary)
    if item.kind == "asset":
        out["asset_kind"] = item.asset_kind
    if full:
        if policy.can(reader, "view_brief", item):
            out["html"] = {f: getattr(item, f + "_html") or "" for f in item.MARKDOWN_FIELDS}
        else:  # the full brief is under an NDA this reader has not accepted
            out["html"] = None
            out["brief_under_nda"] = True
    return out


def terms_json(t) -> dict:
    return {"version": t.version, "digest": t.digest, "created_at": iso(t.created_at), "ip_model": t.ip_model,
            "confidentiality": t.confidentiality,
            "url": _url("ideas.terms_version", f"/challenges/{t.challenge_id}/terms/v{t.version}",
                        challenge_id=t.challenge_id, version=t.version)}


def idea_sealed_for(reader: Any, idea) -> bool:
    """Sealed and the reader is not an author: lists leave its text out (reading it is
    logged, and happens through the idea itself)."""
    return policy.idea_is_sealed(idea) and not policy.is_idea_author(policy.viewer_for(reader), idea)


def idea_json(idea, reader: Any, full: bool = False) -> dict:
    sealed = idea_sealed_for(reader, idea)
    show_text = full or not sealed
    out = {
        "id": idea.id, "challenge_id": idea.challenge_id, "status": idea.status, "sealed": sealed,
        "title": idea.title if show_text else None, "summary": idea.summary if show_text else None,
        "created_at": iso(idea.created_at), "submitted_at": iso(idea.submitted_at),
        "url": _url("ideas.detail", f"/ideas/{idea.id}", idea_id=idea.id),
    }
    if full:
        from ..services import ideas as ideas_svc

        v = policy.viewer_for(reader)
        out.update(body_html=idea.body_html, revision=idea.revision, content_sha256=idea.content_hash,
                   you_are="author" if policy.is_idea_author(v, idea) else ideas_svc.viewer_role(reader, idea))
    return out


def question_json(q, reader: Any) -> dict:
    v = policy.viewer_for(reader)
    mine = v.is_user(q.author_id)
    answer = q.answer if q.answer is not None and policy.can(reader, "view", q.answer) else None
    return {
        "id": q.id, "item_id": q.item_id, "body_html": q.body_html,
        # The asker's name only where they chose to show it (or to themselves).
        "asked_by": (q.author.display_name if q.author is not None and (q.show_name or mine) else None),
        "answered": q.is_answered, "answer_html": answer.body_html if answer is not None else None,
        "created_at": iso(q.created_at),
    }


def comment_json(c) -> dict:
    return {"id": c.id, "item_id": c.item_id, "parent_id": c.parent_id, "body_html": c.body_html,
            "author": c.author.display_name if c.author is not None else None, "pinned": c.pinned_at is not None,
            "created_at": iso(c.created_at)}


def request_json(r) -> dict:
    return {"id": r.id, "item_id": r.item_id, "kind": r.kind, "status": r.status, "message_html": r.message_html,
            "terms_version": r.terms_version, "terms_digest": r.terms_digest,
            "requester_org": org_ref(r.requester_org), "created_at": iso(r.created_at)}


def invitation_json(inv) -> dict:
    return {"id": inv.id, "item_id": inv.item_id, "email": inv.email, "state": policy.invitation_state(inv),
            "created_at": iso(inv.created_at), "expires_at": iso(inv.expires_at),
            "access_until": iso(inv.access_until)}


def list_json(lst) -> dict:
    return {"id": lst.id, "name": lst.name, "description": lst.description, "organisation": org_ref(lst.organisation)}


def list_member_json(m) -> dict:
    return {"id": m.id, "list_id": m.list_id, "user": m.user.display_name if m.user is not None else None,
            "organisation": org_ref(m.member_org), "expires_at": iso(m.expires_at), "active": m.is_active()}


def report_json(r) -> dict:
    return {"id": r.id, "target_type": r.target_type, "target_id": r.target_id, "category": r.category,
            "status": r.status, "created_at": iso(r.created_at)}
