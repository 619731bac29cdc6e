"""Cells of the view rules that the oracle matrices did not state, found by `make mutants`.

Each test states, from the rule's prose (module docstrings of marketplace/policy/), what a
viewer may see in a case no matrix held, and names the surviving mutants it kills. They run
against real SQLite through the public faces (``policy.can``, ``policy.visible``,
``policy.idea_doc_principals``, ``policy.counted_ideas``) and, where a rule's documented
``clause(v, now)`` takes a time that no face passes on, through the rule object itself.

Equivalent mutants (behaviour cannot differ), name -> reason:

* ``core.xǁRuleǁclause__mutmut_1``: only the text of the PolicyError raised for a model
  without a visibility rule changes; the error is still raised.
* ``items.xǁItemRuleǁdoc_principals__mutmut_30``: only the text of the PolicyError for an
  unknown visibility (unreachable: check_known raised first).
* ``invitations.xǁInvitationRuleǁclause__mutmut_8``: ``viewer_email(v) or ""`` vs ``or
  "XXXX"``: the fallback is used only when a signed-in viewer's user row is gone, and no
  invitation is addressed to either string (addresses are validated e-mails).
* ``invitations.xǁInvitationListRuleǁcheck__mutmut_11``: ``select(None).where(ListShare...)``
  renders ``SELECT NULL FROM list_shares WHERE ...``: a row comes back exactly when a share
  exists, so ``.first() is not None`` is the same.
* ``ideas.x_reviewer_active_clause__mutmut_5``, ``ideas.xǁReviewPanelǁclause__mutmut_6``,
  ``engagement.x__post_clause__mutmut_10``, ``engagement.xǁQuestionRuleǁclause__mutmut_4``,
  ``engagement.xǁAnswerRuleǁclause__mutmut_6``: ``... if ids else false()`` made
  ``... if ids or True``: with no ids the expression is ``IN ()`` over an empty list (or an
  empty sub-select), which SQLAlchemy renders as always false, the same as ``false()``.
* ``ideas.xǁIdeaRuleǁclause__mutmut_4``: ``author = None`` for an anonymous viewer renders
  ``NULL OR seen``; as a WHERE condition NULL and false both drop the row, and no caller
  negates the clause.
* ``ideas.xǁIdeaRuleǁclause__mutmut_32``: drops ``confidentiality == 'sealed'`` from the
  "revealed" branch; the only other known confidentiality is "open", already true in the
  first branch, and unknown ones are excluded by ``confidentiality IN (known)``.
* ``ideas.xǁIdeaRuleǁclause__mutmut_33``: drops ``reveal_at IS NOT NULL``; with a NULL
  reveal date ``reveal_at <= now`` is NULL, which drops the row like false (never negated).
* ``ideas.x_counted_ideas__mutmut_13``: ``join(IdeaAuthor)`` without its ON clause infers
  the same join from the only foreign key between the tables (idea_authors.idea_id).
* ``places.xǁSeenInCasesǁgrants__mutmut_1``: ``or`` made ``and`` in the first guard; an
  unauthenticated viewer is refused by moderates_place for every case row anyway, and a row
  without an id matches no case (``target_id IS NULL``; the column is NOT NULL).
* ``engagement.x_can_view_answer__mutmut_6``: ``_item_ok(v, item, None)`` recomputes
  ``can_view_item`` instead of using the value passed in; the one caller (threads) passes
  exactly ``ITEMS.check(v, item)``, so only the cost differs.
* ``engagement.x_can_view_comment__mutmut_5``: the same change in the comment rule, for the
  same reason (threads pass the failure's own ``ITEMS.check`` answer).
* ``judging.xǁJudgingRoundRuleǁclause__mutmut_2``, ``_11`` and ``_13``: ``now = None``, or
  ``item_visibility_clause(v, None)`` / ``(v, )``: the item clause reads a missing time as
  "now" (``now = now or utcnow()``), which is what was passed.
* ``ideas.xǁReviewerInvitationRuleǁclause__mutmut_6`` and
  ``invitations.xǁListInvitationRuleǁclause__mutmut_6``: ``or ""`` vs ``or "XXXX"``, as for
  ``InvitationRuleǁclause__mutmut_8`` above.
* ``engagement.x__post_principals__mutmut_10``: ``ITEMS.doc_principals(item, None)`` on a
  draft item: the draft branch answers ``orgadmin:<org>`` before the time is read.
* ``agreements.xǁAssetFileRuleǁclause__mutmut_27``, ``_29``, ``_31`` and ``_33``: a
  ``join()`` without its ON clause infers the same join from the only foreign key between
  the tables (data_agreements.sheet_id, agreement_people.agreement_id).
* ``engagement.x__post_clause__mutmut_33``: drops ``hidden_at IS NOT NULL`` from the "hidden,
  but theirs or they administer it" branch; a visible post of the viewer's own, or on an
  item of an organisation they administer (so are a member of: ``shown``), is already
  listed by the first branch.
* ``engagement.x_can_view_question__mutmut_5``: as ``x_can_view_answer__mutmut_6``.
* ``ideas.xǁIdeaRuleǁclause__mutmut_46``: drops the inner known-confidentiality filter of
  ``seen``; the outer one (killed by the unknown-row test) already leaves such rows out.
* ``api.xǁApiTokenRuleǁclause__mutmut_11`` and ``api.xǁWebhookRuleǁclause__mutmut_4``:
  ``... if admin_orgs or True``: an ``IN ()`` over no organisations, always false, as above.
* ``ideas.xǁIdeaRuleǁvalid_until__mutmut_7``: ``reveal_at >= now`` for ``> now``: at the
  instant of the reveal date the idea is no longer sealed (``idea_is_sealed``), so no date.
* ``items.xǁItemRuleǁvalid_until__mutmut_8``: drops ``expires_at IS NOT NULL`` inside
  ``min(expires_at)``; SQL's ``min`` skips NULLs.
* ``reach.xǁ_UsersOwnListedRuleǁclause__mutmut_3`` and ``_5``: for an anonymous viewer
  ``user_id == NULL`` (renders ``IS NULL``) or ``== -2``; notifications and follows have a
  NOT NULL user_id and ids start at 1, so no row matches either way.
* ``core.xǁRuleǁcheck__mutmut_1``: only the text of the PolicyError raised for a model
  without a view rule changes.
* ``core.xǁRuleǁvisible_clause__mutmut_9``, ``invitations.xǁInvitationListRuleǁclause__mutmut_8``
  and ``items.xǁItemRuleǁclause__mutmut_11``: ``... if xs or True``: ``or_(own)`` with no
  exception is ``own``; ``IN ()`` over no organisations is always false.
* ``invitations.xǁItemListRuleǁclause__mutmut_3``: ``or`` made ``and`` in the guard; a
  signed-in viewer without admin organisations then reaches ``IN (select ... org_id IN ())``
  and ``_curated_list_ids`` (lists of organisations they administer): both empty.
* ``items.xǁItemRuleǁclause__mutmut_40``: drops ``visibility == 'organisation'`` from the
  members' branch; a member sees every published item of their organisation at every known
  level anyway (public, registered, invited via ``is_member``), and unknown levels are cut by
  the outer ``visibility IN (known)``.
* ``items.xǁItemRuleǁclause__mutmut_55`` and ``_57``: moderators' ``or_(seen, published)``
  made ``or_(published)``: ``seen`` is itself ``and_(published, ...)``.
* ``places.xǁScopedModeratorsSeeCaseContextǁgrants__mutmut_9``, ``_11`` and ``_13``:
  ``limit(None)``, ``select(None)``, ``limit(2)`` in an existence test read by ``.first()``:
  a row comes back exactly when one exists.
* ``items.xǁItemRuleǁcheck__mutmut_22``: only the text of the PolicyError for an unknown
  visibility, unreachable after ``check_known``.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select

from marketplace import policy
from marketplace.extensions import db
from marketplace.models import (
    Answer,
    AssetRequest,
    Idea,
    IdeaAuthor,
    Invitation,
    Question,
    ReviewerAppointment,
    utcnow,
)
from marketplace.models.moderation import Report
from marketplace.policy.ideas import IDEAS

from .factories_ideas import IdeaFactories
from .factories_invitations import make_invitation

_seq = iter(range(1, 10_000))


def _idea(s, lead, *, status="submitted", conf="sealed", reveal_at=None, others=()) -> Idea:
    """An idea row as the ideas service leaves it; ``others`` are (user, author status)."""
    i = Idea(challenge_id=s.challenge.id, author_id=lead.id, title=f"Idea {next(_seq)}", status=status,
             terms_id=s.terms.id, content_hash="0" * 64, confidentiality=conf, reveal_at=reveal_at,
             submission_key=f"k{next(_seq)}")
    i.authors.append(IdeaAuthor(user_id=lead.id, status="lead"))
    for user, st in others:
        i.authors.append(IdeaAuthor(user_id=user.id, status=st))
    db.session.add(i)
    db.session.commit()
    return i


def _visible_ids(user, model) -> set[int]:
    return set(db.session.execute(select(model.id).where(policy.visible_clause(user, model))).scalars())


def _appoint(s, user, kind, nda_accepted_at=None) -> ReviewerAppointment:
    a = ReviewerAppointment(challenge_id=s.challenge.id, user_id=user.id, kind=kind, appointed_by_id=s.owner.id,
                            nda_text="Keep it secret." if kind == "judge" else "",
                            nda_digest="0" * 64 if kind == "judge" else "", nda_accepted_at=nda_accepted_at)
    db.session.add(a)
    db.session.commit()
    return a


def _ban(user) -> None:
    user.banned = True
    db.session.commit()


# --------------------------------------------------------------------------- ideas


def test_search_terms_of_a_sealed_idea_follow_the_time_asked_about(f):
    """Kills x_idea_doc_principals__mutmut_2 and _4 (``now`` not passed on).
    Rule: a sealed idea is for its authors, staff and the review panel until its reveal
    date, then for everyone who may see the challenge."""
    fi = IdeaFactories(f)
    s = fi.challenge(visibility="public")
    lead = f.make_user()
    now = utcnow()
    idea = _idea(s, lead, reveal_at=now - timedelta(hours=1))
    before = now - timedelta(hours=2)
    assert policy.idea_doc_principals(idea, before) == sorted(
        {f"user:{lead.id}", "staff", f"orgadmin:{s.org.id}", f"reviewers:{s.challenge.id}"})
    assert "public" in policy.idea_doc_principals(idea, now)


def test_idea_clause_at_a_given_time_asks_about_the_challenge_at_that_time(f):
    """Kills xǁIdeaRuleǁclause__mutmut_20 and _22 (the challenge's visibility evaluated now,
    not at the time asked about). Rule: others see an open idea if they may see the challenge;
    an invited challenge is seen while the viewer's grant is active."""
    fi = IdeaFactories(f)
    s = fi.challenge(visibility="invited", confidentiality="open")
    guest, lead = f.make_user(), f.make_user()
    now = utcnow()
    f.grant(s.challenge, user=guest, expires_at=now - timedelta(hours=1))
    idea = _idea(s, lead, conf="open")
    v = policy.viewer_for(guest)

    def seen_at(t):
        return idea.id in set(db.session.execute(select(Idea.id).where(IDEAS.clause(v, t))).scalars())

    assert seen_at(now - timedelta(hours=2))
    assert not seen_at(now)
    assert not policy.can(guest, "view", idea)  # today the grant has lapsed


