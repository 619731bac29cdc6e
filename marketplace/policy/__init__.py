"""The rule book: the one place that decides who may see and do what.

One module per feature, one rule object per model (see core.py for the shape):

    items.py        challenges, failures, assets; invited access
    orgs.py         organisations, user profiles, site roles
    invitations.py  invitations, invitation lists, members, shares, list attachments
    ideas.py        ideas, terms, acceptances, attachments, review notes, reviewers
    engagement.py   questions, answers, comments, asset terms and requests
    moderation.py   reporting, moderating, reports, actions, appeals, flags
    places.py       who moderates which place, and the exceptions that follow from it
    judging.py      judging rounds, assignments, conflicts, round scores, panel talk, exports
    search.py       the viewer's search terms (the twin of every rule's doc_principals)
    reach.py        notifications, mails, follows, announcements; the verified address
    api.py          API tokens, organisation integrations, webhooks and their deliveries
    people.py       a person's own data: downloading it, deleting the account
    insights.py     dashboards, the transparency page's small counts, after-action reviews, audit readers
    agreements.py   data-sharing sheets, asset files, agreements and their usage log; phase-out

The faces every surface uses:

* ``can(user, action, obj)``: one object (a site-wide action when obj is None);
* ``visible(user, Model)`` / ``visible_clause(user, Model)``: the same rule as SQL;
* ``principals(user)`` and ``doc_principals(obj)``: the same rule as search terms;
* ``get_visible_or_404(Model, id)`` (``get_visible_org_or_404(slug)``) and ``require(action, obj)``
  for views.

Rules fail closed: an unknown model, action, visibility level, status or mode raises
``PolicyError``. Importing this package declares every rule, so ``can`` answers the same
whether or not an app was created.
"""
from __future__ import annotations

from datetime import datetime

from ..models import Item, utcnow
from . import agreements, api, engagement, ideas, insights, invitations, items, judging, moderation, orgs, people, places, reach  # noqa: F401  (declare the rules)
from .core import (
    ANONYMOUS,
    RULE_BOOK,
    RULES,
    PolicyError,
    Viewer,
    can,
    doc_principals,
    doc_principals_valid_until,
    forget_viewer,
    get_child_or_404,
    get_visible_or_404,
    get_visible_org_or_404,
    require,
    seen_by_exception,
    viewer_email,
    viewer_for,
    visible,
    visible_clause,
)
from .engagement import (
    ask_refusal,
    asset_request_refusal,
    can_view_answer,
    can_view_comment,
    can_view_question,
    discussion_refusal,
    discussion_reply_refusal,
    reply_refusal_given,
    engagement_edit_window,
    engagement_has_open_report,
    engagement_rules,
    is_request_owner_side,
    is_request_sender_side,
    post_delete_refusal,
    post_edit_refusal,
    question_answer_refusal,
    question_cutoff,
    thread_comments_clause,
    thread_questions_clause,
    thread_replies_clause,
)
from .ideas import (
    IDEA_COUNTING_AUTHOR_STATES,
    address_domain_refusal,
    IDEA_REVIEWABLE_STATES,
    IDEA_SHOWN_STATES,
    IDEA_VISIBLE_AUTHOR_STATES,
    brief_under_nda,
    briefs_under_nda,
    challenge_rules,
    counted_ideas,
    current_terms,
    has_accepted_nda,
    idea_author_status,
    idea_is_sealed,
    is_active_reviewer,
    is_idea_author,
    participation_refusal,
    can_decline_reviewer_invitation_with_token,
    is_reviewer_invitee,
    reviewer_appointment,
    sees_invited_coauthor_address,
    team_member_shown,
    viewable_briefs,
)
from .invitations import (
    ListUse,
    active_grants_for_viewer,
    active_list_memberships,
    can_decline_list_invitation_with_token,
    can_decline_with_token,
    is_list_invitee,
    invitation_reveals_item,
    invitation_state,
    is_invitee,
    items_via_grants_clause,
    list_use_reveals_item,
    list_uses_revealing_items,
    items_via_lists_clause,
    usable_lists_clause,
)
from .agreements import (
    access_agreement,
    agreement_state,
    in_force,
    in_force_clause,
    is_owner_side as is_agreement_owner_side,
    is_partner_side as is_agreement_partner_side,
    named_person,
    partner_refusal,
)
from .api import may_give_token_role, organisation_viewer
from .insights import (
    FEWER,
    SMALL_COUNT,
    challenge_has_closed,
    disclosed,
    is_withheld,
    org_governance_clause,
    shown_count,
)
from .items import ITEMS, has_invited_access, in_audience, lapsed_access_item_ids
from .moderation import Placement, appeal_refusal, decision_placement, placement
from .orgs import may_set_member_role
from .people import data_export_shows
from .places import (
    MODERATION_SITE_ONLY_TYPES,
    forget_moderator_scopes,
    is_discussion_locked,
    moderator_scope_org_ids,
)
from .reach import (
    UNVERIFIED_REFUSAL,
    about_ref,
    can_view_about,
    email_verified,
    is_coauthor_invitee,
    mail_subject_visible,
    may_be_told_about_item,
    verification_refusal,
    visible_about,
)
from .search import principals


