"""A person's own data: the download of everything about them, and deleting the account.

**Download** (`personal_data`): one JSON document with the rows the person wrote or that
are addressed to them -- profile, memberships, ideas (as their authors see them, without
reviewers' notes, scores or reasons), terms acceptances with their signed receipts, access
grants and list places, notifications (as the notifications page shows them), delivery
choices and follows, asset requests, questions, answers and comments, API tokens
(metadata only: never a hash) and sessions. Nothing of other people's private data: no
other person's address, no moderation reasons, and a challenge is named only while the
person may see it (`policy.data_export_shows`).

**Deletion** (`delete_account`): the row in ``users`` stays, so the acceptance records,
receipts, ideas, decisions and audit entries others rely on keep pointing at their author,
who is shown as a stable pseudonym ("Deleted user #1a2b3c4d"). Everything personal goes:
the name, the address, the password, every session, API tokens, notification choices,
notifications, follows, mail queued to them, organisation memberships and moderator scopes;
their list places, access grants and reviewer appointments end. The audit trail is not
touched (it holds no names or addresses) and gets one more event, ``account.deleted``. The
search documents they authored are re-indexed through the outbox.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime

from flask import current_app
from sqlalchemy import delete, func, or_, select, update

from .. import audit, policy
from ..extensions import db
from ..models import (
    AccessGrant,
    Answer,
    ApiToken,
    AssetRequest,
    AuthorStatus,
    Comment,
    Follow,
    Idea,
    IdeaAuthor,
    ListMember,
    Membership,
    ModeratorScope,
    Notification,
    NotificationPref,
    OrgRole,
    OutgoingMail,
    Question,
    ReviewerAppointment,
    SiteRole,
    TermsAcceptance,
    User,
    UserSession,
    utcnow,
)
from ..security import verify_password
from .common import ServiceError

FORMAT = "open-innovation-marketplace/personal-data/v1"
DELETED_DOMAIN = "deleted.invalid"
UNUSABLE_PASSWORD = "!deleted"  # not an argon2 hash: no password ever verifies against it


def _ts(dt: datetime | None) -> str | None:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt is not None else None


# ----------------------------------------------------------------------------- download


def _challenge_ref(user: User, item) -> dict:
    shown = policy.data_export_shows(user, item)
    return {"id": item.id if item is not None else None, "title": item.title if shown else None}


def personal_data(actor: User, user: User) -> dict:
    """Everything the site holds about `user`, for `user` alone (see the module docstring)."""
    from ..notify import NOT_SHOWN, with_shown
    from .ideas import idea_payload
    from .notifications import channels
    from .terms import build_receipt

    if not policy.can(actor, "download_data", user):
        raise ServiceError("You can download only your own data.", 403)
    uid = user.id
    out: dict = {"format": FORMAT, "generated_at": _ts(utcnow())}
    out["profile"] = {"id": uid, "email": user.email, "display_name": user.display_name,
                      "site_role": user.site_role, "created_at": _ts(user.created_at),
                      "email_verified_at": _ts(user.email_verified_at), "timezone": user.timezone}
    out["memberships"] = [
        {"organisation_id": m.org_id, "organisation": m.organisation.name, "role": m.role,
         "since": _ts(m.created_at)}
        for m in db.session.execute(select(Membership).where(Membership.user_id == uid)
                                    .order_by(Membership.id)).scalars()]
    ideas = []
    for a in db.session.execute(select(IdeaAuthor).where(IdeaAuthor.user_id == uid)
                                .order_by(IdeaAuthor.id)).scalars():
        idea = db.session.get(Idea, a.idea_id)
        # A co-authorship declined or not yet answered may not open the idea: then only its
        # number, as "My invitations" shows it.
        payload = idea_payload(idea) if policy.data_export_shows(user, idea) else {"id": idea.id}
        ideas.append({"role": a.status, "joined_at": _ts(a.created_at), "idea": payload,
                      "challenge": _challenge_ref(user, idea.challenge),
                      "submitted_at": _ts(idea.submitted_at), "decided_at": _ts(idea.decided_at)})
    out["ideas"] = ideas
    out["acceptances"] = [
        {"id": acc.id, "purpose": acc.purpose, "challenge": _challenge_ref(user, acc.challenge),
         "terms_version": acc.terms_version, "terms_digest": acc.terms_digest, "idea_id": acc.idea_id,
         "idea_revision": acc.idea_revision, "accepted_at": _ts(acc.accepted_at),
         "coi_note": acc.coi_note, "receipt": build_receipt(acc)}
        for acc in db.session.execute(select(TermsAcceptance).where(TermsAcceptance.user_id == uid)
                                      .order_by(TermsAcceptance.id)).scalars()]
    out["grants"] = [
        {"id": g.id, "item": _challenge_ref(user, g.item), "reason": g.reason, "created_at": _ts(g.created_at),
         "expires_at": _ts(g.expires_at), "revoked_at": _ts(g.revoked_at)}
        for g in db.session.execute(select(AccessGrant).where(AccessGrant.user_id == uid)
                                    .order_by(AccessGrant.id)).scalars()]
    out["list_places"] = [
        {"id": m.id, "list": m.list.name, "organisation": m.list.organisation.name,
         "added_at": _ts(m.created_at), "expires_at": _ts(m.expires_at), "removed_at": _ts(m.removed_at)}
        for m in db.session.execute(select(ListMember).where(ListMember.user_id == uid)
                                    .order_by(ListMember.id)).scalars()]
    notes = db.session.execute(select(Notification).where(Notification.user_id == uid)
                               .order_by(Notification.id)).scalars().all()
    out["notifications"] = [
        {"id": n.id, "kind": n.kind, "message": n.message if shown else NOT_SHOWN,
         "url": n.url if shown else "", "created_at": _ts(n.created_at), "read_at": _ts(n.read_at)}
        for n, shown in with_shown(user, notes)]
    out["notification_settings"] = channels(user)
    out["follows"] = [
        {"kind": f.target_kind, "target": f.target_key, "since": _ts(f.created_at)}
        for f in db.session.execute(select(Follow).where(Follow.user_id == uid).order_by(Follow.id)).scalars()]
    out["requests"] = [
        {"id": r.id, "item": _challenge_ref(user, r.item), "kind": r.kind, "status": r.status,
         "message": r.message, "terms_version": r.terms_version, "created_at": _ts(r.created_at)}
        for r in db.session.execute(select(AssetRequest).where(AssetRequest.author_id == uid)
                                    .order_by(AssetRequest.id)).scalars()]
    for key, model in (("questions", Question), ("answers", Answer), ("comments", Comment)):
        out[key] = [
            # A post its author deleted is gone for everyone, its author included: no text.
            {"id": p.id, "item": _challenge_ref(user, p.item),
             "body": None if getattr(p, "deleted_at", None) is not None else p.body, "created_at": _ts(p.created_at),
             "edited_at": _ts(p.edited_at), "hidden": p.hidden_at is not None,
             "deleted_at": _ts(getattr(p, "deleted_at", None))}
            for p in db.session.execute(select(model).where(model.author_id == uid).order_by(model.id)).scalars()]
    out["api_tokens"] = [
        {"id": t.id, "name": t.name, "scopes": t.scope_list, "organisation_id": t.org_id,
         "created_at": _ts(t.created_at), "expires_at": _ts(t.expires_at), "last_used_at": _ts(t.last_used_at),
         "revoked_at": _ts(t.revoked_at)}
        for t in db.session.execute(select(ApiToken).where(ApiToken.owner_id == uid).order_by(ApiToken.id)).scalars()]
    out["sessions"] = [
        {"id": s.id, "device": s.user_agent, "from": s.ip, "signed_in_at": _ts(s.created_at),
         "last_used_at": _ts(s.last_seen_at), "ended_at": _ts(s.revoked_at)}
        for s in db.session.execute(select(UserSession).where(UserSession.user_id == uid)
                                    .order_by(UserSession.id)).scalars()]
    return out


def personal_data_json(actor: User, user: User) -> str:
    return json.dumps(personal_data(actor, user), indent=2, sort_keys=True, ensure_ascii=False)


# ----------------------------------------------------------------------------- deletion


def pseudonym(user_id: int) -> str:
    """The stable name a deleted account is shown under: keyed with the site's secret, so
    it neither reveals the account's number nor changes from page to page."""
    key = (current_app.config.get("SECRET_KEY") or "").encode()
    tag = hmac.new(key, f"deleted-user:{user_id}".encode(), hashlib.sha256).hexdigest()[:8]
    return f"Deleted user #{tag}"


