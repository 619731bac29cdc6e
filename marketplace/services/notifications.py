"""Writes for reaching people: delivery choices, unsubscribing, following, announcements,
and the periodic jobs the mail worker runs (deadline reminders, daily digests).

Every message goes through `notify()` (marketplace/notify.py), which asks the policy whether
the recipient may see what it is about and delivers it as the recipient chose; the periodic
jobs are safe to run from several workers at once (unique rows decide who does a job).
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from .. import audit, policy
from ..extensions import db
from ..models import (
    Announcement,
    Channel,
    DeadlineReminder,
    Follow,
    FollowKind,
    Idea,
    IdeaAuthor,
    IdeaStatus,
    Item,
    ItemKind,
    Membership,
    Notification,
    NotificationPref,
    Organisation,
    OrgRole,
    OutgoingMail,
    Status,
    User,
    utcnow,
)
from ..models.engagement import Question
from ..notify import CATEGORIES, category_of, kind_label, notify
from ..sanitize import plain_text, render_markdown
from .common import ServiceError, parse_tags

__all__ = ["ServiceError"]


# --------------------------------------------------------------------------- delivery choices


def channels(user: User) -> dict[str, str]:
    """The user's channel per category (defaults where they chose nothing)."""
    chosen = dict(db.session.execute(
        select(NotificationPref.category, NotificationPref.channel).where(NotificationPref.user_id == user.id)
    ).all())
    return {key: chosen.get(key, c.default) for key, c in CATEGORIES.items()}


def set_channels(user: User, choices: dict[str, str]) -> None:
    valid = set(Channel.values())
    for key, value in choices.items():
        if key not in CATEGORIES:
            raise ServiceError(f"Unknown kind of notification {key[:40]!r}.")
        if value not in valid:
            raise ServiceError(f"Choose how to hear about “{CATEGORIES[key].label}”.", field=key)
    for key, value in choices.items():
        _set(user.id, key, value)
    db.session.commit()


def _set(user_id: int, category: str, channel: str) -> None:
    row = db.session.get(NotificationPref, (user_id, category))
    if row is None:
        db.session.add(NotificationPref(user_id=user_id, category=category, channel=channel))
    else:
        row.channel = channel


def stop_email(user: User, category: str) -> None:
    """An unsubscribe link: no more e-mail for this kind (still shown in the site); for
    "digest", every kind the user gets in the digest."""
    current = channels(user)
    if category == "digest":
        for key, ch in current.items():
            if ch == Channel.DIGEST.value:
                _set(user.id, key, Channel.SITE.value)
    elif current[category] in (Channel.INSTANT.value, Channel.DIGEST.value):
        _set(user.id, category, Channel.SITE.value)
    db.session.commit()


# --------------------------------------------------------------------------- following


def _follow_target(kind: str, target) -> tuple[str, str]:
    if kind == FollowKind.CHALLENGE.value:
        return kind, str(target.id)
    if kind == FollowKind.ORGANISATION.value:
        return kind, str(target.id)
    if kind == FollowKind.TAG.value:
        tags = parse_tags(str(target or ""))
        if not tags:
            raise ServiceError("Name a tag to follow.", field="tag")
        return kind, tags[0]
    raise ServiceError(f"Unknown kind of follow {kind!r}.", 404)


def may_follow(user: User, kind: str, target) -> bool:
    if kind == FollowKind.CHALLENGE.value:
        return policy.can(user, "follow", target)
    if kind == FollowKind.ORGANISATION.value:
        return policy.can(user, "follow_org")
    return policy.can(user, "follow_tag")


def follow(user: User, kind: str, target) -> Follow:
    if not may_follow(user, kind, target):
        raise ServiceError("You cannot follow this.", 403)
    kind, key = _follow_target(kind, target)
    row = db.session.execute(select(Follow).where(Follow.user_id == user.id, Follow.target_kind == kind,
                                                  Follow.target_key == key)).scalar()
    if row is not None:
        return row
    row = Follow(user_id=user.id, target_kind=kind, target_key=key)
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:  # followed in a parallel request
        pass
    db.session.commit()
    return row


def unfollow(user: User, kind: str, target) -> None:
    kind, key = _follow_target(kind, target)
    row = db.session.execute(select(Follow).where(Follow.user_id == user.id, Follow.target_kind == kind,
                                                  Follow.target_key == key)).scalar()
    if row is not None:
        db.session.delete(row)
    db.session.commit()


def is_following(user, kind: str, key: str | int) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    return db.session.execute(select(Follow.id).where(
        Follow.user_id == user.id, Follow.target_kind == kind, Follow.target_key == str(key))).first() is not None


def followed_tags(user: User) -> list[str]:
    return list(db.session.execute(select(Follow.target_key).where(
        Follow.user_id == user.id, Follow.target_kind == FollowKind.TAG.value).order_by(Follow.target_key)).scalars())


