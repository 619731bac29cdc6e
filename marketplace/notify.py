"""Tell people things: in-app notifications, delivered as each person chose per kind (in the
site, by e-mail at once, in a daily digest, or not at all), written in the caller's
transaction (the caller commits), so a rolled-back action notifies nobody.

A notification about an object is only created if the recipient may see that object
(asked of the policy), and the list asks again when it is shown, so notifications never
show what their reader may not see. People read kinds in plain words (`CATEGORIES`, `KINDS`),
never event codes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, select, update

from . import policy
from .extensions import db, limiter
from .models import Channel, Notification, NotificationPref, OutgoingMail, User, utcnow
from .params import int_arg
from .ratelimit import client_address, limit_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Category:
    """A kind of notification people choose a delivery for."""

    key: str
    label: str
    default: str


CATEGORIES: dict[str, Category] = {c.key: c for c in (
    Category("ideas_received", "Ideas submitted to your organisation's challenges", Channel.INSTANT.value),
    Category("questions_received", "Questions asked on your organisation's challenges", Channel.INSTANT.value),
    Category("requests", "Requests about assets: new requests, messages and decisions", Channel.INSTANT.value),
    Category("idea_updates", "Your ideas: shortlisted, declined, awarded, withdrawn, paid",
             Channel.INSTANT.value),
    Category("coauthors", "Co-authorship: being named a co-author, and co-authors' answers",
             Channel.INSTANT.value),
    Category("terms_changes", "Changed terms of challenges you took part in", Channel.INSTANT.value),
    Category("answers", "Answers to your questions and replies to your comments", Channel.INSTANT.value),
    Category("deadlines", "Deadlines approaching in challenges you take part in or follow",
             Channel.INSTANT.value),
    Category("announcements", "Announcements on challenges you take part in or follow", Channel.INSTANT.value),
    Category("followed", "New challenges from organisations and tags you follow", Channel.DIGEST.value),
    Category("invitations", "Invitations, lists, reviewing, and answers to your invitations",
             Channel.INSTANT.value),
    Category("moderation", "Moderation: reports, decisions and appeals", Channel.SITE.value),
    Category("other", "Anything else", Channel.INSTANT.value),
)}

# Event code -> (category, what it is in plain words).
KINDS: dict[str, tuple[str, str]] = {
    "idea.received": ("ideas_received", "New idea"),
    "question": ("questions_received", "New question"),
    "request": ("requests", "Asset request"),
    "agreement": ("requests", "Data-sharing agreement"),
    "agreement.duty": ("requests", "Duty after an agreement"),
    "idea.withdrawn": ("idea_updates", "Idea withdrawn"),
    "idea.shortlisted": ("idea_updates", "Idea shortlisted"),
    "idea.declined": ("idea_updates", "Idea declined"),
    "idea.awarded": ("idea_updates", "Idea awarded"),
    "idea.submitted": ("idea_updates", "Idea submitted"),
    "award.paid": ("idea_updates", "Award paid"),
    "ip.transferred": ("idea_updates", "IP transferred"),
    "idea.coauthor_invited": ("coauthors", "Named as a co-author"),
    "idea.coauthor_accepted": ("coauthors", "Co-author accepted"),
    "idea.coauthor_declined": ("coauthors", "Co-author declined"),
    "terms.changed": ("terms_changes", "Terms changed"),
    "answer": ("answers", "Question answered"),
    "reply": ("answers", "Reply to your comment"),
    "deadline.approaching": ("deadlines", "Deadline approaching"),
    "announcement": ("announcements", "Announcement"),
    "follow.new_challenge": ("followed", "New challenge"),
    "review.appointed": ("invitations", "Reviewer appointment"),
    "challenge.review_requested": ("other", "After-action review"),
    "list.added": ("invitations", "Added to a list"),
    "list.shared": ("invitations", "List shared"),
    "list.invited": ("invitations", "Invitation through a list"),
    "invitation.accepted": ("invitations", "Invitation accepted"),
    "invitation.declined": ("invitations", "Invitation declined"),
    "moderation.report": ("moderation", "New report"),
    "moderation.decision": ("moderation", "Moderation decision"),
    "moderation.report_outcome": ("moderation", "Outcome of your report"),
    "moderation.appeal": ("moderation", "New appeal"),
    "moderation.appeal_decided": ("moderation", "Appeal decided"),
    "moderation.scope": ("moderation", "Moderator appointment"),
    "moderation.flag": ("moderation", "Automatic check"),
}


def category_of(kind: str) -> str:
    return KINDS.get(kind, ("moderation" if kind.startswith("moderation.") else "other", ""))[0]


def kind_label(kind: str) -> str:
    """An event code in plain words (never shown as the code itself)."""
    found = KINDS.get(kind)
    return found[1] if found else "Notification"


def channel_for(user_id: int, category: str) -> str:
    row = db.session.get(NotificationPref, (user_id, category))
    return row.channel if row is not None else CATEGORIES[category].default


def notify(user: User | int, kind: str, message: str, url: str = "", about: Any = None, *,
           mail: bool = True) -> Notification | None:
    """Tell a user, as they chose for this kind; skipped if `about` is given and the user
    may not view it, or if they turned this kind off. ``mail=False``: the caller sends its
    own (mandatory) mail, so no notification mail is added."""
    u = user if isinstance(user, User) else db.session.get(User, user)
    if u is None or u.deleted_at is not None:  # a deleted account keeps no notifications
        return None
    if about is not None and not policy.can(u, "view", about):
        return None
    category = category_of(kind)
    channel = channel_for(u.id, category)
    if channel == Channel.OFF.value:
        return None
    about_type, about_id = policy.about_ref(about) if about is not None else (None, None)
    n = Notification(user_id=u.id, kind=kind[:40], message=message[:500], url=url[:500],
                     about_type=about_type, about_id=about_id,
                     digest_pending=mail and channel == Channel.DIGEST.value)
    db.session.add(n)
    if mail and channel == Channel.INSTANT.value and not u.is_blocked:
        from .mail import outbox

        outbox.queue(u, "notification", f"{kind_label(kind)}: {_one_line(message, 120)}", kind=category,
                     about=about, unsubscribe_url=unsubscribe_url(u, category),
                     context={"message": message, "label": kind_label(kind), "url": outbox.absolute(url or ""),
                              "category": CATEGORIES[category]})
    return n


def _one_line(text: str, limit: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def send_mail(to_email: str, subject: str, body: str, dedupe_key: str | None = None, *,
              about: Any = None, kind: str = "message", secret: bool = False) -> OutgoingMail | None:
    """Queue an e-mail whose text the caller wrote (both parts; see marketplace/mail).

    With `dedupe_key`, a mail already queued under that key is not queued again (None is
    returned), even by a concurrent caller: the key is unique in the table.
    """
    from .mail import outbox

    return outbox.queue_text(to_email, subject, body, kind=kind, about=about, dedupe_key=dedupe_key,
                             secret=secret)


# --------------------------------------------------------------------------- unsubscribe links


def _unsub_serializer() -> URLSafeSerializer:
    from flask import current_app
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="notifications.unsubscribe")


def unsubscribe_url(user: User, category: str) -> str:
    """A signed link (no expiry, no sign-in) that stops e-mail for one kind."""
    from .mail.outbox import link

    token = _unsub_serializer().dumps({"u": user.id, "c": category})
    return link("notifications.unsubscribe", token=token)


def read_unsubscribe_token(token: str) -> tuple[User, str] | None:
    try:
        data = _unsub_serializer().loads(token)
    except BadSignature:
        return None
    if not isinstance(data, dict) or data.get("c") not in CATEGORIES and data.get("c") != "digest":
        return None
    user = db.session.get(User, data.get("u")) if isinstance(data.get("u"), int) else None
    return (user, data["c"]) if user is not None else None


def unread_count(user: User) -> int:
    return db.session.execute(
        select(func.count()).where(Notification.user_id == user.id, Notification.read_at.is_(None))
    ).scalar_one()


def mark_all_read(user: User) -> int:
    """Mark every unread notification of the user read; returns how many."""
    res = db.session.execute(
        update(Notification).where(Notification.user_id == user.id, Notification.read_at.is_(None))
        .values(read_at=utcnow()))
    db.session.commit()
    return res.rowcount or 0


NOT_SHOWN = "About something you can no longer see."


def with_shown(user: User, rows: list[Notification]) -> list[tuple[Notification, bool]]:
    """Each notification with whether its reader may still see what it is about (the page
    and the API show the message and link only then)."""
    # Asked again now: what a notification names may have closed to its reader since.
    seen = policy.visible_about(user, [(n.about_type, n.about_id) for n in rows])
    return [(n, n.about_type is None or (n.about_type, n.about_id) in seen) for n in rows]


def nav_label(user) -> str:
    n = unread_count(user) if getattr(user, "is_authenticated", False) else 0
    return f"Notifications ({n} unread)" if n else "Notifications"


# --------------------------------------------------------------------------- pages

bp = Blueprint("notifications", __name__)
PAGE = 50


@bp.route("/")
@login_required
def index():
    page = int_arg("page", 1, maximum=10_000, label="The page number")
    rows = db.session.execute(
        policy.visible(current_user, Notification)
        .order_by(Notification.created_at.desc(), Notification.id.desc())
        .limit(PAGE + 1).offset((page - 1) * PAGE)
    ).scalars().all()
    more = len(rows) > PAGE
    shown = with_shown(current_user, rows[:PAGE])
    return render_template("notifications/index.html", rows=shown, label=kind_label, page=page, more=more,
                           not_shown=NOT_SHOWN)


@bp.route("/read", methods=["POST"])
@login_required
def mark_read():
    mark_all_read(current_user)
    return redirect(url_for("notifications.index"))


@bp.route("/settings", methods=["GET", "POST"])
@login_required
def settings():
    """Per kind: in the site, by e-mail at once, in a daily digest, or not at all."""
    from .services import notifications as svc

    if request.method == "POST":
        choices = {key: request.form[key] for key in CATEGORIES if key in request.form}
        try:
            svc.set_channels(current_user, choices)
        except svc.ServiceError as e:
            flash(e.message, "error")
            return render_template("notifications/settings.html", categories=CATEGORIES.values(),
                                   current=svc.channels(current_user), channels=list(Channel)), 400
        flash("Your notification choices are saved.", "success")
        return redirect(url_for("notifications.settings"))
    return render_template("notifications/settings.html", categories=CATEGORIES.values(),
                           current=svc.channels(current_user), channels=list(Channel))


@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
# CSRF-exempt (extensions.CSRF_EXEMPT_VIEWS): the signed token is the credential; mail
# programs POST here (RFC 8058 one-click).
@limiter.limit(limit_for("unsubscribe_links"), key_func=client_address)
def unsubscribe(token: str):
    """Stop e-mail for one kind (or all digests) without signing in."""
    from .services import notifications as svc

    found = read_unsubscribe_token(token)
    if found is None:
        abort(404, "This unsubscribe link is not valid. Check that you copied the whole link.")
    user, category = found
    label = "the daily digest" if category == "digest" else CATEGORIES[category].label.lower()
    if request.method == "POST":
        svc.stop_email(user, category)
        log.info("unsubscribed: user=%s category=%s", user.id, category)
        resp = render_template("notifications/unsubscribed.html", label=label, done=True)
    else:
        resp = render_template("notifications/unsubscribed.html", label=label, done=False)
    return resp, 200, {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@bp.route("/mail-log")
@login_required
def mail_log():
    """Site admins: the outgoing mail (failures first); see marketplace/mail/views.py."""
    from .mail.views import render_log

    policy.require("administer")
    return render_log(failures_only=False)
