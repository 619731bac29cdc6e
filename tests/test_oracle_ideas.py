"""Ideas, their attachments, challenge terms, terms acceptances and review notes against
their oracle (tests/oracles/ideas.py): every viewer (authors in every author state,
reviewers in every appointment state, moderators of every scope) x every idea state x every
confidentiality x the challenge's level, status and hidden state, on can(), visible() and,
for ideas, search.

tests/test_ideas_policy_matrix.py has an oracle too, over open public and invited
challenges only and without moderators' cases, hidden, closed or draft challenges,
organisation-level or registered challenges, reviewers of another challenge, revoked or
former-member reviewers, or dated sealing; this matrix covers those.

One world per module. Challenges are made through the terms services and two ideas through
the ideas service (terms acceptances, co-authorship); the rest of the idea states, reviewer
appointments, attachments and notes are written as rows, as the services leave them.
"""
from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from marketplace.extensions import db
from marketplace.models import (
    ChallengeTerms,
    Idea,
    IdeaAttachment,
    IdeaAuthor,
    Item,
    Membership,
    ReviewerAppointment,
    ReviewNote,
    TermsAcceptance,
    utcnow,
)
from marketplace.models.moderation import ModerationFlag
from marketplace.services import ideas as ideas_svc
from marketplace.services import moderation as mod

from .factories import Factories
from .factories_foundation import dispose, make_app
from .factories_ideas import IdeaFactories
from .factories_moderation import scope
from .oracles import ideas as oracle
from .oracles.harness import run_matrix

VIEWERS = ("anonymous", "outsider", "blocked_admin", "lead", "coauthor", "pending_coauthor", "declined_coauthor",
           "other_contributor", "member", "admin", "other_admin", "site_mod", "site_admin", "scoped_a", "scoped_b",
           "member_reviewer", "judge", "judge_no_nda", "revoked_judge", "ex_member_reviewer", "other_judge")
AUTHORS = ("lead", "coauthor", "pending_coauthor", "declined_coauthor", "other_contributor")
STATES = ("awaiting-coauthors", "submitted", "under-review", "shortlisted", "awarded", "declined", "withdrawn",
          "disqualified", "hidden")
# sealed; open; sealed with a reveal date passed; sealed with a reveal date to come.
CONFS = ("sealed", "open", "revealed", "sealed until later")
# Final state of the other challenges of A: (level, status, hidden).
CHALLENGES = {
    "registered/open": ("registered", "open", False),
    "invited/open": ("invited", "open", False),
    "organisation/open": ("organisation", "open", False),
    "public/hidden": ("public", "open", True),
    "public/closed": ("public", "closed", False),
    "public/archived": ("public", "archived", False),
    "public/draft": ("public", "draft", False),
}


