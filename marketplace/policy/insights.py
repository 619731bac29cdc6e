"""Figures and the learning loop: dashboards, the transparency page, after-action reviews,
starting a challenge from a past one, and who reads the audit trail.

* An organisation's dashboard (its challenges, submissions over time, the funnel, Q&A
  response times) is for its owners and admins (``view_dashboard``); a cluster
  organisation's participation figures (its lists and member organisations) likewise
  (``view_participation``, clusters only). Its members do not see them: the figures count
  ideas of every challenge, which members may not read.
* The governance events (audit rows) of an organisation's own items are browsed by that
  organisation's owners and admins (``browse_governance``); `org_governance_clause` is the
  SQL of the rows they may list: events whose item belongs to the organisation, never
  another organisation's. Verifying the whole audit chain is a site admins' page
  (site action ``verify_audit``).
* An after-action review (`ChallengeReview`) is seen and written by the challenge's
  organisation's owners and admins, for a challenge they may see, once it has closed
  (status closed or archived, or open past its deadline: `challenge_has_closed`). Publishing
  it as a lesson (a failure item) is their choice, at the visibility they choose; the
  item then follows the item rules like any other.
* "Start from a past challenge" (``start_from``): the source challenge's organisation's
  owners and admins, for a challenge they may see; the copy is a draft of the same
  organisation.
* The transparency page is public. Every figure on it derived from non-public rows (ideas,
  awards, payments, non-public challenges, moderation) is disclosed through `shown_count`
  (counts) or `disclosed` (sums, medians): below `SMALL_COUNT` rows a count reads "fewer
  than 5" and a sum or median "not shown (fewer than 5 behind it)", so no single private
  row can be singled out by differencing or filtering.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, false, select

from ..models import ChallengeReview, Item, ItemKind, OrgKind, Status, utcnow
from ..models.audit import AuditEvent
from .core import Parent, PolicyError, Rule, Viewer, rule, site_action
from .items import ITEMS, KNOWN_STATUS
from .orgs import ORGANISATIONS

# --------------------------------------------------------------------------- small counts

SMALL_COUNT = 5
FEWER = f"fewer than {SMALL_COUNT}"
# In place of a sum or a median: "fewer than 5" alone would read as the figure's value.
WITHHELD = f"not shown (fewer than {SMALL_COUNT} behind it)"


def shown_count(n: int | None) -> int | str:
    """A count derived from non-public rows, as the public may read it: the count itself
    from SMALL_COUNT up, otherwise "fewer than 5" (zero included: a 0 turning into a 1
    would single out the one row)."""
    n = int(n or 0)
    return n if n >= SMALL_COUNT else FEWER


def disclosed(rows: int | None, value: Any) -> Any:
    """A figure (a sum, a median) computed over `rows` non-public rows: the value from
    SMALL_COUNT rows up, otherwise WITHHELD in its place."""
    return value if int(rows or 0) >= SMALL_COUNT else WITHHELD


def is_withheld(figure: Any) -> bool:
    return figure in (FEWER, WITHHELD)


# --------------------------------------------------------------------------- organisations


@ORGANISATIONS.action("view_dashboard")
def can_view_dashboard(v: Viewer, org) -> bool:
    return v.is_org_admin(org.id)


@ORGANISATIONS.action("view_participation")
def can_view_participation(v: Viewer, org) -> bool:
    return v.is_org_admin(org.id) and org.kind == OrgKind.CLUSTER.value


@ORGANISATIONS.action("browse_governance")
def can_browse_governance(v: Viewer, org) -> bool:
    return v.is_org_admin(org.id)


def org_governance_clause(v: Viewer, org_id: int):
    """SQL over AuditEvent: the governance events of this organisation's items, for a viewer
    who may browse them (nothing otherwise)."""
    if not v.is_org_admin(org_id):
        return false()
    return AuditEvent.item_id.in_(select(Item.id).where(Item.org_id == org_id))


@site_action("verify_audit")
def can_verify_audit(v: Viewer) -> bool:
    return v.is_site_admin


# --------------------------------------------------------------------------- the learning loop

CLOSED_STATUSES = (Status.CLOSED.value, Status.ARCHIVED.value)


def challenge_has_closed(item: Item, now: datetime | None = None) -> bool:
    """Closed for the learning loop: closed or archived, or open past its deadline."""
    if item.status not in KNOWN_STATUS:
        raise PolicyError(f"unknown status {item.status!r}")
    if item.status in CLOSED_STATUSES:
        return True
    if item.status == Status.OPEN.value and item.deadline is not None:
        return item.deadline <= (now or utcnow())
    return False


@ITEMS.action("write_review")
def can_write_review(v: Viewer, item: Item) -> bool:
    return item.kind == ItemKind.CHALLENGE.value and v.is_org_admin(item.org_id) and challenge_has_closed(item)


@ITEMS.action("start_from")
def can_start_from(v: Viewer, item: Item) -> bool:
    return item.kind == ItemKind.CHALLENGE.value and v.is_org_admin(item.org_id)


class ChallengeReviewRule(Rule):
    """A review is seen by the owners and admins of its challenge's organisation, for a
    challenge they may see. They edit it while the challenge counts as closed, and publish
    it once (after it was submitted)."""

    model = ChallengeReview
    parent = Parent("challenge", "challenge_id", Item)

    def check(self, v: Viewer, review: ChallengeReview) -> bool:
        return v.is_org_admin(review.challenge.org_id) and self.parent_ok(v, review)

    def clause(self, v: Viewer):
        admins = list(v.admin_org_ids)
        if not admins:
            return false()
        return and_(ChallengeReview.challenge_id.in_(select(Item.id).where(Item.org_id.in_(admins))),
                    self.parent_clause(v))

    def __init__(self) -> None:  # pragma: no mutate block (runs at import: declarations)
        super().__init__()
        self.actions.update({
            "edit": lambda v, r: can_write_review(v, r.challenge),
            "publish": lambda v, r: can_write_review(v, r.challenge) and r.submitted_at is not None
            and r.lesson_item_id is None,
        })


CHALLENGE_REVIEWS = rule(ChallengeReviewRule())
