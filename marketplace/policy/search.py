"""The viewer's side of search: the principal terms a viewer holds.

A document carries the terms of whoever may find it (each rule's ``doc_principals``); a
viewer holds `principals(user)`; a hit needs one term in common. So the terms here are the
twin of every rule's ``doc_principals``:

* ``public`` everyone; ``registered``, ``user:ID`` signed-in (not blocked) users;
* ``org:ID`` / ``orgadmin:ID`` members / owners and admins of an organisation;
* ``staff`` site moderators and admins;
* ``list:ID`` active members (themselves or through an organisation) of an invitation list;
* ``reviewers:CHALLENGE`` active reviewers of a challenge they may see (ideas.ReviewPanel).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..extensions import db
from ..models import ListMember, utcnow
from .core import Viewer, _viewer_key, request_memo, viewer_for
from .ideas import REVIEW_PANEL
from .items import active_list_member_clause, list_member_of_viewer


def principals(user: Any) -> list[str]:
    """Search terms for what this viewer may see; the twin of doc_principals(). Computed
    once per request and viewer (forget_viewer() drops them after a change of lists,
    reviewer appointments or roles in the same request)."""
    v = viewer_for(user)
    memo = request_memo("_policy_principals").setdefault(v.user_id, {})
    key = _viewer_key(v)
    if key not in memo:
        memo[key] = tuple(_principals(v))
    return list(memo[key])


def _principals(v: Viewer) -> list[str]:
    out = ["public"]
    if not v.is_authenticated:
        return out
    out += ["registered", f"user:{v.user_id}"]
    out += [f"org:{o}" for o in sorted(v.member_org_ids)]
    out += [f"orgadmin:{o}" for o in sorted(v.admin_org_ids)]
    if v.is_moderator:
        out.append("staff")
    list_ids = db.session.execute(
        select(ListMember.list_id).where(list_member_of_viewer(v), active_list_member_clause(utcnow())).distinct()
    ).scalars().all()
    out += [f"list:{lid}" for lid in sorted(list_ids)]
    out += REVIEW_PANEL.viewer_principals(v)
    return out
