"""The smaller view rules against oracles written from their prose, not from the policy code:
API tokens, webhooks and their deliveries (marketplace/policy/api.py), a user's own rows,
the mail log, co-author invitations and "what a message names" (policy/reach.py), scores on
one's own idea (policy/judging.py), and how long a search document's principals hold
(``valid_until`` of items, ideas, questions and comments).

Each test builds a small world, states who may see what in a table (the oracle), and checks
both forms of the rule against it: the per-object check (``policy.can``) and the SQL clause
(``policy.visible_clause``).
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from marketplace import policy
from marketplace.extensions import db
from marketplace.models import (
    ApiToken,
    Comment,
    Idea,
    IdeaAuthor,
    Notification,
    Question,
    RoundScore,
    Webhook,
    WebhookDelivery,
    utcnow,
)
from marketplace.models.ideas import CoauthorInvitation
from marketplace.models.notify import OutgoingMail
from marketplace.policy import PolicyError

from .factories_ideas import IdeaFactories

_seq = iter(range(1, 100_000))


class Anonymous:
    is_authenticated = False
    is_anonymous = True
    id = None


def _both(viewer, obj) -> tuple[bool, bool]:
    """(per-object check, SQL clause) for one row."""
    model = type(obj)
    in_sql = obj.id in set(db.session.execute(
        select(model.id).where(policy.visible_clause(viewer, model))).scalars())
    return policy.can(viewer, "view", obj), in_sql


def _token(owner, org=None, acting=None) -> ApiToken:
    n = next(_seq)
    t = ApiToken(name=f"t{n}", token_hash=f"{n:064d}", prefix=f"p{n}", scopes="read", owner_id=owner.id,
                 org_id=org.id if org else None, acting_user_id=(acting or owner).id)
    db.session.add(t)
    db.session.commit()
    return t


@pytest.fixture
def people(f):
    P = {n: f.make_user(name=n) for n in ("holder", "org_owner", "org_admin", "org_member", "stranger",
                                          "admin_elsewhere")}
    P["site_admin"] = f.make_user(name="site_admin", site_role="admin")
    P["site_mod"] = f.make_user(name="site_mod", site_role="moderator")
    org = f.make_org(name="Integrations", owner=P["org_owner"], admins=(P["org_admin"],),
                     members=(P["org_member"], P["holder"]))
    f.make_org(name="Elsewhere", owner=P["admin_elsewhere"])
    P["anonymous"] = Anonymous()
    return P, org


def test_api_tokens_personal_ones_are_their_owners_org_ones_the_org_admins(people):
    """Oracle: a personal token is seen by its owner only (not by admins of the holder's
    organisation, not by site staff); an organisation token by that organisation's owners
    and admins only (not its plain members, not the person who created it unless they are
    still an admin)."""
    P, org = people
    personal = _token(P["holder"])
    org_token = _token(P["org_admin"], org=org, acting=P["org_member"])
    other_personal = _token(P["admin_elsewhere"])
    # Made by someone who was an admin then and is a plain member now: no longer theirs.
    by_demoted = _token(P["org_member"], org=org)
    expected = {
        personal: {"holder"},
        org_token: {"org_owner", "org_admin"},
        other_personal: {"admin_elsewhere"},
        by_demoted: {"org_owner", "org_admin"},
    }
    for t, who in expected.items():
        for name, viewer in P.items():
            assert _both(viewer, t) == (name in who,) * 2, (name, t.name)


def test_webhooks_and_deliveries_are_the_organisations_admins(people):
    """Oracle: a webhook and each of its deliveries are seen by the owners and admins of the
    webhook's organisation, and by nobody else (members, site staff, admins elsewhere)."""
    P, org = people
    hook = Webhook(org_id=org.id, url="https://hooks.example.test/in", events="idea.submitted", secret="s" * 32)
    db.session.add(hook)
    db.session.flush()
    delivery = WebhookDelivery(webhook_id=hook.id, event="idea.submitted", payload="{}", next_attempt_at=utcnow())
    db.session.add(delivery)
    db.session.commit()
    for name, viewer in P.items():
        want = name in {"org_owner", "org_admin"}
        assert _both(viewer, hook) == (want, want), name
        assert _both(viewer, delivery) == (want, want), name
        assert policy.can(viewer, "manage", hook) is want and policy.can(viewer, "redeliver", delivery) is want


