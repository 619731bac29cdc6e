"""The team page of an idea: its members (lead, co-authors and their states) and each one's
acceptance of the terms (version, digest, date), for whoever may see the idea's authors."""
from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select

from marketplace import policy
from marketplace.extensions import db
from marketplace.models import IdeaAuthor, TermsAcceptance
from marketplace.services import ideas as svc

from .factories_ideas import IdeaFactories
from .test_ideas_policy_matrix import build, expected


@pytest.fixture
def fi(f):
    return IdeaFactories(f)


@pytest.fixture
def team(f, fi):
    """An open (not sealed) public challenge; an idea by Lena Lead with Cora Coauthor
    (accepted), Pat Pending (not answered) and Dan Decliner (declined)."""
    s = fi.challenge(confidentiality="open", rules={"team_allowed": True, "max_team_size": 5})
    lead = f.make_user(name="Lena Lead")
    cora = f.make_user(name="Cora Coauthor")
    pat = f.make_user(name="Pat Pending")
    dan = f.make_user(name="Dan Decliner")
    outsider = f.make_user(name="Oscar Outsider")
    idea = fi.submit(lead, s.challenge, title="Team idea", coauthors=f"{cora.email}\n{pat.email}\n{dan.email}")
    svc.accept_coauthorship(cora, idea, fi.submission(s.challenge))
    svc.decline_coauthorship(dan, idea)
    return s, idea, {"lead": lead, "cora": cora, "pat": pat, "dan": dan, "outsider": outsider}


def _page(client, auth, user, idea_id):
    auth.logout()
    if user is not None:
        auth.login(user.email)
    r = client.get(f"/ideas/{idea_id}/team")
    return r.status_code, html.unescape(r.get_data(as_text=True))


def test_the_team_page_lists_members_states_and_acceptances(f, team, client, auth):
    s, idea, u = team
    code, page = _page(client, auth, u["lead"], idea.id)
    assert code == 200
    assert "Lena Lead" in page and "Lead author" in page
    assert "Cora Coauthor" in page and "Co-author (accepted" in page
    # Named by address and not answered yet: shown as the address to the authors, the same
    # whether or not it has an account (so not by the account's name).
    assert "Pat Pending" not in page and u["pat"].email in page
    assert "has not answered yet" in page and "Not accepted yet" in page
    assert "Dan Decliner" in page and "Declined to be a co-author" in page
    accs = db.session.execute(select(TermsAcceptance).where(TermsAcceptance.idea_id == idea.id)
                              .order_by(TermsAcceptance.id)).scalars().all()
    assert {a.user_id for a in accs} == {u["lead"].id, u["cora"].id}
    for a in accs:
        assert f'title="{a.terms_digest}">{a.terms_digest[:16]}…</code>' in page
        assert f"{a.accepted_at:%Y-%m-%d %H:%M} UTC" in page
    assert page.count("Terms version 1, digest") == 2
    assert "as co-author" in page and "submitting" in page
    # Never what is only the accepter's: no signature, no conflict-of-interest note.
    assert "signature" not in page.lower() and "coi" not in page.lower()
    # The idea page links to it.
    assert f'/ideas/{idea.id}/team' in client.get(f"/ideas/{idea.id}").get_data(as_text=True)


def test_a_declined_co_authorship_is_shown_only_to_the_authors_and_the_decliner(fi, team, client, auth):
    s, idea, u = team
    # Waiting for Pat, the idea (and so its team) is its authors' alone.
    assert _page(client, auth, u["outsider"], idea.id)[0] == 404
    assert _page(client, auth, u["dan"], idea.id)[0] == 404
    svc.accept_coauthorship(u["pat"], idea, fi.submission(s.challenge))
    assert db.session.get(type(idea), idea.id).status == "submitted"
    for who, sees_declined in [("lead", True), ("cora", True), ("pat", True), ("dan", True),
                               ("outsider", False), (None, False)]:
        code, page = _page(client, auth, u[who] if who else None, idea.id)
        assert code == 200, who  # an open idea on a public challenge: its authors are public
        assert "Lena Lead" in page and "Cora Coauthor" in page and "Pat Pending" in page, who
        assert ("Dan Decliner" in page) is sees_declined, who
    v = policy.viewer_for(u["outsider"])
    declined = db.session.execute(select(IdeaAuthor).where(IdeaAuthor.idea_id == idea.id,
                                                           IdeaAuthor.user_id == u["dan"].id)).scalar_one()
    assert not policy.team_member_shown(v, idea, declined)
    declined.status = "abducted"
    with pytest.raises(policy.PolicyError):
        policy.team_member_shown(v, idea, declined)
    db.session.rollback()


def test_whoever_may_not_see_the_idea_may_not_see_its_team(f, fi, client, auth):
    s = fi.challenge(confidentiality="sealed")
    lead, outsider = f.make_user(name="Sealed Lead"), f.make_user()
    idea = fi.submit(lead, s.challenge, title="Sealed idea")
    assert _page(client, auth, outsider, idea.id)[0] == 404
    assert _page(client, auth, None, idea.id)[0] == 404
    code, page = _page(client, auth, s.owner, idea.id)  # the review panel reads sealed ideas
    assert code == 200 and "Sealed Lead" in page
    assert _page(client, auth, lead, 999_999)[0] == 404


def test_view_team_follows_view_in_every_cell_of_the_ideas_matrix(f):
    users, ideas = build(f)
    failures = []
    for viewer, user in users.items():
        for (vis, conf, state), idea in ideas.items():
            want = expected(viewer, vis, conf, state)
            if policy.can(user, "view_team", idea) != want:
                failures.append((viewer, vis, conf, state, want))
    assert not failures, failures


def test_co_authors_invited_by_address_read_the_same_with_or_without_account(f, fi, client, auth):
    """A co-author without an account shows on the team page, with their state: the address
    to the idea's authors, "invited co-author (pending)" to others; an address with an
    account reads exactly the same."""
    s = fi.challenge(confidentiality="open", rules={"team_allowed": True, "max_team_size": 5})
    lead = f.make_user(name="Lena Lead")
    has_account = f.make_user(name="Hidden Name", email="known@expert.test")
    idea = fi.submit(lead, s.challenge, title="Mixed team", coauthors="known@expert.test\nunknown@expert.test")
    code, page = _page(client, auth, lead, idea.id)
    assert code == 200
    assert "known@expert.test" in page and "unknown@expert.test" in page and "Hidden Name" not in page
    rows = re.findall(r'<tr class="team-member" data-state="[^"]+">\s*<th scope="row">([^<]*)</th>\s*<td>([^<]*)</td>',
                      page)
    pending = [(name.strip(), " ".join(state.split()[:2])) for name, state in rows if "@" in name]
    assert pending == [("known@expert.test", "Co-author, invited"), ("unknown@expert.test", "Co-author, invited")]
    assert policy.sees_invited_coauthor_address(policy.viewer_for(lead), idea)
    assert policy.sees_invited_coauthor_address(policy.viewer_for(has_account), idea)  # a (pending) author
    assert not policy.sees_invited_coauthor_address(policy.viewer_for(f.make_user()), idea)
