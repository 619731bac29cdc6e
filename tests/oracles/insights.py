"""Who may read an organisation's figures and governance events, verify the audit chain,
review a closed challenge and start from a past one (issue 11, from its text and the
README's "Dashboards and the learning loop" section, not from the policy code):

* an organisation's dashboard and governance events: its owners and admins (members do not:
  the figures count every challenge's ideas); a cluster's participation figures: a
  cluster's owners and admins, and only for a cluster;
* verifying the audit chain: site admins only (moderators are not site admins);
* an after-action review is written by the challenge organisation's owners and admins, for a
  challenge they may see, once it has closed: closed or archived, or still open with its
  deadline passed (a draft never has); they alone read it, and publish it once, after it
  was written;
* starting a new challenge from a past one: the owners and admins of the past challenge's
  organisation, for a challenge they may see.
"""
from __future__ import annotations

from .items import may_see_item, sees_item


def sees_dashboard(p, org, facts) -> bool:
    return p.admin(org.id)


def sees_participation(p, org, facts) -> bool:
    return p.admin(org.id) and org.kind == "cluster"


def browses_governance(p, org, facts) -> bool:
    return p.admin(org.id)


def verifies_audit(p, facts) -> bool:
    return p.site_admin


def has_closed(item, now) -> bool:
    if item.status in ("closed", "archived"):
        return True
    return item.status == "open" and item.deadline is not None and item.deadline <= now


def writes_review(p, item, facts) -> bool:
    return (item.kind == "challenge" and may_see_item(p, item, facts) and p.admin(item.org_id)
            and has_closed(item, facts.now))


def starts_from(p, item, facts) -> bool:
    return item.kind == "challenge" and may_see_item(p, item, facts) and p.admin(item.org_id)


def sees_review(p, review, facts) -> bool:
    item = facts.items[review.challenge_id]
    return p.admin(item.org_id) and sees_item(p, item, facts)


def edits_review(p, review, facts) -> bool:
    return sees_review(p, review, facts) and writes_review(p, facts.items[review.challenge_id], facts)


def publishes_review(p, review, facts) -> bool:
    return edits_review(p, review, facts) and review.submitted_at is not None and review.lesson_item_id is None