def _followers(kind: str, keys: list[str]) -> list[User]:
    if not keys:
        return []
    return list(db.session.execute(
        select(User).join(Follow, Follow.user_id == User.id)
        .where(Follow.target_kind == kind, Follow.target_key.in_(keys)).order_by(User.id).distinct()
    ).scalars())


def tell_followers_of_new_item(item: Item) -> None:
    """Published for the first time: the followers of its organisation and of its tags who
    may see it hear of it (challenges only)."""
    if item.kind != ItemKind.CHALLENGE.value:
        return
    tags = [t.tag for t in item.tag_rows]
    users = {u.id: u for u in _followers(FollowKind.ORGANISATION.value, [str(item.org_id)])}
    users.update({u.id: u for u in _followers(FollowKind.TAG.value, tags)})
    url = _path("items.detail", kind=item.kind, item_id=item.id)
    org = db.session.get(Organisation, item.org_id)
    for u in users.values():
        if policy.may_be_told_about_item(u, item):
            notify(u, "follow.new_challenge", f"{org.name} opened a new challenge: “{item.title}”.", url,
                   about=item)


def _path(endpoint: str, **values) -> str:
    from flask import url_for

    try:
        return url_for(endpoint, **values)
    except RuntimeError:  # no request (the worker, the CLI): the mail makes it absolute
        from ..mail.outbox import link
        return link(endpoint, **values)


# --------------------------------------------------------------------------- participants


def participants(challenge: Item) -> list[User]:
    """People taking part: authors of its ideas (not withdrawn; lead, accepted or pending) and
    those who asked questions."""
    ids = set(db.session.execute(
        select(IdeaAuthor.user_id).join(Idea, Idea.id == IdeaAuthor.idea_id).where(
            Idea.challenge_id == challenge.id, Idea.status != IdeaStatus.WITHDRAWN.value,
            IdeaAuthor.status.in_(policy.IDEA_VISIBLE_AUTHOR_STATES))).scalars())
    ids |= set(db.session.execute(select(Question.author_id).where(Question.item_id == challenge.id)).scalars())
    ids.discard(None)
    if not ids:
        return []
    return list(db.session.execute(select(User).where(User.id.in_(ids)).order_by(User.id)).scalars())


def audience(challenge: Item) -> list[User]:
    """Participants and followers of a challenge, each once."""
    users = {u.id: u for u in participants(challenge)}
    users.update({u.id: u for u in _followers(FollowKind.CHALLENGE.value, [str(challenge.id)])})
    return [users[k] for k in sorted(users)]


# --------------------------------------------------------------------------- announcements


def announce(user: User, challenge: Item, title: str, body: str) -> Announcement:
    """A sponsor's announcement: shown on the challenge page, delivered to its participants
    and followers who may see the challenge, as each chose."""
    if not policy.can(user, "view", challenge):
        raise ServiceError("There is no such challenge, or you may not see it.", 404)
    if not policy.can(user, "announce", challenge):
        raise ServiceError("Only the organisation's owners and admins post announcements, on an open or "
                           "closed challenge.", 403)
    title = (title or "").strip()
    body = (body or "").strip()
    if not title:
        raise ServiceError("Give the announcement a title.", field="title")
    if len(title) > 200:
        raise ServiceError("At most 200 characters.", field="title")
    if not body:
        raise ServiceError("Write the announcement.", field="body")
    if len(body) > 10_000:
        raise ServiceError("At most 10,000 characters.", field="body")
    a = Announcement(item_id=challenge.id, author_id=user.id, title=title, body=body,
                     body_html=render_markdown(body))
    db.session.add(a)
    db.session.flush()
    audit.record("announcement.posted", challenge.kind, challenge.id, actor_id=user.id, item_id=challenge.id,
                 data={"announcement_id": a.id})
    url = _path("items.detail", kind=challenge.kind, item_id=challenge.id) + f"#announcement-{a.id}"
    text = plain_text(a.body_html)
    for u in audience(challenge):
        if u.id != user.id:
            notify(u, "announcement", f"“{challenge.title}”: {title}. {text}", url, about=a)
    db.session.commit()
    return a


def announcements_of(challenge: Item, limit: int = 50) -> list[Announcement]:
    return list(db.session.execute(
        select(Announcement).where(Announcement.item_id == challenge.id)
        .order_by(Announcement.created_at.desc(), Announcement.id.desc()).limit(limit)).scalars())


# --------------------------------------------------------------------------- sponsors


def org_admins(org_id: int) -> list[User]:
    return list(db.session.execute(
        select(User).join(Membership, Membership.user_id == User.id).where(
            Membership.org_id == org_id, Membership.role.in_([OrgRole.OWNER.value, OrgRole.ADMIN.value]))
        .order_by(User.id)).scalars())


