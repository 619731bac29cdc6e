"""Who may see questions, answers, comments and asset requests (issue 6, and the models'
docstrings in marketplace/models/engagement.py):

* nothing on an item is seen by someone who may not see the item (items.sees_item);
* site moderators see all of it (deleted and hidden included) on the items they see;
* questions: answered ones are published to everyone who may see the challenge; unanswered
  ones are seen by the asker and the posting organisation's members; hidden ones by the
  asker and the organisation's owners and admins; deleted ones by nobody else;
* answers are never deleted (participants may have relied on them, so deleting the question
  leaves its answer standing); a hidden question hides its answer from all but the asker and
  the organisation's owners and admins; a hidden answer is seen by its author and the
  organisation's owners and admins;
* comments: everyone who may see the failure; hidden ones by their author and the
  organisation's owners and admins; deleted ones by nobody else;
* asset requests: nothing in a request is seen by anyone but the two parties (the person who
  sent it and, when sent on behalf of an organisation, that organisation's owners and
  admins; the owning organisation's owners and admins), and by site moderators only while
  the request has an open report. Item visibility plays no part: a party keeps their request.

Moderators see what they moderate (moderation.case_in_scope) on the first three, in can()
and visible() but not in search. Asset requests state their own, narrower exception
(an open report), which is the one applied.
"""
from __future__ import annotations

from .items import UnknownState, sees_item
from .moderation import case_in_scope

REQUEST_STATUSES = ("pending", "follow-up", "accepted", "declined", "withdrawn")
REQUEST_KINDS = ("interest", "licence", "collaboration")


def sees_question(p, q, facts, search: bool = False) -> bool:
    if not search and case_in_scope(p, "question", q.id, facts):
        return True
    item = facts.items[q.item_id]
    if not sees_item(p, item, facts):
        return False
    if p.staff:
        return True
    if q.deleted_at is not None:
        return False
    asker = p.is_(q.author_id)
    if q.hidden_at is not None:
        return asker or p.admin(item.org_id)
    return q.id in facts.answer_of_question or asker or p.member(item.org_id)


def sees_answer(p, a, facts) -> bool:
    if case_in_scope(p, "answer", a.id, facts):
        return True
    q = facts.questions[a.question_id]
    item = facts.items[q.item_id]
    if not sees_item(p, item, facts):
        return False
    if p.staff:
        return True
    org_admin = p.admin(item.org_id)
    if q.hidden_at is not None and not (p.is_(q.author_id) or org_admin):
        return False
    if a.hidden_at is not None:
        return p.is_(a.author_id) or org_admin
    return True


def sees_comment(p, c, facts, search: bool = False) -> bool:
    if not search and case_in_scope(p, "comment", c.id, facts):
        return True
    item = facts.items[c.item_id]
    if not sees_item(p, item, facts):
        return False
    if p.staff:
        return True
    if c.deleted_at is not None:
        return False
    if c.hidden_at is not None:
        return p.is_(c.author_id) or p.admin(item.org_id)
    return True


def open_report(target_type: str, target_id: int, facts) -> bool:
    return any(r.status == "open" for r in facts.reports.values()
               if r.target_type == target_type and r.target_id == target_id)


def sees_request(p, r, facts) -> bool:
    if r.status not in REQUEST_STATUSES or r.kind not in REQUEST_KINDS:
        raise UnknownState(r.status, r.kind)
    if not p.signed_in:
        return False
    owner_org = facts.items[r.item_id].org_id
    if p.is_(r.author_id) or p.admin(owner_org):
        return True
    if r.requester_org_id is not None and p.admin(r.requester_org_id):
        return True
    return p.staff and open_report("asset_request", r.id, facts)


def sees_asset_terms(p, t, facts) -> bool:
    return sees_item(p, facts.items[t.item_id], facts)
