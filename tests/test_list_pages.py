"""Ideas lists (a challenge's ideas, the review dashboard, "my ideas" and my receipts) and the
mail log come in pages with plain links; their counts come from one COUNT of the same
policy-filtered query as the rows, and a bad page number is a 400 with a message."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import insert

from marketplace.extensions import db
from marketplace.models import OutgoingMail, utcnow

from .factories_ideas import IdeaFactories

SIZE = 2


@pytest.fixture
def ideas_world(f, app):
    app.config["PAGE_SIZE"] = SIZE
    ideas = IdeaFactories(f)
    setup = ideas.challenge(confidentiality="open")
    author, other = f.make_user(name="Ada Author"), f.make_user(name="Otto Other")
    mine = [ideas.submit(author, setup.challenge, title=f"Mine {i}").id for i in range(3)]
    theirs = [ideas.submit(other, setup.challenge, title=f"Theirs {i}").id for i in range(2)]
    return setup, author, other, mine, theirs


def _idea_links(html: bytes) -> list[int]:
    return [int(n) for n in re.findall(rb'href="/ideas/(\d+)"', html)]


def test_challenge_ideas_are_paged(ideas_world, client, auth):
    setup, author, _other, mine, theirs = ideas_world
    auth.login(setup.owner.email)
    seen = []
    for page in (1, 2, 3):
        r = client.get(f"/challenges/{setup.challenge.id}/ideas?page={page}")
        assert r.status_code == 200 and b"5 ideas" in r.data and f"Page {page} of 3".encode() in r.data
        seen += _idea_links(r.data)
    assert sorted(seen) == sorted(mine + theirs)
    r = client.get(f"/challenges/{setup.challenge.id}/ideas?page=2")
    assert f'href="/challenges/{setup.challenge.id}/ideas?page=3"'.encode() in r.data


def test_the_review_dashboard_is_paged(ideas_world, client, auth):
    setup, _author, _other, mine, theirs = ideas_world
    auth.login(setup.owner.email)
    r = client.get(f"/challenges/{setup.challenge.id}/review?page=3")
    assert r.status_code == 200 and b"5 ideas to review" in r.data and b"Page 3 of 3" in r.data
    assert _idea_links(r.data) == [theirs[-1]]


def test_my_ideas_and_receipts_page_separately(ideas_world, client, auth):
    setup, author, _other, mine, _theirs = ideas_world
    auth.login(author.email)
    r = client.get("/ideas/mine?page=2")
    assert r.status_code == 200
    assert set(_idea_links(r.data)) == {mine[0]}  # newest first: the oldest is on page 2
    assert b"Pages of my ideas" in r.data and b"Pages of my acceptances" in r.data
    # The receipts' links keep the ideas' page, and the other way round.
    assert b'href="/ideas/mine?page=2&amp;acc_page=2"' in r.data
    r = client.get("/ideas/mine?acc_page=2")
    assert r.status_code == 200 and b'href="/ideas/mine?acc_page=2&amp;page=2"' in r.data


def test_only_what_one_may_see_is_counted(ideas_world, client, auth):
    """A sealed challenge: another contributor counts and lists none of the ideas."""
    from marketplace.models import Idea

    setup, author, other, mine, theirs = ideas_world
    for i in db.session.query(Idea).all():
        i.confidentiality = "sealed"
    db.session.commit()
    auth.login(other.email)
    r = client.get(f"/challenges/{setup.challenge.id}/ideas")
    assert r.status_code == 200
    assert set(_idea_links(r.data)) <= set(theirs) and not set(_idea_links(r.data)) & set(mine)


@pytest.mark.parametrize("url", ["/challenges/{ch}/ideas", "/challenges/{ch}/review", "/ideas/mine"])
@pytest.mark.parametrize("bad", ["x", "0", "10001", "2.5"])
def test_bad_page_numbers_are_a_400(ideas_world, client, auth, url, bad):
    setup, *_ = ideas_world
    auth.login(setup.owner.email)
    r = client.get(url.format(ch=setup.challenge.id) + f"?page={bad}")
    assert r.status_code == 400 and b"page number" in r.data


def test_the_mail_log_is_paged(f, app, client, auth):
    admin = f.make_user(site_role="admin")
    db.session.execute(insert(OutgoingMail), [
        {"to_email": f"person{i}@example.test", "subject": f"Mail {i}", "body": "Body", "kind": "test",
         "status": "failed", "last_error": "refused", "created_at": utcnow()} for i in range(120)])
    db.session.commit()
    auth.login(admin.email)
    r = client.get("/notifications/mail-log?page=3")
    assert r.status_code == 200 and b"Page 3 of 3" in r.data and b"person19@" in r.data
    assert b"person20@" not in r.data
    r = client.get("/mail/failures?page=2")
    assert r.status_code == 200 and b'href="/mail/failures?page=3"' in r.data
    assert client.get("/mail/failures?page=abc").status_code == 400


def test_idea_hits_name_their_challenge_only_to_those_who_see_it(f):
    """The challenge rule is asked once for a page of idea hits (one query), with the same
    answer as per hit: its authors keep ideas whose challenge moderators hid, without its title."""
    from marketplace.search import service as search
    from marketplace.services import moderation as mod_svc

    ideas = IdeaFactories(f)
    setup = ideas.challenge(confidentiality="open")
    author = f.make_user()
    for i in range(3):
        ideas.submit(author, setup.challenge, title=f"Quasselbrot idea {i}", body="About quasselbrot.")
    title = setup.challenge.title
    hits = search.search(author, "quasselbrot", per_page=100).hits
    assert len(hits) == 3 and all(f"Idea for “{title}”" in h.meta for h in hits)
    mod_svc.take_action(f.make_user(site_role="moderator"), "challenge", setup.challenge.id, "hide", "Off topic.")
    hits = search.search(author, "quasselbrot", per_page=100).hits
    assert len(hits) == 3 and not any(title in " ".join(h.meta) for h in hits)
