"""Demo moderation data (idempotent): open reports (one overdue), a blocked domain and a
moderator scoped to Acme Robotics' challenges (the university researcher)."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from .. import audit
from ..extensions import db
from ..models import Item, utcnow
from ..models.moderation import BlockedDomain, ModeratorScope, Report, ReportAuthor, ReportStatus
from . import registry

REPORTS = [
    # (reporter, item title, category, note, hours ago)
    ("outsider@contributor.test", "Grip fragile parcels without damage", "participation-rules",
     "The prize terms say 'pilot contract' but the deadline looks too short to be fair.", 30),
    ("researcher@uni.test", "Over-the-air updates bricked 12 robots", "confidential-information",
     "This names a customer site that I believe is under NDA.", 2),
]


def load_demo(users: dict, orgs: dict) -> None:
    now = utcnow()
    for email, title, category, note, hours in REPORTS:
        reporter = users.get(email)
        item = db.session.execute(select(Item).where(Item.title == title)).scalar()
        if reporter is None or item is None:
            continue
        if db.session.execute(select(Report.id).where(Report.reporter_id == reporter.id,
                                                      Report.target_id == item.id)).first():
            continue
        entry = registry.get(item.kind)
        p = entry.placement(item)
        r = Report(target_type=p.target_type, target_id=item.id, org_id=p.org_id, context_item_id=p.context_item_id,
                   context_kind=p.context_kind, is_discussion=p.is_discussion, reporter_id=reporter.id,
                   category=category, note=note, status=ReportStatus.OPEN.value,
                   created_at=now - timedelta(hours=hours))
        r.author_rows = [ReportAuthor(user_id=u) for u in entry.author_ids(item)]
        db.session.add(r)
    if not db.session.execute(select(BlockedDomain.id).where(BlockedDomain.domain == "spam.example")).first():
        db.session.add(BlockedDomain(domain="spam.example", reason="Demo: a known source of spam submissions."))
    acme = orgs.get("Acme Robotics")
    scoped = users.get("researcher@uni.test")
    if acme is not None and scoped is not None and not db.session.execute(
            select(ModeratorScope.id).where(ModeratorScope.user_id == scoped.id,
                                            ModeratorScope.org_id == acme.id)).first():
        scope = ModeratorScope(user_id=scoped.id, org_id=acme.id)
        db.session.add(scope)
        db.session.flush()
        audit.record("role.moderator_scope_granted", "user", scoped.id,
                     data={"org_id": acme.id, "scope_id": scope.id, "demo": True})
    db.session.flush()