def test_a_sealed_idea_opens_at_the_instant_of_its_reveal_date(f):
    """Kills xǁIdeaRuleǁclause__mutmut_36 (``<`` for ``<=``). Rule (idea_is_sealed): sealed
    while the reveal date is later than now; so at the reveal instant it is open."""
    fi = IdeaFactories(f)
    s = fi.challenge(visibility="public")
    lead, outsider = f.make_user(), f.make_user()
    reveal = (utcnow() - timedelta(hours=1)).replace(microsecond=123456)
    idea = _idea(s, lead, reveal_at=reveal)
    v = policy.viewer_for(outsider)

    def seen_at(t):
        return idea.id in set(db.session.execute(select(Idea.id).where(IDEAS.clause(v, t))).scalars())

    assert not policy.idea_is_sealed(idea, reveal)
    assert seen_at(reveal)
    assert not seen_at(reveal - timedelta(microseconds=1))


def test_an_idea_with_an_unknown_confidentiality_is_not_shown_to_the_panel(f):
    """Kills xǁIdeaRuleǁclause__mutmut_46. Rule: rules fail closed on an unknown mode; the
    per-object check refuses such a row with PolicyError, so no list may show it to anyone
    but its authors (and site moderators, who see every idea)."""
    fi = IdeaFactories(f)
    s = fi.challenge(visibility="public")
    lead, outsider = f.make_user(), f.make_user()
    judge = f.make_user()
    _appoint(s, judge, "judge", nda_accepted_at=utcnow())
    odd = _idea(s, lead, conf="top-secret", reveal_at=utcnow() - timedelta(days=1))
    fine = _idea(s, lead, conf="sealed")
    for viewer in (s.owner, judge):  # org owner and an active reviewer: the review panel
        assert fine.id in _visible_ids(viewer, Idea)
        assert odd.id not in _visible_ids(viewer, Idea)
    assert odd.id not in _visible_ids(outsider, Idea)