def is_deleted(user: User | None) -> bool:
    return user is not None and user.deleted_at is not None


def sole_owner_of(user: User) -> list[str]:
    """Names of the organisations this person is the last owner (or last owner or admin) of:
    the account cannot go until someone else can run them."""
    mine = db.session.execute(select(Membership).where(
        Membership.user_id == user.id,
        Membership.role.in_([OrgRole.OWNER.value, OrgRole.ADMIN.value]))).scalars().all()
    stuck = []
    for m in mine:
        others = dict(db.session.execute(
            select(Membership.role, func.count()).where(Membership.org_id == m.org_id, Membership.user_id != user.id)
            .group_by(Membership.role)).all())
        other_owners = others.get(OrgRole.OWNER.value, 0)
        other_runners = other_owners + others.get(OrgRole.ADMIN.value, 0)
        if (m.role == OrgRole.OWNER.value and other_owners == 0) or other_runners == 0:
            stuck.append(m.organisation.name)
    return sorted(stuck)


def _reindex_authored(user_id: int) -> int:
    """Queue index jobs for every search document this person authored (their name and
    their principal leave the index with the next write)."""
    from ..search.outbox import reindex

    docs = [("idea", i) for i in db.session.execute(
        select(IdeaAuthor.idea_id).where(IdeaAuthor.user_id == user_id)).scalars()]
    docs += [("question", i) for i in db.session.execute(
        select(Question.id).where(Question.author_id == user_id)).scalars()]
    docs += [("question", i) for i in db.session.execute(
        select(Answer.question_id).where(Answer.author_id == user_id)).scalars()]
    docs += [("comment", i) for i in db.session.execute(
        select(Comment.id).where(Comment.author_id == user_id)).scalars()]
    reindex(db.session, docs)
    return len(set(docs))