def build():
    f = Factories()
    fi = IdeaFactories(f)
    now = utcnow()
    past, future = now - timedelta(days=1), now + timedelta(days=20)
    U = {n: f.make_user(name=n.replace("_", " ").title(),
                        site_role={"site_mod": "moderator", "site_admin": "admin"}.get(n, "user"))
         for n in VIEWERS if n != "anonymous"}
    org = f.make_org(name="Org A", owner=U["admin"], admins=(U["blocked_admin"],),
                     members=(U["member"], U["member_reviewer"], U["ex_member_reviewer"]))
    org_b = f.make_org(name="Org B", owner=U["other_admin"])
    scope(U["scoped_a"], org)
    scope(U["scoped_b"], org_b)
    labels = {Idea: {}, IdeaAttachment: {}, ChallengeTerms: {}, TermsAcceptance: {}, ReviewNote: {}}
    rules = {"who_may_submit": "registered", "team_allowed": True, "max_team_size": 5,
             "max_ideas_per_contributor": 50}
    seq = itertools.count()

    def challenge(name, owner=U["admin"], org_=org):
        s = fi.challenge(visibility="public", confidentiality="sealed", rules=rules, owner=owner, org=org_)
        s.challenge.title = name
        labels[ChallengeTerms][s.terms.id] = f"terms of {name}"
        for who in AUTHORS:  # contributors hold a grant, for when the challenge becomes invited
            f.grant(s.challenge, user=U[who])
        return s

    def appoint(ch, who, kind, nda=False, revoked=False):
        grant = f.grant(ch, user=U[who], revoked_at=past if revoked else None) if kind == "judge" else None
        db.session.add(ReviewerAppointment(
            challenge_id=ch.id, user_id=U[who].id, kind=kind, appointed_by_id=U["admin"].id,
            nda_text="Keep it secret." if kind == "judge" else "", nda_digest="0" * 64 if kind == "judge" else "",
            nda_accepted_at=past if nda else None, revoked_at=past if revoked else None,
            grant_id=grant.id if grant else None))

    def panel(ch):
        appoint(ch, "member_reviewer", "member")
        appoint(ch, "ex_member_reviewer", "member")
        appoint(ch, "judge", "judge", nda=True)
        appoint(ch, "judge_no_nda", "judge")
        appoint(ch, "revoked_judge", "judge", nda=True, revoked=True)

    def idea(s, where, state, conf, lead="lead", team=True, attach=False):
        i = Idea(challenge_id=s.challenge.id, author_id=U[lead].id, title=f"{state} {conf} idea on {where}",
                 status="submitted" if state == "hidden" else state, terms_id=s.terms.id, content_hash="0" * 64,
                 confidentiality="open" if conf == "open" else "sealed",
                 reveal_at={"revealed": past, "sealed until later": future}.get(conf),
                 hidden_at=past if state == "hidden" else None, submission_key=f"k{next(seq)}")
        i.authors.append(IdeaAuthor(user_id=U[lead].id, status="lead"))
        if team:
            i.authors += [IdeaAuthor(user_id=U["coauthor"].id, status="accepted"),
                          IdeaAuthor(user_id=U["pending_coauthor"].id, status="pending"),
                          IdeaAuthor(user_id=U["declined_coauthor"].id, status="declined")]
        db.session.add(i)
        db.session.flush()
        labels[Idea][i.id] = i.title
        if attach:
            n = next(seq)
            a = IdeaAttachment(idea_id=i.id, uploaded_by_id=U[lead].id, filename="plan.pdf", stored_name=f"{n:032x}",
                               content_type="application/pdf", size=10, sha256="0" * 64)
            db.session.add(a)
            db.session.flush()
            labels[IdeaAttachment][a.id] = f"attachment of the {i.title}"
        return i

    # The main challenge: public and open, every idea state x confidentiality.
    main = challenge("main challenge")
    panel(main.challenge)
    for state, conf in itertools.product(STATES, CONFS):
        idea(main, "main challenge", state, conf, attach=True)
    other_ideas = [idea(main, "main challenge", "submitted", conf, lead="other_contributor", team=False)
                   for conf in ("sealed", "open")]
    # Through the service: acceptances of the lead and a co-author, and one of another contributor.
    via_svc = fi.submit(U["lead"], main.challenge, title="Submitted through the service",
                        coauthors=U["coauthor"].email)
    ideas_svc.accept_coauthorship(U["coauthor"], via_svc, fi.submission(main.challenge))
    labels[Idea][via_svc.id] = "sealed idea submitted through the service"
    fi.submit(U["other_contributor"], main.challenge, title="Another one")
    for acc in db.session.query(TermsAcceptance):
        labels[TermsAcceptance][acc.id] = f"{acc.purpose} acceptance by user {acc.user_id} of {acc.terms_id}"
    # Moderators' cases: a report on a sealed idea, an automatic flag on another.
    reported = other_ideas[0]
    mod.file_report(U["admin"], "idea", reported.id, "other", "Copied from a paper.")
    labels[Idea][reported.id] = "sealed idea on main challenge, reported"
    flagged = idea(main, "main challenge", "submitted", "sealed", lead="other_contributor", team=False)
    labels[Idea][flagged.id] = "sealed idea on main challenge, flagged"
    db.session.add(ModerationFlag(kind="near-duplicate", target_type="idea", target_id=flagged.id,
                                  org_id=org.id, context_item_id=main.challenge.id, context_kind="challenge",
                                  is_discussion=False, detail="Close to another idea."))
    # Private notes of reviewers (one whose appointment was revoked since).
    some = next(iter(labels[Idea]))
    for who in ("judge", "member_reviewer", "revoked_judge"):
        note = ReviewNote(idea_id=some, author_id=U[who].id, body="Promising.")
        db.session.add(note)
        db.session.flush()
        labels[ReviewNote][note.id] = f"note by {who}"

    # The other challenges of A, moved to their final state once their ideas are in.
    final = {}
    for name, spec in CHALLENGES.items():
        s = challenge(f"{name} challenge")
        panel(s.challenge)
        for state, conf in (("submitted", "sealed"), ("submitted", "open"), ("withdrawn", "open")):
            idea(s, f"{name} challenge", state, conf, attach=state == "submitted")
        final[s.challenge.id] = spec
    # Another challenge of A, reviewed by someone else.
    elsewhere = challenge("another challenge of A")
    appoint(elsewhere.challenge, "other_judge", "judge", nda=True)
    idea(elsewhere, "another challenge of A", "submitted", "sealed")
    # A challenge of B, with a reported sealed idea.
    s_b = challenge("B's challenge", owner=U["other_admin"], org_=org_b)
    i_b = idea(s_b, "B's challenge", "submitted", "sealed", attach=True)
    mod.file_report(U["other_admin"], "idea", i_b.id, "other", "Looks copied.")
    labels[Idea][i_b.id] += ", reported"

    for item_id, (level, status, hidden) in final.items():
        item = db.session.get(Item, item_id)
        item.visibility, item.status = level, status
        item.hidden_at = past if hidden else None
    # A member reviewer who has left the organisation; an admin who was banned.
    db.session.query(Membership).filter_by(user_id=U["ex_member_reviewer"].id).delete()
    U["blocked_admin"].banned = True
    db.session.commit()
    users = {n: (U[n].id if n != "anonymous" else None) for n in VIEWERS}
    return users, labels


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("oracle_ideas"), SEARCH_WORKER="off")
    with app.app_context():
        users, labels = build()
    yield run_matrix(
        app, users, labels,
        oracles={Idea: oracle.sees_idea, IdeaAttachment: oracle.sees_attachment, ChallengeTerms: oracle.sees_terms,
                 TermsAcceptance: oracle.sees_acceptance, ReviewNote: oracle.sees_note},
        search_oracles={Idea: oracle.sees_idea_in_search},
        no_sql=frozenset({ChallengeTerms, TermsAcceptance, ReviewNote}))
    dispose(app)


def test_every_face_of_every_ideas_view_rule_follows_the_rules(outcome):
    wrong = outcome.wrong()
    assert not wrong, "\n".join(wrong)


def test_the_matrix_is_not_degenerate(outcome):
    for model, (allowed, denied) in outcome.counts.items():
        assert allowed >= 3 and denied >= 20, model.__name__
    assert outcome.faces[Idea] == {"can", "visible", "search"}
    assert outcome.faces[IdeaAttachment] == {"can", "visible"}