def test_a_member_appointed_as_judge_needs_the_nda_like_any_judge(f):
    """Kills x_reviewer_active_clause__mutmut_8. Rule (appointment_is_active): a judge is
    active once they accepted the NDA; only *member* reviewers are active by membership."""
    fi = IdeaFactories(f)
    s = fi.challenge(visibility="public")
    staff = f.make_user()
    f.add_member(s.org, staff)
    _appoint(s, staff, "judge")
    lead = f.make_user()
    idea = _idea(s, lead)
    assert not policy.can(staff, "view", idea)
    assert idea.id not in _visible_ids(staff, Idea)


def test_a_member_reviewer_who_left_the_organisation_is_not_active_elsewhere(f):
    """Kills x_reviewer_active_clause__mutmut_9, _13, _14 and _15. Rule: a member reviewer
    without the NDA is active only while a member of the challenge's organisation; being a
    member of another organisation (with items of its own) does not count."""
    fi = IdeaFactories(f)
    s = fi.challenge(visibility="public")
    reviewer, lead = f.make_user(), f.make_user()
    other = f.make_org(owner=f.make_user(), members=(reviewer,))
    f.make_item(other, kind="challenge", visibility="public")
    _appoint(s, reviewer, "member")
    idea = _idea(s, lead)
    assert not policy.can(reviewer, "view", idea)
    assert idea.id not in _visible_ids(reviewer, Idea)
    # The same appointment is active once they are a member of the challenge's organisation.
    f.add_member(s.org, reviewer)
    assert policy.can(reviewer, "view", idea)
    assert idea.id in _visible_ids(reviewer, Idea)


