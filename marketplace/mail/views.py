"""Admin pages: the mail log and its recent failures, and "send again".

Site admins see that a mail exists (recipient, kind, state, attempts, error) and its
subject only where they may see what it is about (policy.mail_subject_visible): a mail
about a draft names the draft only to those who may see the draft. Bodies are never shown:
they carry one-time links.
"""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import or_

from .. import policy
from ..extensions import db
from ..models import MailStatus, OutgoingMail
from ..pagination import paginate
from . import bp

PAGE = 50  # mails per page of the log


def render_log(failures_only: bool):
    from .worker import status_counts

    q = policy.visible(current_user, OutgoingMail)
    if failures_only:
        q = q.where(or_(OutgoingMail.status == MailStatus.FAILED.value,
                        OutgoingMail.last_error.is_not(None)))
    rows, pg = paginate(q, (OutgoingMail.id.desc(),), PAGE)
    seen = policy.visible_about(current_user, [(m.about_type, m.about_id) for m in rows])
    shown = [(m, policy.mail_subject_visible(current_user, m, seen)) for m in rows]
    return render_template("notifications/mail_log.html", rows=shown, failures_only=failures_only,
                           counts=status_counts(), pg=pg,
                           endpoint="mail.failures" if failures_only else "notifications.mail_log")


@bp.route("/failures")
@login_required
def failures():
    """Recent mails that failed (or failed once and wait for another attempt)."""
    policy.require("administer")
    return render_log(failures_only=True)


@bp.route("/<int:mail_id>/retry", methods=["POST"])
@login_required
def retry(mail_id: int):
    from .worker import send_again

    m = policy.get_visible_or_404(OutgoingMail, mail_id)
    if not policy.can(current_user, "retry", m):
        abort(409, "Only a failed mail can be sent again.")
    send_again(m)
    flash("The mail is queued to be sent again.", "success")
    return redirect(url_for("mail.failures"))
