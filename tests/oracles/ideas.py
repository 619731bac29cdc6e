"""Who may see ideas and what hangs off them (issue 3; the ideas rules' statement in the
policy module's comment; the models' docstrings):

* an idea's authors see it always: the lead, co-authors who accepted, and invited
  co-authors who have not answered yet (not those who declined);
* nobody else sees an idea while it waits for its co-authors (it is not submitted yet);
* site moderators see every other idea, hidden and withdrawn ones included;
* everyone else sees only submitted ideas (submitted, under review, shortlisted, awarded,
  declined, disqualified) that are neither hidden nor withdrawn, and only if they may see
  the challenge (items.sees_item); then an open idea, or a sealed one whose reveal date has
  passed, is seen by all of them, and a sealed one only by the posting organisation's
  owners and admins and the challenge's active reviewers;
* an active reviewer holds an appointment on that challenge that is not revoked, and has
  accepted the reviewer NDA or is a member reviewer still a member of the organisation;
* moderators see what they moderate (moderation.case_in_scope), in can() and visible();
* an attachment is seen by whoever may see its idea (under the general rule; the moderation
  exception covers the reported idea itself);
* a challenge's terms sheet is shown with the challenge: whoever may see the challenge;
* an acceptance record (receipt) is its accepter's;
* a reviewer's private note is shown to its writer only.
A confidentiality or idea status the rules do not know is refused.
"""
from __future__ import annotations

from .items import UnknownState, sees_item
from .moderation import case_in_scope

IDEA_STATUSES = ("awaiting-coauthors", "submitted", "under-review", "shortlisted", "awarded", "declined",
                 "withdrawn", "disqualified")
SHOWN = ("submitted", "under-review", "shortlisted", "awarded", "declined", "disqualified")
CONFIDENTIALITY = ("sealed", "open")


def is_author(p, idea, facts) -> bool:
    return any(p.is_(a.user_id) and a.status in ("lead", "accepted", "pending")
               for a in facts.authors_of_idea.get(idea.id, []))


def sealed(idea, now) -> bool:
    if idea.confidentiality not in CONFIDENTIALITY:
        raise UnknownState(idea.confidentiality)
    return idea.confidentiality == "sealed" and (idea.reveal_at is None or idea.reveal_at > now)


def active_reviewer(p, challenge, facts) -> bool:
    if not p.signed_in:
        return False
    appt = facts.appointment.get((challenge.id, p.id))
    if appt is None or appt.revoked_at is not None:
        return False
    return appt.nda_accepted_at is not None or (appt.kind == "member" and p.member(challenge.org_id))


def sees_idea_generally(p, idea, facts) -> bool:
    if idea.status not in IDEA_STATUSES:
        raise UnknownState(idea.status)
    is_sealed = sealed(idea, facts.now)
    if is_author(p, idea, facts):
        return True
    if idea.status == "awaiting-coauthors":
        return False
    if p.staff:
        return True
    if idea.status not in SHOWN or idea.hidden_at is not None:
        return False
    challenge = facts.items[idea.challenge_id]
    if not sees_item(p, challenge, facts):
        return False
    return not is_sealed or p.admin(challenge.org_id) or active_reviewer(p, challenge, facts)


def sees_idea(p, idea, facts) -> bool:
    """can() and visible()."""
    return case_in_scope(p, "idea", idea.id, facts) or sees_idea_generally(p, idea, facts)


def sees_idea_in_search(p, idea, facts) -> bool:
    return sees_idea_generally(p, idea, facts)


def sees_attachment(p, att, facts) -> bool:
    return sees_idea_generally(p, facts.ideas[att.idea_id], facts)


def sees_terms(p, terms, facts) -> bool:
    return sees_item(p, facts.items[terms.challenge_id], facts)


def sees_acceptance(p, acc, facts) -> bool:
    return p.is_(acc.user_id)


def sees_note(p, note, facts) -> bool:
    return p.is_(note.author_id)