def test_reviewer_appointments_are_their_holders_and_the_challenge_admins(f):
    """Kills xǁReviewerAppointmentRuleǁcheck__mutmut_1 (a blocked holder still sees it) and _4
    (the challenge organisation's admins lose it). Rule: an appointment is its holder's and
    the challenge organisation's owners'/admins'; blocked accounts see nothing."""
    fi = IdeaFactories(f)
    s = fi.challenge(visibility="public")
    holder, outsider, admin = f.make_user(), f.make_user(), f.make_user()
    f.add_member(s.org, admin, role="admin")
    appt = _appoint(s, holder, "judge")
    assert policy.can(holder, "view", appt)
    assert policy.can(admin, "view", appt) and policy.can(s.owner, "view", appt)
    assert not policy.can(outsider, "view", appt)
    assert not policy.can(None, "view", appt)
    _ban(holder)
    assert not policy.can(holder, "view", appt)


def test_counted_ideas_are_own_lead_or_accepted_not_withdrawn_on_this_challenge(f):
    """Kills x_counted_ideas__mutmut_2 to _9, _16 and _20. Rule: the ideas that count against
    a contributor's limit on a challenge are theirs as lead or accepted co-author, not
    withdrawn."""
    fi = IdeaFactories(f)
    x = fi.challenge(visibility="public")
    y = fi.challenge(visibility="public", owner=x.owner, org=x.org)
    me, other = f.make_user(), f.make_user()
    _idea(x, me)                                          # counts
    _idea(x, me, status="withdrawn")                      # withdrawn
    _idea(x, other, others=[(me, "accepted")])            # counts
    _idea(x, other, others=[(me, "pending")])             # not answered yet
    _idea(x, other, others=[(me, "declined")])            # declined
    _idea(x, other)                                       # not mine
    _idea(y, me)                                          # another challenge
    assert policy.counted_ideas(me.id, x.challenge.id) == 2
    assert policy.counted_ideas(me.id, y.challenge.id) == 1
    assert policy.counted_ideas(other.id, x.challenge.id) == 4


# --------------------------------------------------------------------------- questions and answers


def _question(ch, author, *, hidden=False, answered_by=None, answer_hidden=False, answer_author_gone=False):
    now = utcnow()
    q = Question(item_id=ch.id, author_id=author.id if author else None, body="Why?", body_html="<p>Why?</p>",
                 hidden_at=now if hidden else None)
    db.session.add(q)
    db.session.flush()
    a = None
    if answered_by is not None:
        a = Answer(question_id=q.id, item_id=ch.id, author_id=None if answer_author_gone else answered_by.id,
                   body="Because.", body_html="<p>Because.</p>", hidden_at=now if answer_hidden else None)
        db.session.add(a)
    db.session.commit()
    return q, a


