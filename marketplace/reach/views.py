"""Follow / unfollow, the list of what one follows, announcements, and the challenge
timeline shown in the challenge panel."""
from __future__ import annotations

from datetime import datetime

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select

from .. import policy
from ..extensions import db, limiter
from ..models import FollowKind, IdeaAward, Item, ItemKind, Organisation, utcnow
from ..params import safe_next
from ..ratelimit import account_or_address, limit_for
from ..policy import get_visible_or_404
from ..services import notifications as svc
from ..services.common import ServiceError
from . import bp


def _target(kind: str, key: str):
    if kind == FollowKind.CHALLENGE.value:
        item = get_visible_or_404(Item, key)
        if item.kind != ItemKind.CHALLENGE.value:
            abort(404)
        return item, url_for("items.detail", kind=item.kind, item_id=item.id)
    if kind == FollowKind.ORGANISATION.value:
        org = get_visible_or_404(Organisation, key)
        return org, url_for("orgs.detail", slug=org.slug)
    if kind == FollowKind.TAG.value:
        return key, url_for("items.list_kind", kind="challenge", tag=key)
    abort(404)


@bp.route("/follow/<kind>/<key>", methods=["POST"])
@login_required
@limiter.limit(limit_for("follows_per_account"), key_func=account_or_address)
def follow(kind: str, key: str):
    from ..auth.forms import ConfirmForm

    if not ConfirmForm().validate_on_submit():
        abort(400, "Your form expired. Reload the page and try again.")
    target, back = _target(kind, key)
    # A refusal is answered by the app-wide ServiceError handler.
    if request.form.get("stop"):
        svc.unfollow(current_user, kind, target)
        flash("You no longer follow this.", "info")
    else:
        svc.follow(current_user, kind, target)
        flash("Following: you hear about it as your notification choices say.", "success")
    return redirect(safe_next(request.form.get("next"), back))


@bp.route("/following")
@login_required
def following():
    """What the signed-in user follows (challenges listed only while they may see them)."""
    from ..models import Follow

    rows = db.session.execute(policy.visible(current_user, Follow).order_by(Follow.created_at.desc())
                              .limit(500)).scalars().all()
    ch_ids = [int(r.target_key) for r in rows if r.target_kind == FollowKind.CHALLENGE.value]
    org_ids = [int(r.target_key) for r in rows if r.target_kind == FollowKind.ORGANISATION.value]
    challenges = db.session.execute(policy.visible(current_user, Item).where(Item.id.in_(ch_ids))).scalars().all() \
        if ch_ids else []
    orgs = db.session.execute(select(Organisation).where(Organisation.id.in_(org_ids))).scalars().all() \
        if org_ids else []
    tags = [r.target_key for r in rows if r.target_kind == FollowKind.TAG.value]
    return render_template("reach/following.html", challenges=challenges, orgs=orgs, tags=tags)


@bp.route("/challenges/<int:item_id>/announcements", methods=["POST"])
@login_required
@limiter.limit(limit_for("announcements_per_account"), key_func=account_or_address)
def announce(item_id: int):
    from ..auth.forms import ConfirmForm

    item = get_visible_or_404(Item, item_id)
    if item.kind != ItemKind.CHALLENGE.value:
        abort(404)
    policy.require("announce", item)
    if not ConfirmForm().validate_on_submit():
        abort(400, "Your form expired. Reload the page and try again.")
    try:
        svc.announce(current_user, item, request.form.get("title", ""), request.form.get("body", ""))
    except ServiceError as e:
        flash(e.message, "error")
        return redirect(url_for("items.detail", kind=item.kind, item_id=item.id) + "#announce")
    flash("Announcement posted and sent to the challenge's participants and followers.", "success")
    return redirect(url_for("items.detail", kind=item.kind, item_id=item.id) + "#announcements")


def timeline(item: Item, now: datetime | None = None) -> list[dict]:
    """The challenge's dates in order: opens, questions close, deadline, reveal, review,
    award. Each: label, when (or None) and a note; `past` for what has happened."""
    now = now or utcnow()
    terms = policy.current_terms(item.id)
    cutoff = policy.question_cutoff(item)
    first_award = db.session.execute(select(func.min(IdeaAward.created_at)).where(
        IdeaAward.challenge_id == item.id)).scalar()
    opens = item.opens_at or item.published_at
    steps = [
        {"label": "Opens", "when": opens, "note": "" if opens else "on publication"},
        {"label": "Questions close", "when": cutoff, "note": "" if cutoff else "no deadline set"},
        {"label": "Deadline for ideas", "when": item.deadline, "note": "" if item.deadline else "not set"},
    ]
    if terms is None:
        steps.append({"label": "Ideas revealed", "when": None, "note": "when the terms are set"})
    elif terms.is_sealed:
        steps.append({"label": "Ideas revealed", "when": terms.reveal_at,
                      "note": "" if terms.reveal_at else "sealed: seen only by their authors and the review panel"})
    else:
        steps.append({"label": "Ideas revealed", "when": None, "note": "open: seen on submission"})
    steps.append({"label": "Review", "when": item.deadline, "note": "from the deadline" if item.deadline else ""})
    steps.append({"label": "Award", "when": first_award, "note": "" if first_award else "when the panel decides"})
    for s in steps:
        s["past"] = s["when"] is not None and s["when"] <= now
    return steps


@bp.app_context_processor
def _helpers():
    from ..services.common import parse_tags

    return {"reach_timeline": timeline, "reach_announcements": svc.announcements_of,
            "reach_following": svc.is_following,
            "reach_tag": lambda raw: (parse_tags(str(raw or "")) or [""])[0]}