def tell_sponsor_idea_submitted(idea: Idea) -> None:
    """The challenge organisation's owners and admins hear that an idea counts as submitted
    (each only if they may see it: the policy's sealed-idea rule decides)."""
    challenge = idea.challenge
    authors = {a.user_id for a in idea.authors}
    url = _path("ideas.detail", idea_id=idea.id)
    for u in org_admins(challenge.org_id):
        if u.id not in authors:
            notify(u, "idea.received", f"A new idea was submitted to “{challenge.title}”: “{idea.title}”.", url,
                   about=idea)


# --------------------------------------------------------------------------- periodic jobs


def send_deadline_reminders(now: datetime | None = None) -> int:
    """Remind participants and followers of open challenges whose deadline is near, once per
    lead time (NOTIFY_DEADLINE_LEAD_HOURS) and deadline. Returns the reminders given."""
    from ..mail import lead_hours

    now = now or utcnow()
    leads = lead_hours()  # largest first
    if not leads:
        return 0
    candidates = db.session.execute(
        select(Item).where(Item.kind == ItemKind.CHALLENGE.value, Item.status == Status.OPEN.value,
                           Item.hidden_at.is_(None), Item.deadline.is_not(None), Item.deadline > now,
                           Item.deadline <= now + timedelta(hours=leads[0]))
        .order_by(Item.deadline)).scalars().all()
    given = 0
    for ch in candidates:
        left = ch.deadline - now
        due = [h for h in leads if left <= timedelta(hours=h)]
        if not due:
            continue
        done = set(db.session.execute(select(DeadlineReminder.lead_hours).where(
            DeadlineReminder.item_id == ch.id, DeadlineReminder.deadline == ch.deadline)).scalars())
        if min(due) in done:
            continue
        try:
            with db.session.begin_nested():
                # The nearest lead time speaks; the farther ones that passed unheard are spent.
                for h in due:
                    if h not in done:
                        db.session.add(DeadlineReminder(item_id=ch.id, lead_hours=h, deadline=ch.deadline))
                db.session.flush()
        except IntegrityError:  # another worker is giving this reminder
            continue
        hours = max(1, int(left.total_seconds() // 3600))
        when = f"in {hours} hour{'s' if hours != 1 else ''}" if hours < 48 else f"in {hours // 24} days"
        url = _path("items.detail", kind=ch.kind, item_id=ch.id)
        for u in audience(ch):
            notify(u, "deadline.approaching",
                   f"The deadline of “{ch.title}” is {when}, at {ch.deadline:%Y-%m-%d %H:%M} UTC.", url, about=ch)
        db.session.commit()
        given += 1
    return given


def digest_key(user_id: int, now: datetime) -> str:
    return f"digest:{user_id}:{now:%Y-%m-%d}"


def send_digests(now: datetime | None = None, batch: int = 500) -> int:
    """Once a day after NOTIFY_DIGEST_HOUR (UTC): one mail per person with the notifications
    waiting for their digest, each asked of the policy again now. Returns digests queued."""
    from flask import current_app

    from ..mail import outbox
    from ..notify import unsubscribe_url

    now = now or utcnow()
    if now.hour < int(current_app.config.get("NOTIFY_DIGEST_HOUR") or 0):
        return 0
    user_ids = list(db.session.execute(
        select(Notification.user_id).where(Notification.digest_pending.is_(True)).distinct().limit(batch)).scalars())
    queued = 0
    for uid in user_ids:
        key = digest_key(uid, now)
        if db.session.execute(select(OutgoingMail.id).where(OutgoingMail.dedupe_key == key)).first():
            continue  # today's went out; these wait for tomorrow's
        user = db.session.get(User, uid)
        rows = db.session.execute(
            select(Notification).where(Notification.user_id == uid, Notification.digest_pending.is_(True))
            .order_by(Notification.created_at, Notification.id).limit(200)).scalars().all()
        db.session.execute(update(Notification).where(Notification.id.in_([n.id for n in rows]))
                           .values(digest_pending=False))
        seen = policy.visible_about(user, [(n.about_type, n.about_id) for n in rows])
        shown = [n for n in rows if n.about_type is None or (n.about_type, n.about_id) in seen]
        if shown and not user.is_blocked:
            groups: dict[str, list] = defaultdict(list)
            for n in shown:
                groups[category_of(n.kind)].append(
                    {"label": kind_label(n.kind), "message": n.message, "url": outbox.absolute(n.url or ""),
                     "when": n.created_at})
            sections = [{"category": CATEGORIES[c], "entries": items,
                         "unsubscribe_url": unsubscribe_url(user, c)} for c, items in groups.items()]
            if outbox.queue(user, "digest", f"Your daily summary: {len(shown)} notification"
                            f"{'s' if len(shown) != 1 else ''}", kind="digest", dedupe_key=key,
                            unsubscribe_url=unsubscribe_url(user, "digest"),
                            context={"sections": sections, "count": len(shown),
                                     "notifications_url": outbox.link("notifications.index")}):
                queued += 1
        db.session.commit()
    return queued