def test_posts_whose_author_was_deleted_are_nobodys_own(f):
    """Kills x__post_clause__mutmut_6, xǁAnswerRuleǁclause__mutmut_21 and _29 (an anonymous
    viewer's "own" posts became those with no author). Rule: a hidden post is seen by its
    author and the organisation's admins, an unanswered question by its asker and the
    organisation; a post whose author account was deleted has no author, so anonymous
    visitors see none of these."""
    org_admin, asker = f.make_user(), f.make_user()
    org = f.make_org(owner=org_admin)
    ch = f.make_item(org, kind="challenge", visibility="public")
    hidden_q, _ = _question(ch, None, hidden=True)
    waiting_q, _ = _question(ch, None)
    q_of_hidden, a_under_hidden_q = _question(ch, None, hidden=True, answered_by=org_admin)
    _q, hidden_a = _question(ch, asker, answered_by=org_admin, answer_hidden=True, answer_author_gone=True)
    shown_q, shown_a = _question(ch, asker, answered_by=org_admin)
    for who in (None, f.make_user()):
        qs, ans = _visible_ids(who, Question), _visible_ids(who, Answer)
        assert shown_q.id in qs and shown_a.id in ans
        assert not {hidden_q.id, waiting_q.id, q_of_hidden.id} & qs
        assert not {a_under_hidden_q.id, hidden_a.id} & ans
        for row in (hidden_q, waiting_q, a_under_hidden_q, hidden_a):
            assert not policy.can(who, "view", row)
    # The organisation's admins see them all.
    assert {hidden_q.id, waiting_q.id, q_of_hidden.id} <= _visible_ids(org_admin, Question)
    assert {a_under_hidden_q.id, hidden_a.id} <= _visible_ids(org_admin, Answer)


def test_a_blocked_author_no_longer_sees_their_hidden_posts(f):
    """Kills xǁAnswerRuleǁclause__mutmut_11 (a blocked viewer's own hidden answer; the
    blocked asker also catches x__post_clause__mutmut_6). Rule:
    blocked accounts are treated as signed out. A banned User already maps to the anonymous
    viewer; a Viewer that carries ``blocked`` (the policy's own type, accepted by every face)
    must be refused the same way."""
    org_admin, staff, asker = f.make_user(), f.make_user(), f.make_user()
    org = f.make_org(owner=org_admin, members=(staff,))
    ch = f.make_item(org, kind="challenge", visibility="public")
    q, a = _question(ch, asker, hidden=False, answered_by=staff, answer_hidden=True)
    hidden_q, _ = _question(ch, asker, hidden=True)
    assert a.id in _visible_ids(staff, Answer) and policy.can(staff, "view", a)
    assert hidden_q.id in _visible_ids(asker, Question) and policy.can(asker, "view", hidden_q)
    blocked_staff = replace(policy.viewer_for(staff), blocked=True)
    blocked_asker = replace(policy.viewer_for(asker), blocked=True)
    _ban(staff)
    _ban(asker)
    for staff_v, asker_v in ((staff, asker), (blocked_staff, blocked_asker)):
        assert a.id not in _visible_ids(staff_v, Answer) and not policy.can(staff_v, "view", a)
        assert q.id in _visible_ids(asker_v, Question)  # answered and shown: everyone's
        assert hidden_q.id not in _visible_ids(asker_v, Question) and not policy.can(asker_v, "view", hidden_q)


# --------------------------------------------------------------------------- asset requests


def _request(asset, author, requester_org=None) -> AssetRequest:
    r = AssetRequest(item_id=asset.id, author_id=author.id,
                     requester_org_id=requester_org.id if requester_org else None,
                     kind="interest", message="We would like to talk.", message_html="", status="pending")
    db.session.add(r)
    db.session.commit()
    return r


def test_an_asset_request_is_seen_by_the_admins_of_the_organisation_it_was_sent_for(f):
    """Kills xǁAssetRequestRuleǁclause__mutmut_5. Rule: private to its two parties, the
    sender side being the person who sent it and the owners/admins of the organisation it
    was sent for; plain members of that organisation do not see it."""
    owner = f.make_user()
    asset = f.make_item(f.make_org(owner=owner), kind="asset", visibility="public")
    sender, co_admin, plain = f.make_user(), f.make_user(), f.make_user()
    requester = f.make_org(owner=f.make_user(), admins=(sender, co_admin), members=(plain,))
    r = _request(asset, sender, requester)
    assert policy.can(co_admin, "view", r) and r.id in _visible_ids(co_admin, AssetRequest)
    assert not policy.can(plain, "view", r) and r.id not in _visible_ids(plain, AssetRequest)