def test_notifications_are_their_recipients_alone(people):
    """Oracle: a notification is its recipient's; nobody else sees it (not site admins, not
    anonymous visitors, whose clause must not match rows of any user)."""
    P, _org = people
    note = Notification(user_id=P["holder"].id, kind="test", message="For you")
    db.session.add(note)
    db.session.commit()
    for name, viewer in P.items():
        assert _both(viewer, note) == ((name == "holder"),) * 2, name


def test_the_mail_log_is_for_site_admins(people):
    """Oracle: site admins see that a mail exists; nobody else, not even its recipient."""
    P, _org = people
    mail = OutgoingMail(to_email=P["holder"].email, user_id=P["holder"].id, kind="test", subject="Hello",
                        body="Body")
    db.session.add(mail)
    db.session.commit()
    for name, viewer in P.items():
        assert _both(viewer, mail) == ((name == "site_admin"),) * 2, name


def test_coauthor_invitations_are_the_invitees_and_the_lead_authors(f):
    """Oracle: a co-author invitation is seen by the account holding the invited address and
    by the idea's lead author; not by other co-authors, the challenge owner or strangers."""
    fi = IdeaFactories(f)
    s = fi.challenge(visibility="public")
    lead, invitee, stranger = f.make_user(), f.make_user(), f.make_user()
    idea = fi.submit(lead, s.challenge, title="Shared work")
    inv = CoauthorInvitation(idea_id=idea.id, email=invitee.email, token_hash=f"{next(_seq):064d}",
                             invited_by_id=lead.id, expires_at=utcnow() + timedelta(days=7))
    db.session.add(inv)
    db.session.commit()
    who = {"lead": lead, "invitee": invitee, "stranger": stranger, "owner": s.owner, "anonymous": Anonymous()}
    for name, viewer in who.items():
        assert policy.can(viewer, "view", inv) is (name in {"lead", "invitee"}), name


def test_what_a_message_names_is_checked_against_its_own_rule(f):
    """Oracle for can_view_about: a message naming nothing may be shown; naming something
    that is gone, no; naming something, exactly when its viewer may see it; an unknown kind
    of thing fails closed."""
    from marketplace.policy.reach import can_view_about

    owner, stranger = f.make_user(), f.make_user()
    org = f.make_org(owner=owner)
    public = f.make_item(org, kind="challenge", visibility="public")
    private = f.make_item(org, kind="challenge", visibility="organisation")
    assert can_view_about(stranger, None, None) is True
    assert can_view_about(stranger, "items", public.id) is True
    assert can_view_about(stranger, "items", private.id) is False
    assert can_view_about(owner, "items", private.id) is True
    assert can_view_about(owner, "items", 10_000_000) is False
    with pytest.raises(PolicyError):
        can_view_about(owner, "no-such-kind", public.id)


