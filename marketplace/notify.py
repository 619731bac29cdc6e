"""Tell people things: in-app notifications and e-mail, both written in the caller's
transaction (the caller commits), so a rolled-back action notifies nobody.

A notification about an object is only created if the recipient may see that object
(asked of the policy), so notifications can never leak what their reader may not see.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from . import policy
from .extensions import db
from .models import Notification, OutgoingMail, User, utcnow

log = logging.getLogger(__name__)


def notify(user: User | int, kind: str, message: str, url: str = "", about: Any = None) -> Notification | None:
    """Queue an in-app notification; skipped if `about` is given and the user may not view it."""
    u = user if isinstance(user, User) else db.session.get(User, user)
    if u is None:
        return None
    if about is not None and not policy.can(u, "view", about):
        return None
    n = Notification(user_id=u.id, kind=kind[:40], message=message[:500], url=url[:500])
    db.session.add(n)
    return n


def send_mail(to_email: str, subject: str, body: str, dedupe_key: str | None = None) -> OutgoingMail | None:
    """Record an e-mail for delivery (logged; delivered by SMTP when configured).

    With `dedupe_key`, a mail already queued under that key is not queued again (None is
    returned), even by a concurrent caller: the key is unique in the table.
    """
    m = OutgoingMail(to_email=to_email, subject=subject[:200], body=body, dedupe_key=dedupe_key)
    if dedupe_key is not None:
        if db.session.execute(select(OutgoingMail.id).where(OutgoingMail.dedupe_key == dedupe_key)).first():
            return None
        try:
            with db.session.begin_nested():
                db.session.add(m)
        except IntegrityError:  # queued by someone else between the look-up and the insert
            return None
    else:
        db.session.add(m)
    # Neither address, subject nor body: subjects name non-public challenges, bodies carry
    # links with tokens.
    log.info("mail queued for delivery")
    return m


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


bp = Blueprint("notifications", __name__)


@bp.route("/")
@login_required
def index():
    rows = db.session.execute(
        select(Notification).where(Notification.user_id == current_user.id)
        .order_by(Notification.created_at.desc(), Notification.id.desc()).limit(200)
    ).scalars().all()
    return render_template("notifications/index.html", rows=rows)


@bp.route("/read", methods=["POST"])
@login_required
def mark_read():
    db.session.execute(
        update(Notification).where(Notification.user_id == current_user.id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
    )
    db.session.commit()
    return redirect(url_for("notifications.index"))


@bp.route("/mail-log")
@login_required
def mail_log():
    """Site admins see the outgoing mail log (useful where no SMTP server is configured)."""
    policy.require("administer")
    rows = db.session.execute(select(OutgoingMail).order_by(OutgoingMail.id.desc()).limit(200)).scalars().all()
    return render_template("notifications/mail_log.html", rows=rows)
