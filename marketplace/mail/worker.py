"""The mail worker: sends the outbox with retries and back-off, and runs the periodic jobs
(deadline reminders, daily digests).

**Claiming.** Each message is claimed on its own, just before it is handed to the mail
server: the oldest due row is set to ``status='sending'`` by one committed UPDATE whose
subquery picks it ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (`workers.claim_next`). Only the
process whose UPDATE changed the row sends it, so any number of workers (`flask worker` on
several hosts, a thread in every web process, `flask mail send-pending --watch`) may run at
once, and they never queue behind one another for the same row.

**After a crash: at most once.** A message is marked sent in its own commit right after the
server accepted it. A crash between the two ("sent but not marked") leaves the row in
``sending``. We never send such a row again by ourselves: after `LEASE` it is marked
``failed`` with the explanation that it may or may not have been delivered, and it is listed
on the admin page of failures, where an admin can send it again (it keeps its Message-ID, so
a mail program can tell a copy). A duplicate password-reset or invitation mail is worse than
one that an admin re-sends knowingly; at most one message per crash is in this state,
because claims are per message.

**Retries.** A temporary failure (connection refused, timeout, 4xx reply) puts the row back
to ``pending`` with ``next_attempt_at`` growing (1, 5, 30 minutes, 2, 6 hours); a permanent
one (5xx reply, refused recipient, a malformed message) or the last of MAIL_MAX_ATTEMPTS
attempts makes it ``failed``. A failing mail never stops the others, or the web processes.

**Recipients re-checked.** A mail for an account that is about something is sent only if
the account may still see it when it goes (else ``cancelled``).
"""
from __future__ import annotations

import logging
import os
import smtplib
import socket
import threading
import time
from datetime import datetime, timedelta

from flask import Flask, current_app
from flask_mailman import BadHeaderError, EmailMultiAlternatives
from sqlalchemy import func, select, update

from .. import policy
from ..extensions import db
from ..models import MailStatus, OutgoingMail, User, utcnow
from ..workers import claim_next

log = logging.getLogger(__name__)

BACKOFF = [timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
           timedelta(hours=6)]
# A row still "sending" after this was interrupted (a send takes seconds; MAIL_TIMEOUT is 30 s).
LEASE = timedelta(minutes=10)
INTERRUPTED = ("Interrupted while being handed to the mail server: it may or may not have been "
               "delivered. Not resent automatically (a mail is never sent twice); send it again "
               "if it did not arrive.")
WORKER_ID = f"{socket.gethostname()[:40]}:{os.getpid()}"


def backoff(attempts: int) -> timedelta:
    return BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]