def test_a_score_on_ones_own_idea_is_never_shown_to_its_author(f):
    """Oracle: a judge's score is seen by that judge and by the challenge's admins, but
    never by an author of the scored idea, even one who administers the organisation."""
    from marketplace.models import JudgingRound, Membership, ReviewerAppointment, RoundCriterion

    fi = IdeaFactories(f)
    s = fi.challenge(visibility="public")
    admin_author, judge = f.make_user(), f.make_user()
    db.session.add(Membership(user_id=admin_author.id, org_id=s.challenge.org_id, role="admin"))
    db.session.add(ReviewerAppointment(challenge_id=s.challenge.id, user_id=judge.id, kind="judge",
                                       appointed_by_id=s.owner.id, nda_text="Secret.", nda_digest="0" * 64,
                                       nda_accepted_at=utcnow()))
    db.session.commit()
    now = utcnow()
    idea = Idea(challenge_id=s.challenge.id, author_id=admin_author.id, title="Inside job", status="submitted",
                terms_id=s.terms.id, content_hash="0" * 64, confidentiality="open",
                submission_key=f"k{next(_seq)}")
    idea.authors.append(IdeaAuthor(user_id=admin_author.id, status="lead"))
    other = fi.submit(f.make_user(), s.challenge, title="Outside")
    db.session.add(idea)
    rnd = JudgingRound(challenge_id=s.challenge.id, position=1, name="One", starts_at=now - timedelta(days=1),
                       ends_at=now + timedelta(days=1), advance_count=1)
    db.session.add(rnd)
    db.session.flush()
    crit = RoundCriterion(round_id=rnd.id, name="Merit", weight=1)
    db.session.add(crit)
    db.session.flush()
    own = RoundScore(round_id=rnd.id, idea_id=idea.id, judge_id=judge.id, criterion_id=crit.id, score=1)
    theirs = RoundScore(round_id=rnd.id, idea_id=other.id, judge_id=judge.id, criterion_id=crit.id, score=2)
    db.session.add_all([own, theirs])
    db.session.commit()
    assert policy.can(judge, "view", own) and policy.can(judge, "view", theirs)
    assert policy.can(s.owner, "view", own)
    assert policy.can(admin_author, "view", theirs)
    assert not policy.can(admin_author, "view", own)


def test_org_pages_are_searchable_by_everyone(f):
    """Oracle: organisations are public; their search documents carry the public term."""
    org = f.make_org()
    assert policy.doc_principals(org) == ["public"]


# --------------------------------------------------------------------------- valid_until


def test_an_invited_items_principals_hold_until_its_first_active_grant_expires(f):
    """Oracle: an invited item names its grantees in the index until the earliest expiry of
    a grant that is still active (revoked and already expired grants do not count, nor do
    grants without an end); public, hidden and draft items name nobody, so nothing expires.
    Its questions and comments expire with it."""
    owner, a, b, c = f.make_user(), f.make_user(), f.make_user(), f.make_user()
    org = f.make_org(owner=owner)
    now = utcnow()
    item = f.make_item(org, kind="challenge", visibility="invited")
    soon, later = now + timedelta(days=2), now + timedelta(days=5)
    f.grant(item, user=a, expires_at=later)
    f.grant(item, user=b, expires_at=soon)
    f.grant(item, user=c, expires_at=now + timedelta(hours=1), revoked_at=now - timedelta(hours=1))
    f.grant(item, user=c, expires_at=now - timedelta(days=1))
    f.grant(item, user=c)
    assert policy.item_principals_valid_until(item, now) == soon
    assert policy.item_principals_valid_until(item, soon + timedelta(seconds=1)) == later
    assert policy.item_principals_valid_until(item, later + timedelta(seconds=1)) is None
    q = Question(item_id=item.id, author_id=a.id, body="Why?", body_html="<p>Why?</p>")
    failure = f.make_item(org, kind="failure", visibility="invited")
    f.grant(failure, user=a, expires_at=later)
    cm = Comment(item_id=failure.id, author_id=a.id, body="Hm", body_html="<p>Hm</p>")
    db.session.add_all([q, cm])
    db.session.commit()
    assert policy.doc_principals_valid_until(q, now) == soon
    assert policy.doc_principals_valid_until(cm, now) == later
    for other in (f.make_item(org, kind="challenge", visibility="public"),
                  f.make_item(org, kind="challenge", visibility="invited", status="draft"),
                  f.make_item(org, kind="challenge", visibility="invited", hidden_at=now)):
        f.grant(other, user=a, expires_at=soon)
        assert policy.item_principals_valid_until(other, now) is None, other.title


