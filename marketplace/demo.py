"""Demo data: one account per role, each organisation kind, items at each visibility level.

Idempotent: running it again finds what exists and adds only what is missing.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from .extensions import db
from .models import (
    MODEL_BY_KIND,
    AccessGrant,
    Item,
    Membership,
    Organisation,
    OrgRole,
    SiteRole,
    Status,
    User,
    utcnow,
)
from .sanitize import render_markdown
from .templating import excerpt
from .security import hash_password
from .services.common import parse_tags, slugify

DEMO_PASSWORD = "demo-password-1"

USERS = [
    ("admin@demo.test", "Site Admin", SiteRole.ADMIN.value),
    ("moderator@demo.test", "Mo Derator", SiteRole.MODERATOR.value),
    ("owner@acme.test", "Alice Owner (Acme)", SiteRole.USER.value),
    ("admin@acme.test", "Bob Admin (Acme)", SiteRole.USER.value),
    ("member@acme.test", "Carol Member (Acme)", SiteRole.USER.value),
    ("curator@cluster.test", "Dave Curator (Cluster)", SiteRole.USER.value),
    ("researcher@uni.test", "Erin Researcher (University)", SiteRole.USER.value),
    ("invited@contributor.test", "Ivy Invited Contributor", SiteRole.USER.value),
    ("outsider@contributor.test", "Oscar Outsider", SiteRole.USER.value),
]

ORGS = [
    ("Acme Robotics", "company", "owner@acme.test",
     [("admin@acme.test", OrgRole.ADMIN.value), ("member@acme.test", OrgRole.MEMBER.value)],
     "We build warehouse robots and open our hardest problems to outside innovators."),
    ("North Sea Energy Cluster", "cluster", "curator@cluster.test", [],
     "A cluster of 40 energy companies; we curate invitation lists of trusted experts."),
    ("Techville University", "university", "researcher@uni.test", [],
     "Research groups in materials, AI and logistics."),
    ("City of Springfield", "public-body", "admin@demo.test", [],
     "Municipal innovation office."),
]

# (org, kind, title, visibility, status, tags, extra)
ITEMS = [
    ("Acme Robotics", "challenge", "Grip fragile parcels without damage", "public", "open", "robotics, grippers",
     {"body": "Our robots crush **1 in 500** soft parcels. We need a gripping approach that adapts to fragile items.",
      "context": "Warehouses with mixed parcels; cycle time under 4 s.",
      "expected_outcome": "A prototype or a convincing design study.",
      "incentive_summary": "EUR 20,000 prize and a pilot contract", "deadline_days": 45}),
    ("Acme Robotics", "challenge", "Battery swap under two minutes", "registered", "open", "batteries, energy",
     {"body": "Our fleet idles while charging. How can a battery be swapped safely in under two minutes?",
      "incentive_summary": "Milestone payments up to EUR 50,000", "deadline_days": 30}),
    ("Acme Robotics", "challenge", "Confidential: next-generation lidar fusion", "invited", "open", "sensors, lidar",
     {"body": "For invited experts only: fusing low-cost lidar with stereo vision in dusty aisles.",
      "incentive_summary": "Royalty share 3%", "deadline_days": 60, "grant": "invited@contributor.test"}),
    ("Acme Robotics", "challenge", "Internal: reduce picking errors", "organisation", "open", "quality",
     {"body": "Members only: analyse last year's picking errors.", "deadline_days": 20}),
    ("Acme Robotics", "challenge", "Draft: autonomous forklift safety", "public", "draft", "safety",
     {"body": "Still being written.", "deadline_days": 90}),
    ("Acme Robotics", "failure", "Suction grippers on recycled cardboard", "public", "open", "grippers, lessons",
     {"body": "We tried vacuum suction on recycled cardboard boxes.",
      "went_wrong": "Porous cardboard leaked air; grip failed in humid weather.",
      "lessons": "Measure porosity first; combine suction with mechanical support."}),
    ("Acme Robotics", "failure", "Over-the-air updates bricked 12 robots", "registered", "open", "software",
     {"body": "An update rolled out without staged deployment.", "lessons": "Always canary releases."}),
    ("Acme Robotics", "asset", "Warehouse motion data set (2 TB)", "invited", "open", "data, motion",
     {"body": "Two years of anonymised robot motion logs.", "asset_kind": "data-set",
      "availability": "Under licence for research.", "licensing_note": "Non-exclusive research licence.",
      "grant": "researcher@uni.test"}),
    ("North Sea Energy Cluster", "challenge", "Offshore turbine blade inspection", "public", "open",
     "energy, inspection, drones",
     {"body": "Cut inspection downtime of offshore blades with drones or crawling robots.",
      "incentive_summary": "Recognition and access to test facilities", "deadline_days": 75}),
    ("North Sea Energy Cluster", "asset", "Wave tank test facility", "public", "open", "equipment, testing",
     {"body": "A 50 m wave tank available for collaboration.", "asset_kind": "equipment",
      "availability": "Two weeks per quarter.", "licensing_note": "Collaboration only."}),
    ("Techville University", "asset", "Patent: self-healing polymer coating", "registered", "open",
     "materials, patent",
     {"body": "EP patent on a coating that seals micro-cracks.", "asset_kind": "patent",
      "licensing_note": "Exclusive or non-exclusive licence by field of use."}),
    ("Techville University", "failure", "Graphene sensors drifted in the field", "organisation", "open",
     "materials, sensors", {"body": "Lab results did not survive temperature cycling."}),
]


def _user(email: str, name: str, role: str) -> User:
    u = db.session.execute(select(User).where(User.email == email)).scalar()
    if u is None:
        u = User(email=email, display_name=name, password_hash=hash_password(DEMO_PASSWORD), site_role=role,
                 email_verified_at=utcnow())
        db.session.add(u)
        db.session.flush()
    return u


def load_demo() -> list[tuple[str, str]]:
    users = {email: _user(email, name, role) for email, name, role in USERS}
    orgs: dict[str, Organisation] = {}
    for name, kind, owner, members, about in ORGS:
        org = db.session.execute(select(Organisation).where(Organisation.name == name)).scalar()
        if org is None:
            org = Organisation(name=name, slug=slugify(name), kind=kind, description=about,
                               description_html=render_markdown(about))
            db.session.add(org)
            db.session.flush()
        orgs[name] = org
        for email, role in [(owner, OrgRole.OWNER.value), *members]:
            uid = users[email].id
            if not db.session.execute(select(Membership).where(Membership.org_id == org.id,
                                                               Membership.user_id == uid)).scalar():
                db.session.add(Membership(org_id=org.id, user_id=uid, role=role))
    now = utcnow()
    for org_name, kind, title, vis, status, tags, extra in ITEMS:
        org = orgs[org_name]
        item = db.session.execute(select(Item).where(Item.org_id == org.id, Item.title == title)).scalar()
        if item is not None:
            continue
        extra = dict(extra)
        deadline_days = extra.pop("deadline_days", None)
        grant_to = extra.pop("grant", None)
        item = MODEL_BY_KIND[kind](org_id=org.id, title=title, visibility=vis, status=status,
                                   summary=excerpt(extra.get("body", ""), 140),
                                   created_by_id=users[[o for o in ORGS if o[0] == org_name][0][2]].id)
        for k, v in extra.items():
            setattr(item, k, v)
        for f in item.MARKDOWN_FIELDS:
            setattr(item, f + "_html", render_markdown(getattr(item, f) or ""))
        if deadline_days:
            item.deadline = now + timedelta(days=deadline_days)
        if status != Status.DRAFT.value:
            item.published_at = now
        from .models import ItemTag
        item.tag_rows = [ItemTag(tag=t) for t in parse_tags(tags)]
        db.session.add(item)
        db.session.flush()
        if grant_to:
            db.session.add(AccessGrant(item_id=item.id, user_id=users[grant_to].id, reason="demo"))
    from . import demo_hooks
    for hook in demo_hooks.HOOKS:
        hook(users, orgs)
    _close_what_may_not_open()
    db.session.commit()
    return describe_accounts()


def _close_what_may_not_open() -> None:
    """Demo rows are written directly, so hold them to the rules the site applies when an
    item opens (a challenge needs a deadline and a terms sheet): an open demo item that
    fails them goes back to draft instead of being shown open."""
    from .services.items import OPEN_CHECKS

    demo_titles = {(org_name, title) for org_name, _k, title, *_rest in ITEMS}
    for item in db.session.execute(select(Item).where(Item.status == Status.OPEN.value)).scalars().all():
        if (item.organisation.name, item.title) not in demo_titles:
            continue  # only the demo's own rows: anything else was opened through the services
        missing = item.kind == "challenge" and item.deadline is None
        if missing or any(check(item) for check in OPEN_CHECKS):
            item.status = Status.DRAFT.value


def describe_accounts() -> list[tuple[str, str]]:
    """(e-mail, what this demo account is) for each demo account in the database, read from
    the data itself (site role, memberships, active grants, list places), so what is printed
    is what the account may actually do."""
    from .models import ListMember

    now = utcnow()
    out: list[tuple[str, str]] = []
    for email, _name, _role in USERS:
        user = db.session.execute(select(User).where(User.email == email)).scalar()
        if user is None:
            continue
        parts: list[str] = []
        if user.site_role == SiteRole.ADMIN.value:
            parts.append("site admin (moderates too)")
        elif user.site_role == SiteRole.MODERATOR.value:
            parts.append("site moderator")
        for m in db.session.execute(
            select(Membership).where(Membership.user_id == user.id).order_by(Membership.id)
        ).scalars():
            parts.append(f"{m.role} of {m.organisation.name} ({m.organisation.kind})")
        grants = [g for g in db.session.execute(
            select(AccessGrant).where(AccessGrant.user_id == user.id).order_by(AccessGrant.id)
        ).scalars() if g.is_active(now)]
        granted = [f"has a grant on an {g.item.visibility} {g.item.kind}" for g in grants]
        lists = [f"on the invitation list '{lm.list.name}' of {lm.list.organisation.name}"
                 for lm in db.session.execute(
                     select(ListMember).where(ListMember.user_id == user.id).order_by(ListMember.id)
                 ).scalars() if lm.is_active(now)]
        if not parts and (granted or lists):
            parts.append("invited contributor: " + "; ".join(granted + lists))
        else:
            parts += granted + lists
        if not parts:
            parts.append("outsider: registered, no grants")
        out.append((email, "; ".join(parts)))
    return out