def test_moderators_see_an_asset_request_only_while_a_report_on_it_is_open(f):
    """Kills x_engagement_open_report_clause__mutmut_6. Rule: site moderators see a request
    only while a report on it is open; a dismissed or actioned report shows nothing."""
    owner, mod = f.make_user(), f.make_user(site_role="moderator")
    asset = f.make_item(f.make_org(owner=owner), kind="asset", visibility="public")
    reported, closed = _request(asset, f.make_user()), _request(asset, f.make_user())
    for r, status in ((reported, "open"), (closed, "dismissed"), (closed, "actioned")):
        db.session.add(Report(target_type="asset_request", target_id=r.id, reporter_id=owner.id,
                              category="other", note="Abusive request", status=status, org_id=asset.org_id))
    db.session.commit()
    assert policy.can(mod, "view", reported) and reported.id in _visible_ids(mod, AssetRequest)
    assert not policy.can(mod, "view", closed) and closed.id not in _visible_ids(mod, AssetRequest)
    assert not policy.engagement_has_open_report("asset_request", closed.id)


# --------------------------------------------------------------------------- invitations


def test_an_org_admin_still_sees_invitations_addressed_to_them(f):
    """Kills xǁInvitationRuleǁclause__mutmut_10 and _12. Rule: an invitation is seen by the
    admins of the item's organisation and by its invitee; being an admin of some other
    organisation takes nothing away."""
    host_admin, guest = f.make_user(), f.make_user()
    host = f.make_org(owner=host_admin)
    f.make_org(owner=guest)  # the guest administers an organisation of their own
    item = f.make_item(host, kind="challenge", visibility="invited")
    inv, _token = make_invitation(item, guest.email, invited_by=host_admin)
    other, _ = make_invitation(item, "someone.else@example.test", invited_by=host_admin)
    assert policy.can(guest, "view", inv) and not policy.can(guest, "view", other)
    assert _visible_ids(guest, Invitation) == {inv.id}
    assert {inv.id, other.id} <= _visible_ids(host_admin, Invitation)


# --------------------------------------------------------------------------- judging, reviews, agreements


def test_judging_rounds_of_a_challenge_the_judge_may_no_longer_see_are_not_theirs(f):
    """Kills judging.xǁJudgingRoundRuleǁclause__mutmut_5 (the challenge-visibility half
    dropped). Rule: a round is seen by the challenge's review panel *for a challenge they may
    see*; an outside judge loses the rounds when a moderator hides the challenge."""
    from marketplace.models import JudgingRound

    fi = IdeaFactories(f)
    s = fi.challenge(visibility="public")
    judge = f.make_user()
    _appoint(s, judge, "judge", nda_accepted_at=utcnow())
    now = utcnow()
    rnd = JudgingRound(challenge_id=s.challenge.id, position=1, name="One", starts_at=now - timedelta(days=1),
                       ends_at=now + timedelta(days=1), advance_count=1)
    db.session.add(rnd)
    db.session.commit()
    assert policy.can(judge, "view", rnd) and _visible_ids(judge, JudgingRound) == {rnd.id}
    s.challenge.hidden_at = now
    db.session.commit()
    assert not policy.can(judge, "view", rnd)
    assert _visible_ids(judge, JudgingRound) == set()
    assert _visible_ids(s.owner, JudgingRound) == {rnd.id}  # the organisation still sees its own


def test_a_challenge_review_follows_its_challenge_even_for_the_admins(f):
    """Kills insights.xǁChallengeReviewRuleǁclause__mutmut_7 (the parent clause dropped).
    Rule: a review is seen by the admins of its challenge's organisation *for a challenge
    they may see*; a challenge whose status the policy does not know fails closed (the
    per-object check raises, the clause leaves the row out)."""
    from marketplace.models import ChallengeReview, Item

    owner = f.make_user()
    org = f.make_org(owner=owner)
    known = f.make_item(org, kind="challenge", visibility="public", status="closed")
    odd = f.make_item(org, kind="challenge", visibility="public", status="closed")
    db.session.add_all([ChallengeReview(challenge_id=known.id), ChallengeReview(challenge_id=odd.id)])
    db.session.commit()
    db.session.execute(Item.__table__.update().where(Item.id == odd.id).values(status="limbo"))
    db.session.commit()
    seen = set(db.session.execute(select(ChallengeReview.challenge_id).where(
        policy.visible_clause(owner, ChallengeReview))).scalars())
    assert seen == {known.id}