def test_a_sealed_ideas_principals_hold_until_its_reveal_date_or_the_challenges(f):
    """Oracle: a sealed idea's index terms change at its reveal date (when it opens to the
    challenge's audience) or when its invited challenge's first grant expires, whichever
    comes first; an open idea, or a reveal date already past, adds no date."""
    fi = IdeaFactories(f)
    now = utcnow()
    s = fi.challenge(visibility="invited")
    grantee = f.make_user()
    grant_end = now + timedelta(days=4)
    f.grant(s.challenge, user=grantee, expires_at=grant_end)
    lead = f.make_user()

    def idea(conf, reveal_at):
        i = Idea(challenge_id=s.challenge.id, author_id=lead.id, title=f"Idea {next(_seq)}", status="submitted",
                 terms_id=s.terms.id, content_hash="0" * 64, confidentiality=conf, reveal_at=reveal_at,
                 submission_key=f"k{next(_seq)}")
        i.authors.append(IdeaAuthor(user_id=lead.id, status="lead"))
        db.session.add(i)
        db.session.commit()
        return i

    early, late = now + timedelta(days=1), now + timedelta(days=9)
    assert policy.doc_principals_valid_until(idea("sealed", early), now) == early
    assert policy.doc_principals_valid_until(idea("sealed", late), now) == grant_end
    assert policy.doc_principals_valid_until(idea("sealed", now - timedelta(days=1)), now) == grant_end
    assert policy.doc_principals_valid_until(idea("sealed", None), now) == grant_end
    assert policy.doc_principals_valid_until(idea("open", early), now) == grant_end
    public = fi.challenge(visibility="public")
    i = Idea(challenge_id=public.challenge.id, author_id=lead.id, title="Plain", status="submitted",
             terms_id=public.terms.id, content_hash="0" * 64, confidentiality="sealed", reveal_at=late,
             submission_key=f"k{next(_seq)}")
    i.authors.append(IdeaAuthor(user_id=lead.id, status="lead"))
    db.session.add(i)
    db.session.commit()
    assert policy.doc_principals_valid_until(i, now) == late
    assert policy.doc_principals_valid_until(i, late) is None
    # Asked about another time, the answer is about that time: an idea revealed yesterday
    # was still sealed two days ago, so its terms held until yesterday.
    past = Idea(challenge_id=public.challenge.id, author_id=lead.id, title="Past", status="submitted",
                terms_id=public.terms.id, content_hash="0" * 64, confidentiality="sealed",
                reveal_at=now - timedelta(days=1), submission_key=f"k{next(_seq)}")
    past.authors.append(IdeaAuthor(user_id=lead.id, status="lead"))
    db.session.add(past)
    db.session.commit()
    assert policy.doc_principals_valid_until(past, now) is None
    assert policy.doc_principals_valid_until(past, now - timedelta(days=2)) == now - timedelta(days=1)


def test_the_team_page_is_for_whoever_may_see_the_idea(f):
    """Oracle: an idea names its authors to everyone who may see it, so the team page is
    open to exactly them; a viewer who may not see the idea does not see its team."""
    fi = IdeaFactories(f)
    s = fi.challenge(visibility="public")
    lead, reader = f.make_user(), f.make_user()
    fi.set_terms(s.owner, s.challenge, confidentiality="open")
    open_idea = fi.submit(lead, s.challenge, title="Open work")
    assert policy.can(reader, "view", open_idea) and policy.can(reader, "view_team", open_idea)
    assert policy.can(lead, "view_team", open_idea) and policy.can(s.owner, "view_team", open_idea)
    fi.set_terms(s.owner, s.challenge, confidentiality="sealed")
    sealed = fi.submit(lead, s.challenge, title="Sealed work")
    assert not policy.can(reader, "view", sealed) and not policy.can(reader, "view_team", sealed)
    assert policy.can(lead, "view_team", sealed)