def is_permanent(exc: BaseException) -> bool:
    """A failure that trying again will not cure."""
    if isinstance(exc, (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, BadHeaderError,
                        UnicodeError, ValueError)):
        return True
    if isinstance(exc, smtplib.SMTPResponseException):
        return 500 <= exc.smtp_code < 600
    return False


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def recover_interrupted(now: datetime | None = None) -> int:
    """Rows left "sending" longer than LEASE become "failed" (see the module docstring)."""
    now = now or utcnow()
    stale = (OutgoingMail.status == MailStatus.SENDING.value, OutgoingMail.claimed_at < now - LEASE)
    # Looked up first: an idle sender polling every few seconds must not take the database's
    # write lock each time (SQLite has one for everybody).
    if db.session.execute(select(OutgoingMail.id).where(*stale).limit(1)).first() is None:
        return 0
    n = db.session.execute(
        update(OutgoingMail).where(*stale)
        .values(status=MailStatus.FAILED.value, failed_at=now, last_error=INTERRUPTED)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if n:
        log.warning("mail: %d message(s) were interrupted mid-send and are listed as failed", n)
    return n


def claim(mail_id: int, now: datetime) -> bool:
    """Take one pending row for this worker (committed); False if another worker has it."""
    n = db.session.execute(
        update(OutgoingMail).where(OutgoingMail.id == mail_id, OutgoingMail.status == MailStatus.PENDING.value)
        .values(status=MailStatus.SENDING.value, claimed_at=now, claimed_by=WORKER_ID,
                attempts=OutgoingMail.attempts + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return n == 1


def _due(now: datetime) -> tuple:
    return (OutgoingMail.status == MailStatus.PENDING.value,
            (OutgoingMail.next_attempt_at.is_(None)) | (OutgoingMail.next_attempt_at <= now))


def claim_due(now: datetime) -> int | None:
    """Claim the oldest due message for this worker (committed); None when none is due."""
    return claim_next(OutgoingMail, *_due(now), order_by=(OutgoingMail.id,),
                      values={"status": MailStatus.SENDING.value, "claimed_at": now, "claimed_by": WORKER_ID,
                              "attempts": OutgoingMail.attempts + 1})


def due_ids(now: datetime, limit: int) -> list[int]:
    return list(db.session.execute(
        select(OutgoingMail.id).where(*_due(now))
        .order_by(OutgoingMail.id).limit(limit)).scalars())


def build_message(m: OutgoingMail, connection=None) -> EmailMultiAlternatives:
    import json

    from .outbox import default_sender

    headers = {"Message-ID": m.message_id} if m.message_id else {}
    headers.update(json.loads(m.headers_json or "{}"))
    msg = EmailMultiAlternatives(m.subject, m.body, default_sender(), [m.to_email], headers=headers,
                                 connection=connection)
    if m.html_body:
        msg.attach_alternative(m.html_body, "text/html")
    return msg


def _still_allowed(m: OutgoingMail) -> bool:
    if m.user_id is None or m.about_type is None:
        return True
    user = db.session.get(User, m.user_id)
    return user is not None and policy.can_view_about(user, m.about_type, m.about_id)


def send_pending(limit: int = 100, now: datetime | None = None, connection=None) -> dict[str, int]:
    """Send what is due (inside an app context). Returns counts per outcome."""
    from . import get_connection

    counts = {"sent": 0, "retry": 0, "failed": 0, "cancelled": 0}
    recover_interrupted(now)
    conn = connection
    opened = False
    try:
        for _ in range(limit):
            t = now or utcnow()
            mail_id = claim_due(t)
            if mail_id is None:
                break
            m = db.session.get(OutgoingMail, mail_id)
            if not _still_allowed(m):
                m.status = MailStatus.CANCELLED.value
                m.last_error = "Not sent: the recipient may no longer see what it is about."
                m.body = m.html_body = ""
                db.session.commit()
                counts["cancelled"] += 1
                continue
            try:
                if conn is None:
                    conn = get_connection()
                if not opened:
                    conn.open()
                    opened = True
                build_message(m, conn).send()
            except Exception as exc:  # noqa: BLE001 - every failure is recorded on the row
                _record_failure(m, exc, t)
                counts["failed" if m.status == MailStatus.FAILED.value else "retry"] += 1
                if not isinstance(exc, smtplib.SMTPRecipientsRefused):
                    _close(conn)  # a broken connection is opened afresh for the next message
                    conn, opened = (connection, False)
                continue
            m.status = MailStatus.SENT.value
            m.sent_at = utcnow()
            m.last_error = None
            if m.secret:
                m.body = m.html_body = ""  # the one-time link lives on only in the recipient's mailbox
            db.session.commit()
            counts["sent"] += 1
    finally:
        if opened:
            _close(conn)
    if any(counts.values()):
        log.info("mail: sent=%(sent)d retry=%(retry)d failed=%(failed)d cancelled=%(cancelled)d", counts)
    return counts


def _close(conn) -> None:
    if conn is None:
        return
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - closing a dead connection may fail; nothing to do
        pass


def _record_failure(m: OutgoingMail, exc: BaseException, now: datetime) -> None:
    db.session.rollback()
    m = db.session.get(OutgoingMail, m.id)
    m.last_error = _describe(exc)
    max_attempts = int(current_app.config.get("MAIL_MAX_ATTEMPTS") or 6)
    if is_permanent(exc) or m.attempts >= max_attempts:
        m.status = MailStatus.FAILED.value
        m.failed_at = now
        log.warning("mail %s failed for good after %d attempt(s): %s", m.id, m.attempts, type(exc).__name__)
    else:
        m.status = MailStatus.PENDING.value
        m.next_attempt_at = now + backoff(m.attempts)
        log.info("mail %s: attempt %d failed (%s); next at %s", m.id, m.attempts, type(exc).__name__,
                 m.next_attempt_at.isoformat())
    db.session.commit()


def send_again(m: OutgoingMail) -> None:
    """An admin's "send again" for a failed mail (its Message-ID stays the same)."""
    m.status = MailStatus.PENDING.value
    m.next_attempt_at = None
    m.failed_at = None
    m.attempts = 0
    db.session.commit()


def status_counts() -> dict[str, int]:
    return dict(db.session.execute(
        select(OutgoingMail.status, func.count()).group_by(OutgoingMail.status)).all())


def run_periodic(now: datetime | None = None) -> dict[str, int]:
    """Deadline reminders and daily digests (each safe to run from several workers)."""
    from ..services import notifications as notes

    now = now or utcnow()
    return {"reminders": notes.send_deadline_reminders(now), "digests": notes.send_digests(now)}


def work_once(now: datetime | None = None, periodic: bool = True) -> dict[str, int]:
    out = run_periodic(now) if periodic else {}
    out.update(send_pending(now=now))
    return out


class MailThread(threading.Thread):
    """MAIL_WORKER = "thread": sends whenever a commit queued mail, and every `interval`
    seconds (mail queued by other processes, retries); periodic jobs every minute."""

    def __init__(self, app: Flask, interval: float = 5.0, periodic_interval: float = 60.0):
        super().__init__(name="mail-outbox", daemon=True)
        self.app = app
        self.interval = interval
        self.periodic_interval = periodic_interval
        self.wake = threading.Event()
        self.stopping = False
        self.pid = os.getpid()
        self._last_periodic = 0.0

    def run(self) -> None:
        while not self.stopping:
            self.wake.wait(self.interval)
            self.wake.clear()
            periodic = time.monotonic() - self._last_periodic >= self.periodic_interval
            try:
                with self.app.app_context():
                    try:
                        work_once(periodic=periodic)
                        if periodic:
                            self._last_periodic = time.monotonic()
                    finally:
                        db.session.remove()
            except Exception:  # keep the sender alive; the mails stay in the outbox
                log.exception("mail worker: a round failed; will retry")
                time.sleep(self.interval)

    def stop(self) -> None:
        self.stopping = True
        self.wake.set()