def test_an_admin_elsewhere_named_in_an_agreement_still_sees_it(f):
    """Kills agreements.xǁDataAgreementRuleǁclause__mutmut_10 (``conds +=`` made ``conds =``
    for admins). Rule: an agreement is seen by the owners and admins of both organisations
    *and* by the people named in it; administering an unrelated organisation takes nothing
    away."""
    from marketplace.models.agreements import AgreementPerson, DataAgreement, DataSharingSheet

    owner, partner_owner, named = f.make_user(), f.make_user(), f.make_user()
    org, partner = f.make_org(owner=owner), f.make_org(owner=partner_owner, members=(named,))
    f.make_org(owner=named)  # the named person administers an organisation of their own
    asset = f.make_item(org, kind="asset", visibility="public")
    sheet = DataSharingSheet(item_id=asset.id, version=1, purpose="p", allowed_uses="u", access_roles="analyst",
                             duration_days=30, end_of_term="delete", publication_rules="r", governing_law="l",
                             canonical="{}", digest="0" * 64)
    db.session.add(sheet)
    db.session.flush()
    now = utcnow()
    a = DataAgreement(item_id=asset.id, owner_org_id=org.id, partner_org_id=partner.id, sheet_id=sheet.id,
                      sheet_version=1, sheet_digest="0" * 64, status="active", starts_at=now - timedelta(days=1),
                      ends_at=now + timedelta(days=9), accepted_at=now - timedelta(days=1))
    db.session.add(a)
    db.session.flush()
    db.session.add(AgreementPerson(agreement_id=a.id, user_id=named.id, role="analyst"))
    db.session.commit()
    assert policy.can(named, "view", a)
    assert _visible_ids(named, DataAgreement) == {a.id}


def test_reviewer_invitations_are_their_invitees_and_the_managing_admins(f):
    """Kills ideas.xǁReviewerInvitationRuleǁclause__mutmut_10, _12 (an admin's own
    invitation dropped), _18 (every organisation's challenges), _19 (items that are not
    challenges) and _20 (archived challenges). Rule: a reviewer invitation is seen by the
    invited address and by those who manage the challenge's reviewers: the owners and admins
    of its organisation, for a challenge that is not archived."""
    from marketplace.models import ReviewerInvitation

    host_admin, guest, rival_admin = f.make_user(), f.make_user(), f.make_user()
    host = f.make_org(owner=host_admin)
    f.make_org(owner=guest)  # the invited judge administers an organisation of their own
    rival = f.make_org(owner=rival_admin)
    now = utcnow()

    def invite(item, email):
        inv = ReviewerInvitation(challenge_id=item.id, email=email, token_hash=f"{next(_seq):064d}",
                                 invited_by_id=host_admin.id, created_at=now, expires_at=now + timedelta(days=7),
                                 nda_text="")
        db.session.add(inv)
        db.session.commit()
        return inv

    live = f.make_item(host, kind="challenge", visibility="public")
    archived = f.make_item(host, kind="challenge", visibility="public", status="archived")
    not_a_challenge = f.make_item(host, kind="failure", visibility="public")
    rivals = f.make_item(rival, kind="challenge", visibility="public")
    to_guest = invite(live, guest.email)
    to_other = invite(live, "someone@example.test")
    on_archived = invite(archived, "later@example.test")
    on_failure = invite(not_a_challenge, "odd@example.test")
    on_rival = invite(rivals, "rival.judge@example.test")
    assert _visible_ids(guest, ReviewerInvitation) == {to_guest.id}
    assert _visible_ids(host_admin, ReviewerInvitation) == {to_guest.id, to_other.id}
    assert _visible_ids(rival_admin, ReviewerInvitation) == {on_rival.id}
    for inv in (to_guest, to_other, on_archived, on_failure):
        assert policy.can(host_admin, "view", inv) is (inv in (to_guest, to_other))


