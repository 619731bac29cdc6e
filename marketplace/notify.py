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
from sqlalchemy import func, inspect as sa_inspect, select, update
from sqlalchemy.exc import IntegrityError

from . import policy
from .extensions import db
from .models import Notification, OutgoingMail, User, utcnow

log = logging.getLogger(__name__)


def notify(user: User | int, kind: str, message: str, url: str = "", about: Any = None) -> Notification | None:
    """Queue an in-app notification; skipped if `about` is given and the user may not view it.
    `about` is remembered: the notifications page shows the message only while its reader may
    still see it."""
    u = user if isinstance(user, User) else db.session.get(User, user)
    if u is None:
        return None
    if about is not None and not policy.can(u, "view", about):
        return None
    n = Notification(user_id=u.id, kind=kind[:40], message=message[:500], url=url[:500])
    if about is not None and getattr(about, "id", None) is not None:
        n.about_type, n.about_id = _table_of(about), about.id
    db.session.add(n)
    return n


def _table_of(obj: Any) -> str:
    return sa_inspect(obj).mapper.base_mapper.local_table.name


def _withheld(rows: list[Notification], user: Any) -> set[int]:
    """Notifications whose subject is gone or the reader may no longer see (moderators hid
    it, their access ended): their messages name it, so they are not shown."""
    models = {m.local_table.name: m.class_ for m in db.Model.registry.mappers if m.inherits is None}
    wanted: dict[str, set[int]] = {}
    for n in rows:
        if n.about_type is not None:
            wanted.setdefault(n.about_type, set()).add(n.about_id)
    seen: set[tuple[str, int]] = set()
    for table, ids in wanted.items():
        model = models.get(table)
        if model is None:
            continue
        pk = model.__mapper__.primary_key[0]
        for obj in db.session.execute(select(model).where(pk.in_(sorted(ids)))).scalars():
            try:
                if policy.can(user, "view", obj):
                    seen.add((table, obj.id))
            except policy.PolicyError:
                pass
    return {n.id for n in rows if n.about_type is not None and (n.about_type, n.about_id) not in seen}


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


bp = Blueprint("notifications", __name__)


@bp.route("/")
@login_required
def index():
    rows = db.session.execute(
        select(Notification).where(Notification.user_id == current_user.id)
        .order_by(Notification.created_at.desc(), Notification.id.desc()).limit(200)
    ).scalars().all()
    return render_template("notifications/index.html", rows=rows, withheld=_withheld(rows, current_user))


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
