"""Queue e-mails: render both parts now, write the row in the caller's transaction.

Nothing is sent here. `queue()` renders ``templates/mail/<name>.txt`` and ``.html`` for one
recipient, asks the policy whether that recipient may see what the mail is about (an account
that may not is simply not mailed), and adds an `OutgoingMail` row to the session: the
caller's commit makes the mail and the change that caused it exist together, and a rollback
takes both away. The worker (worker.py) sends the row later.

Links inside mails are absolute and built from the configured public address
(marketplace/urls.py): `absolute(path)` and `link(endpoint, **values)`.
"""
from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import urljoin, urlsplit

from flask import current_app
from flask_mailman import make_msgid
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .. import policy
from ..extensions import db
from ..models import OutgoingMail, User
from ..urls import DEV_SERVER_NAME, external_url

log = logging.getLogger(__name__)

SITE_NAME = "Open Innovation Marketplace"


def link(endpoint: str, **values) -> str:
    """An absolute link for a mail (the configured public address)."""
    return external_url(endpoint, **values)


def absolute(path: str | None) -> str:
    """An absolute link for a site path such as url_for returns ("" or None: the home page)."""
    base = link("main.index")
    if not path:
        return base
    if urlsplit(path).scheme:  # already absolute
        return path
    return urljoin(base, path)


def mail_host() -> str:
    host = current_app.config.get("SERVER_NAME") or DEV_SERVER_NAME
    return host.split(":", 1)[0]


def default_sender() -> str:
    return current_app.config.get("MAIL_DEFAULT_SENDER") or f"{SITE_NAME} <noreply@{mail_host()}>"


_URL_RE = re.compile(r"https?://[^\s<>\"']+")


def linkify(text: str) -> Markup:
    """Plain text as HTML paragraphs with its links clickable (escaped first)."""
    out = []
    for para in re.split(r"\n\s*\n", text or ""):
        html = str(escape(para.strip("\n")))
        html = _URL_RE.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', html)
        out.append("<p>" + html.replace("\n", "<br>\n") + "</p>")
    return Markup("\n".join(p for p in out if p != "<p></p>"))


def _may_receive(user: User | None, about: Any) -> bool:
    if user is not None and user.deleted_at is not None:
        return False  # a deleted account has no address any more
    return about is None or user is None or policy.can(user, "view", about)


def queue(to: str | User, template: str, subject: str, *, kind: str, about: Any = None,
          context: dict | None = None, dedupe_key: str | None = None, secret: bool = False,
          unsubscribe_url: str | None = None) -> OutgoingMail | None:
    """Render and queue one mail; returns the row, or None when it is not sent: the
    recipient account may not see what it is about, or a mail with `dedupe_key` exists.

    `to` is an account (preferred: the worker asks the policy again before sending) or a
    bare address (someone without an account, e.g. an invitation). `secret`: the mail
    carries a one-time link, so its text is dropped once it has been sent.
    """
    user = to if isinstance(to, User) else None
    address = user.email if user is not None else str(to)
    if not _may_receive(user, about):
        return None
    about_type, about_id = policy.about_ref(about) if about is not None else (None, None)
    ctx = {"subject": subject, "recipient": user, "site_name": SITE_NAME, "home_url": link("main.index"),
           "unsubscribe_url": unsubscribe_url, "settings_url": link("notifications.settings"),
           **(context or {})}
    text = _render(f"mail/{template}.txt", ctx)
    html = _render(f"mail/{template}.html", ctx)
    headers: dict[str, str] = {}
    if unsubscribe_url:
        # RFC 2369 and RFC 8058: mail programs show an "unsubscribe" button that POSTs here.
        headers["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    row = OutgoingMail(to_email=address, user_id=user.id if user is not None else None, kind=kind[:40],
                       subject=subject[:200], body=text, html_body=html, headers_json=json.dumps(headers),
                       message_id=make_msgid(domain=mail_host()), about_type=about_type, about_id=about_id,
                       secret=secret, dedupe_key=dedupe_key)
    if not _add(row):
        return None
    # Neither address, subject nor body: subjects name non-public challenges, bodies carry
    # links with tokens.
    log.info("mail queued: kind=%s", row.kind)
    return row


def queue_text(to: str | User, subject: str, body: str, *, kind: str = "message", about: Any = None,
               dedupe_key: str | None = None, secret: bool = False) -> OutgoingMail | None:
    """A mail whose text is written by the caller (its HTML part shows the same text)."""
    return queue(to, "text", subject, kind=kind, about=about, dedupe_key=dedupe_key, secret=secret,
                 context={"text": body})


def _render(name: str, ctx: dict) -> str:
    """Render without the page context processors (no request, no signed-in viewer: a mail
    holds only what its context names, for its one recipient)."""
    return current_app.jinja_env.get_template(name).render(**ctx)


def _add(row: OutgoingMail) -> bool:
    if row.dedupe_key is None:
        db.session.add(row)
        return True
    if db.session.execute(select(OutgoingMail.id).where(OutgoingMail.dedupe_key == row.dedupe_key)).first():
        return False
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:  # queued by someone else between the look-up and the insert
        return False
    return True