def test_an_org_admin_still_sees_list_invitations_addressed_to_them(f):
    """Kills invitations.xǁListInvitationRuleǁclause__mutmut_10 and _8 (an admin's own
    invitation dropped). Rule: a list invitation is seen by the list's curators and by the invited
    address; administering some other organisation takes nothing away."""
    from marketplace.models import ListInvitation

    curator, guest = f.make_user(), f.make_user()
    lst = f.make_list(f.make_org(owner=curator, kind="cluster"))
    f.make_org(owner=guest)
    now = utcnow()
    invs = []
    for email in (guest.email, "someone@example.test"):
        inv = ListInvitation(list_id=lst.id, email=email, token_hash=f"{next(_seq):064d}", invited_by_id=curator.id,
                             created_at=now, expires_at=now + timedelta(days=7))
        db.session.add(inv)
        invs.append(inv)
    db.session.commit()
    assert policy.can(guest, "view", invs[0]) and not policy.can(guest, "view", invs[1])
    assert _visible_ids(guest, ListInvitation) == {invs[0].id}
    assert _visible_ids(curator, ListInvitation) == {i.id for i in invs}


def test_a_named_persons_role_is_read_from_their_own_agreements_sheet(f):
    """Kills agreements.xǁAssetFileRuleǁclause__mutmut_36 (the sheet joined on ``!=``).
    Rule: a person named in an agreement in force gets the asset's files only if their role
    is one of the roles *that agreement's* sheet lists; another sheet listing the role (for
    another asset) gives nothing."""
    from marketplace.models.agreements import AgreementPerson, AssetFile, DataAgreement, DataSharingSheet

    owner, partner_owner, named = f.make_user(), f.make_user(), f.make_user()
    org, partner = f.make_org(owner=owner), f.make_org(owner=partner_owner, members=(named,))
    now = utcnow()

    def shared(roles):
        asset = f.make_item(org, kind="asset", visibility="public")
        sheet = DataSharingSheet(item_id=asset.id, version=1, purpose="p", allowed_uses="u", access_roles=roles,
                                 duration_days=30, end_of_term="delete", publication_rules="r", governing_law="l",
                                 canonical="{}", digest="0" * 64)
        db.session.add(sheet)
        db.session.flush()
        a = DataAgreement(item_id=asset.id, owner_org_id=org.id, partner_org_id=partner.id, sheet_id=sheet.id,
                          sheet_version=1, sheet_digest="0" * 64, status="active",
                          starts_at=now - timedelta(days=1), ends_at=now + timedelta(days=9),
                          accepted_at=now - timedelta(days=1))
        db.session.add(a)
        db.session.flush()
        file = AssetFile(item_id=asset.id, filename="data.csv", stored_name=f"s{next(_seq)}",
                         content_type="text/csv", size=3, sha256="0" * 64)
        db.session.add(file)
        return a, file

    mine, my_file = shared("analyst")
    _other, other_file = shared("janitor")  # a sheet that lists the role, for someone else's agreement
    db.session.add(AgreementPerson(agreement_id=mine.id, user_id=named.id, role="janitor"))
    db.session.commit()
    assert not policy.can(named, "view", my_file) and not policy.can(named, "view", other_file)
    assert _visible_ids(named, AssetFile) == set()


def test_an_idea_row_the_policy_does_not_know_is_listed_for_nobody(f):
    """Kills ideas.xǁIdeaRuleǁclause__mutmut_64 and _65 (the outer known-status and
    known-confidentiality filters dropped). Rule: a row with an unknown status or
    confidentiality fails closed for everybody, its own author and moderators included (the
    per-object check refuses it, the clause leaves it out)."""
    from marketplace.policy import PolicyError

    fi = IdeaFactories(f)
    s = fi.challenge(visibility="public")
    lead, mod = f.make_user(), f.make_user(site_role="moderator")
    known = _idea(s, lead, conf="open")
    odd_status = _idea(s, lead, conf="open")
    odd_conf = _idea(s, lead, conf="open")
    db.session.execute(Idea.__table__.update().where(Idea.id == odd_status.id).values(status="limbo"))
    db.session.execute(Idea.__table__.update().where(Idea.id == odd_conf.id).values(confidentiality="whispered"))
    db.session.commit()
    db.session.expire_all()
    for viewer in (lead, mod, s.owner):
        assert _visible_ids(viewer, Idea) == {known.id}
        for odd in (odd_status, odd_conf):
            try:
                shown = policy.can(viewer, "view", db.session.get(Idea, odd.id))
            except PolicyError:
                shown = False
            assert not shown