def delete_account(actor: User, password: str, confirmed: bool) -> str:
    """Delete the signed-in person's account (see the module docstring); returns the
    pseudonym it is shown under from now on. Commits, or writes nothing and raises."""
    user = actor
    if not policy.can(actor, "delete_account", user):
        raise ServiceError("You can delete only your own account.", 403)
    if not verify_password(user.password_hash, password or ""):
        raise ServiceError("Your password is not correct.", field="password")
    if not confirmed:
        raise ServiceError("Tick the box to confirm that you want your account deleted.", field="confirm")
    stuck = sole_owner_of(user)
    if stuck:
        raise ServiceError(
            f"You are the last owner or admin of {', '.join(stuck)}. Make another member an owner "
            "(Organisation → Members) or close the organisation first; then delete your account.", 409)
    now = utcnow()
    uid, old_email = user.id, user.email
    name = pseudonym(uid)
    reindexed = _reindex_authored(uid)
    counts = {
        "sessions": db.session.execute(delete(UserSession).where(UserSession.user_id == uid)).rowcount,
        "api_tokens": db.session.execute(delete(ApiToken).where(ApiToken.acting_user_id == uid)).rowcount,
        "notifications": db.session.execute(delete(Notification).where(Notification.user_id == uid)).rowcount,
        "notification_settings": db.session.execute(
            delete(NotificationPref).where(NotificationPref.user_id == uid)).rowcount,
        "follows": db.session.execute(delete(Follow).where(Follow.user_id == uid)).rowcount,
        "mails": db.session.execute(delete(OutgoingMail).where(
            or_(OutgoingMail.user_id == uid, func.lower(OutgoingMail.to_email) == old_email.lower()))).rowcount,
        "memberships": db.session.execute(delete(Membership).where(Membership.user_id == uid)).rowcount,
        "moderator_scopes": db.session.execute(delete(ModeratorScope).where(ModeratorScope.user_id == uid)).rowcount,
    }
    # Organisation tokens they created stay with the organisation (who made them is gone).
    db.session.execute(update(ApiToken).where(ApiToken.owner_id == uid).values(owner_id=None))
    # Access ends everywhere: list places, grants, appointments as a judge.
    for m in db.session.execute(select(ListMember).where(ListMember.user_id == uid,
                                                         ListMember.removed_at.is_(None))).scalars():
        m.removed_at = now
    for g in db.session.execute(select(AccessGrant).where(AccessGrant.user_id == uid,
                                                          AccessGrant.revoked_at.is_(None))).scalars():
        g.revoked_at = now
    for a in db.session.execute(select(ReviewerAppointment).where(ReviewerAppointment.user_id == uid,
                                                                  ReviewerAppointment.revoked_at.is_(None))).scalars():
        a.revoked_at = now
    # A co-authorship they had not answered is declined; accepted ones stay (the idea was
    # submitted with them), shown under the pseudonym.
    for a in db.session.execute(select(IdeaAuthor).where(IdeaAuthor.user_id == uid,
                                                         IdeaAuthor.status == AuthorStatus.PENDING.value)).scalars():
        a.status, a.responded_at = AuthorStatus.DECLINED.value, now
    user.email = f"deleted-{uid}@{DELETED_DOMAIN}"
    user.display_name = name
    user.password_hash = UNUSABLE_PASSWORD
    user.email_verified_at = None
    user.site_role = SiteRole.USER.value
    user.timezone = "UTC"
    user.suspended_until = None
    user.session_version = (user.session_version or 1) + 1
    user.deleted_at = now
    audit.record("account.deleted", "user", uid, actor_id=uid,
                 data={"pseudonym": name, "reindexed": reindexed, **{k: int(v or 0) for k, v in counts.items()}})
    db.session.commit()
    policy.forget_viewer(uid)
    return name