def item_doc_principals(item: Item, now: datetime | None = None) -> list[str]:
    """Who may find this item in search, as terms; the twin of can(_, "view", item)."""
    return ITEMS.doc_principals(item, now or utcnow())


def item_principals_valid_until(item: Item, now: datetime | None = None) -> datetime | None:
    return ITEMS.valid_until(item, now or utcnow())


def item_doc_principals_many(items_, now: datetime | None = None):
    """item_doc_principals and item_principals_valid_until for many items at once."""
    return ITEMS.principals_many(items_, now)


def idea_doc_principals(idea, now: datetime | None = None) -> list[str]:
    return doc_principals(idea, now)


def question_doc_principals(q) -> list[str]:
    return doc_principals(q)


def comment_doc_principals(c) -> list[str]:
    return doc_principals(c)


__all__ = [
    "access_agreement", "agreement_state", "in_force", "in_force_clause", "is_agreement_owner_side",
    "is_agreement_partner_side", "named_person", "partner_refusal",
    "active_grants_for_viewer", "active_list_memberships", "ANONYMOUS", "appeal_refusal",
    "ask_refusal", "asset_request_refusal", "brief_under_nda", "briefs_under_nda", "viewable_briefs", "can",
    "can_decline_with_token", "can_view_answer",
    "can_view_comment", "can_view_question", "challenge_rules", "comment_doc_principals",
    "counted_ideas", "current_terms", "decision_placement", "discussion_refusal", "discussion_reply_refusal", "reply_refusal_given",
    "doc_principals", "doc_principals_valid_until", "engagement_edit_window",
    "engagement_has_open_report", "engagement_rules", "forget_moderator_scopes", "forget_viewer",
    "get_visible_or_404", "has_accepted_nda", "has_invited_access", "idea_author_status",
    "IDEA_COUNTING_AUTHOR_STATES", "idea_doc_principals", "idea_is_sealed",
    "IDEA_REVIEWABLE_STATES", "IDEA_SHOWN_STATES", "IDEA_VISIBLE_AUTHOR_STATES", "in_audience",
    "invitation_reveals_item", "invitation_state", "is_active_reviewer", "is_discussion_locked", "is_idea_author",
    "is_invitee", "is_request_owner_side", "is_request_sender_side", "item_doc_principals",
    "item_doc_principals_many", "item_principals_valid_until", "ITEMS", "items_via_grants_clause",
    "items_via_lists_clause", "lapsed_access_item_ids", "list_use_reveals_item", "list_uses_revealing_items", "ListUse", "may_set_member_role",
    "may_give_token_role", "MODERATION_SITE_ONLY_TYPES", "moderator_scope_org_ids", "organisation_viewer", "participation_refusal", "placement",
    "Placement", "PolicyError", "post_delete_refusal", "post_edit_refusal", "principals",
    "question_answer_refusal", "question_cutoff", "thread_comments_clause", "thread_questions_clause",
    "thread_replies_clause", "question_doc_principals", "require",
    "reviewer_appointment", "RULE_BOOK", "seen_by_exception", "team_member_shown", "RULES", "usable_lists_clause", "Viewer", "viewer_email",
    "viewer_for", "visible", "visible_clause",
    "UNVERIFIED_REFUSAL", "about_ref", "address_domain_refusal", "can_view_about", "email_verified", "is_coauthor_invitee",
    "mail_subject_visible", "may_be_told_about_item", "verification_refusal", "visible_about",
    "can_decline_list_invitation_with_token", "can_decline_reviewer_invitation_with_token", "is_list_invitee",
    "is_reviewer_invitee", "sees_invited_coauthor_address", "data_export_shows",
]
