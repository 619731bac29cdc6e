"""Every page issues a bounded number of SQL queries whatever the data size (STYLE.md 11,
issue 16): the same page is requested with 10, 100 and 1,000 related rows and the number of
queries the request sends (SQLAlchemy's ``before_cursor_execute`` on the engine, counted only
while the test client's request runs) may not grow with the rows. A constant difference of
at most ``SLACK`` queries between the smallest and the largest world is allowed (a page that
shows "none" where there are some may skip a query or two).

Rows are added in bulk (one INSERT per table) and the same world grows from 10 to 100 to
1,000 rows, so each case stays quick.

The search page (which grew 19-26 -> 36-38 queries: an NDA lookup per challenge, the item
and tags per Q&A or discussion hit) and the moderation queue (33 -> 55: each reported target
and its item loaded one at a time) are here since their page's rows are loaded and presented
in batches (search DocType.present_many / present_options, moderation registry.load_many).

Set QUERY_COUNTS_SHOW=1 (with pytest -s) to print the statements of each counted request.
"""
from __future__ import annotations

import os
from contextlib import contextmanager

import pytest
from sqlalchemy import event, insert, select

from marketplace.extensions import db
from marketplace.models import AccessGrant, Item, ItemTag, Notification, User, utcnow
from marketplace.models.engagement import Answer, Comment, Question
from marketplace.models.ideas import ChallengeTerms
from marketplace.sanitize import render_markdown

from .factories import sign_in_client
from .factories_ideas import IdeaFactories

SIZES = (10, 100, 1000)
SLACK = 2


@contextmanager
def counting(app):
    """Count the statements sent to the database while the block runs."""
    seen: list[str] = []

    def count(_conn, _cursor, statement, _params, _context, _many):
        seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def queries(app, client, url: str) -> int:
    with counting(app) as seen:
        r = client.get(url)
    assert r.status_code == 200, (url, r.status_code, r.get_data(as_text=True)[:500])
    if os.environ.get("QUERY_COUNTS_SHOW"):  # debugging: the statements themselves
        print("=====", url, len(seen))
        for s in seen:
            print("  ", " ".join(s.split())[:220])
    return len(seen)


def measure(app, client, url, grow) -> dict[int, int]:
    """Grow the world to each size in SIZES (grow(from_n, to_n) adds the rows) and count the
    queries of one GET of `url` at each size (after a warm-up request)."""
    counts: dict[int, int] = {}
    have = 0
    for n in SIZES:
        with app.app_context():
            grow(have, n)
            db.session.commit()
        have = n
        client.get(url)  # warm-up: first-request caches (principals, config) are not the point
        counts[n] = queries(app, client, url)
    return counts


def assert_bounded(counts: dict[int, int]) -> None:
    print("queries per request:", counts)
    lo, hi = counts[SIZES[0]], counts[SIZES[-1]]
    assert hi - lo <= SLACK, f"queries per request grow with the rows: {counts}"


# --------------------------------------------------------------------------- bulk rows


def _now():
    return utcnow()


def bulk_items(org, n: int, kind: str = "challenge", visibility: str = "public", title: str = "Item",
               body: str = "Plain body text.", tags: tuple = ("energy", "water")) -> list[int]:
    now = _now()
    html = render_markdown(body)
    first = (db.session.execute(select(Item.id).order_by(Item.id.desc()).limit(1)).scalar() or 0) + 1
    rows = [{"kind": kind, "org_id": org.id, "title": f"{title} {i}", "summary": "", "body": body,
             "body_html": html, "visibility": visibility, "status": "open", "created_at": now, "updated_at": now,
             "published_at": now, "deadline": now.replace(year=now.year + 1) if kind == "challenge" else None}
            for i in range(n)]
    db.session.execute(insert(Item), rows)
    ids = list(db.session.execute(select(Item.id).where(Item.id >= first).order_by(Item.id)).scalars())
    if tags:
        db.session.execute(insert(ItemTag), [{"item_id": i, "tag": t} for i in ids for t in tags])
    return ids


def bulk_comments(item_id: int, author_id: int, n: int, body: str = "A comment worth reading.") -> list[int]:
    now = _now()
    first = (db.session.execute(select(Comment.id).order_by(Comment.id.desc()).limit(1)).scalar() or 0) + 1
    html = render_markdown(body)
    db.session.execute(insert(Comment), [{"item_id": item_id, "author_id": author_id, "body": f"{body} {i}",
                                          "body_html": html, "created_at": now} for i in range(n)])
    return list(db.session.execute(select(Comment.id).where(Comment.id >= first)).scalars())


def bulk_questions(item_id: int, asker_id: int, answerer_id: int, n: int, body: str = "A question to ask?") -> None:
    now = _now()
    first = (db.session.execute(select(Question.id).order_by(Question.id.desc()).limit(1)).scalar() or 0) + 1
    html = render_markdown(body)
    db.session.execute(insert(Question), [{"item_id": item_id, "author_id": asker_id, "body": f"{body} {i}",
                                           "body_html": html, "show_name": i % 2 == 0, "created_at": now}
                                          for i in range(n)])
    qids = list(db.session.execute(select(Question.id).where(Question.id >= first)).scalars())
    db.session.execute(insert(Answer), [{"question_id": q, "item_id": item_id, "author_id": answerer_id,
                                         "body": "An answer.", "body_html": "<p>An answer.</p>", "created_at": now}
                                        for q in qids])


# --------------------------------------------------------------------------- the pages


@pytest.fixture
def world(app):
    with app.app_context():
        from .factories import Factories

        f = Factories()
        owner = f.make_user(name="Olga Owner")
        contributor = f.make_user(name="Carl Contributor")
        moderator = f.make_user(name="Mo Moderator", site_role="moderator")
        org = f.make_org(name="Owning Org", owner=owner)
        ids = {"owner": owner.id, "contributor": contributor.id, "moderator": moderator.id, "org": org.id}
    return ids


def _org(world):
    from marketplace.models import Organisation

    return db.session.get(Organisation, world["org"])


@pytest.mark.parametrize("viewer", ["contributor", "anonymous"])
def test_failure_page_with_n_comments(app, client, world, viewer):
    with app.app_context():
        failure_id = bulk_items(_org(world), 1, kind="failure", title="Failure")[0]
        db.session.commit()
    if viewer != "anonymous":
        sign_in_client(client, app, world[viewer])
    counts = measure(app, client, f"/failures/{failure_id}",
                     lambda have, n: bulk_comments(failure_id, world["owner"], n - have))
    assert_bounded(counts)


@pytest.mark.parametrize("viewer", ["contributor", "anonymous"])
def test_challenge_page_with_n_qa_posts(app, client, world, viewer):
    with app.app_context():
        challenge_id = bulk_items(_org(world), 1, title="Challenge")[0]
        db.session.commit()
    if viewer != "anonymous":
        sign_in_client(client, app, world[viewer])
    counts = measure(app, client, f"/challenges/{challenge_id}",
                     lambda have, n: bulk_questions(challenge_id, world["contributor"], world["owner"], n - have))
    assert_bounded(counts)


@pytest.mark.parametrize("viewer", ["contributor", "anonymous"])
def test_challenge_list_with_n_items(app, client, world, viewer):
    if viewer != "anonymous":
        sign_in_client(client, app, world[viewer])
    counts = measure(app, client, "/challenges/", lambda have, n: bulk_items(_org(world), n - have))
    assert_bounded(counts)


@pytest.mark.parametrize("viewer", ["contributor", "anonymous"])
def test_atom_feed_with_n_challenges(app, client, world, viewer):
    """Some challenges invited (the contributor holds a grant), some with terms."""
    with app.app_context():
        IdeaFactories(None).set_terms(db.session.get(__import__("marketplace.models", fromlist=["User"]).User,
                                                     world["owner"]),
                                      db.session.get(Item, bulk_items(_org(world), 1, title="Template")[0]))
        template = db.session.execute(select(ChallengeTerms)).scalars().first()
        columns = {c.key: getattr(template, c.key) for c in ChallengeTerms.__table__.columns
                   if c.key not in ("id", "challenge_id")}
        db.session.commit()

    def grow(have, n):
        k = n - have
        org = _org(world)
        public = bulk_items(org, k - k // 2, title="Open challenge")
        invited = bulk_items(org, k // 2, visibility="invited", title="Invited challenge")
        db.session.execute(insert(AccessGrant), [{"item_id": i, "user_id": world["contributor"]} for i in invited])
        db.session.execute(insert(ChallengeTerms), [dict(columns, challenge_id=i)
                                                    for i in (public + invited)[::2]])

    if viewer != "anonymous":
        sign_in_client(client, app, world[viewer])
    counts = measure(app, client, "/feeds/challenges.atom", grow)
    assert_bounded(counts)


@pytest.mark.parametrize("viewer", ["contributor", "anonymous"])
def test_api_items_list(app, client, world, viewer):
    def grow(have, n):
        k = n - have
        invited = bulk_items(_org(world), k // 2, visibility="invited", title="Invited")
        db.session.execute(insert(AccessGrant), [{"item_id": i, "user_id": world["contributor"]} for i in invited])
        bulk_items(_org(world), k - k // 2, title="Public")

    if viewer != "anonymous":
        sign_in_client(client, app, world[viewer])
    counts = measure(app, client, "/api/v1/items", grow)
    assert_bounded(counts)


def test_notifications_page_with_n_notifications(app, client, world):
    def grow(have, n):
        db.session.execute(insert(Notification), [
            {"user_id": world["contributor"], "kind": "engagement.comment", "message": f"Something happened {i}.",
             "url": "/", "created_at": _now()} for i in range(have, n)])

    sign_in_client(client, app, world["contributor"])
    counts = measure(app, client, "/notifications/", grow)
    assert_bounded(counts)


@pytest.mark.parametrize("word", ["challengeword", "commentword", "questionword", "widget"])
def test_search_page_with_n_results(app, client, world, word):
    """Items, questions and comments (each kind alone, then all three) that match; the page
    shows its 20 (search page size) whatever the number of matches. Rows are added in bulk, so the index is
    rebuilt from the database after each growth."""
    from marketplace.search.cli import rebuild_index

    with app.app_context():
        # Posts spread over 25 items each, so a page of results names many items.
        failures = bulk_items(_org(world), 25, kind="failure", title="Failure")
        challenges = bulk_items(_org(world), 25, title="Challenge")
        db.session.commit()

    def grow(have, n):
        k = n - have
        bulk_items(_org(world), k // 3, title="Widget challengeword", body="Widget body text.")
        for j, item_id in enumerate(failures):
            if len(range(j, k // 3, 25)):
                bulk_comments(item_id, world["owner"], len(range(j, k // 3, 25)), body="Widget commentword")
        for j, item_id in enumerate(challenges):
            if len(range(j, k - 2 * (k // 3), 25)):
                bulk_questions(item_id, world["contributor"], world["owner"], len(range(j, k - 2 * (k // 3), 25)),
                               body="Widget questionword?")
        db.session.commit()
        rebuild_index(procs=1)

    sign_in_client(client, app, world["contributor"])
    counts = measure(app, client, f"/search?q={word}&sort=newest", grow)
    assert_bounded(counts)
    shown = client.get(f"/api/search?q={word}&sort=newest").get_json()
    assert shown["total"] >= 300 and len(shown["results"]) == 20, shown["total"]


def test_moderation_queue_with_n_reports(app, client, world):
    """Open reports on items, comments and questions of different items; the queue shows
    its first page (PAGE_SIZE) whatever the number of reports."""
    from marketplace.models.moderation import Report

    def grow(have, n):
        k = n - have
        org = _org(world)
        failures = bulk_items(org, k // 2 or 1, kind="failure", title="Reported failure")
        comment_ids = []
        for f in failures[: max(1, k // 4)]:
            comment_ids += bulk_comments(f, world["owner"], 1, body="Reported comment")
        challenges = bulk_items(org, k // 4 or 1, title="Reported challenge")
        rows = [{"target_type": "failure", "target_id": i, "org_id": org.id, "context_item_id": i,
                 "context_kind": "failure", "is_discussion": False} for i in failures]
        rows += [{"target_type": "challenge", "target_id": i, "org_id": org.id, "context_item_id": i,
                  "context_kind": "challenge", "is_discussion": False} for i in challenges]
        rows += [{"target_type": "comment", "target_id": c, "org_id": org.id, "context_item_id": f,
                  "context_kind": "failure", "is_discussion": True} for c, f in zip(comment_ids, failures)]
        now = _now()
        db.session.execute(insert(Report), [dict(r, reporter_id=world["contributor"], category="spam",
                                                 note="Looks wrong.", created_at=now, status="open")
                                            for r in rows])

    sign_in_client(client, app, world["moderator"])
    counts = measure(app, client, "/moderation/", grow)
    assert_bounded(counts)


# --------------------------------------------------------------------------- dashboards (issue 11)


def test_dashboard_and_transparency_with_n_challenges_and_questions(app, client, world):
    """The organisation's dashboard and the public transparency page aggregate in SQL: the
    same queries with 10 or 1,000 challenges (each with Q&A)."""
    sign_in_client(client, app, world["owner"])
    with app.app_context():
        slug = _org(world).slug

    def grow(have, n):
        for cid in bulk_items(_org(world), n - have, title="Challenge"):
            bulk_questions(cid, world["contributor"], world["owner"], 1)

    assert_bounded(measure(app, client, f"/orgs/{slug}/dashboard", grow))
    assert_bounded(measure(app, client, "/transparency", lambda have, n: bulk_items(_org(world), n - have)))


def test_governance_events_with_n_events(app, client, world):
    from marketplace import audit

    sign_in_client(client, app, world["owner"])
    with app.app_context():
        item_id = bulk_items(_org(world), 1, kind="failure")[0]
        slug = _org(world).slug
        db.session.commit()

    def grow(have, n):
        for _ in range(n - have):
            audit.record("item.visibility_changed", "failure", item_id, actor_id=world["owner"], item_id=item_id,
                         data={"from": "public", "to": "registered"})

    assert_bounded(measure(app, client, f"/orgs/{slug}/governance", grow))

# --------------------------------------------------------------------------- paginated threads and lists (issue 16)


def bulk_replies(item_id: int, author_id: int, parents: list[int], hidden_every: int = 0) -> None:
    now = _now()
    db.session.execute(insert(Comment), [
        {"item_id": item_id, "author_id": author_id, "parent_id": p, "body": "A reply.", "body_html": "<p>A reply.</p>",
         "created_at": now, "hidden_at": now if hidden_every and k % hidden_every == 0 else None}
        for k, p in enumerate(parents)])


@pytest.mark.parametrize("viewer", ["contributor", "owner", "anonymous"])
@pytest.mark.parametrize("where", ["", "?page=2", "last"])
def test_discussion_pages_with_n_threads_and_replies(app, client, world, viewer, where):
    """Top-level comments each with a reply (some hidden: tombstones), some deleted with a
    reply: every page of the discussion, and the permalink to the newest reply."""
    with app.app_context():
        failure_id = bulk_items(_org(world), 1, kind="failure", title="Failure")[0]
        db.session.commit()
    newest: list[int] = []

    def grow(have, n):
        from sqlalchemy import update

        tops = bulk_comments(failure_id, world["owner"], n - have)
        bulk_replies(failure_id, world["contributor"], tops, hidden_every=5)
        db.session.execute(update(Comment).where(Comment.id.in_(tops[::7])).values(deleted_at=_now()))
        newest[:] = [db.session.execute(select(Comment.id).order_by(Comment.id.desc())).scalar()]

    if viewer != "anonymous":
        sign_in_client(client, app, world[viewer])
    counts: dict[int, int] = {}
    have = 0
    for n in SIZES:
        with app.app_context():
            grow(have, n)
            db.session.commit()
        have = n
        url = f"/failures/{failure_id}" + (f"?post=comment-{newest[0]}" if where == "last" else where)
        client.get(url)
        counts[n] = queries(app, client, url)
    assert_bounded(counts)


@pytest.mark.parametrize("viewer", ["contributor", "owner", "anonymous"])
@pytest.mark.parametrize("where", ["", "?page=2&waiting_page=2"])
def test_qa_pages_with_n_questions_half_waiting(app, client, world, viewer, where):
    """Half the questions answered; the contributor asked them all, so they see their own
    waiting questions (with their edit and delete links), the owner sees every one."""
    with app.app_context():
        challenge_id = bulk_items(_org(world), 1, title="Challenge")[0]
        db.session.commit()

    def grow(have, n):
        k = n - have
        bulk_questions(challenge_id, world["contributor"], world["owner"], k - k // 2)
        now = _now()
        db.session.execute(insert(Question), [{"item_id": challenge_id, "author_id": world["contributor"],
                                               "body": f"Waiting {i}?", "body_html": "<p>Waiting?</p>",
                                               "show_name": True, "created_at": now} for i in range(k // 2)])

    if viewer != "anonymous":
        sign_in_client(client, app, world[viewer])
    counts = measure(app, client, f"/challenges/{challenge_id}{where}", grow)
    assert_bounded(counts)


@pytest.mark.parametrize("what", ["questions", "comments"])
def test_api_thread_lists(app, client, world, what):
    with app.app_context():
        kind = "challenge" if what == "questions" else "failure"
        item_id = bulk_items(_org(world), 1, kind=kind, title="Thread")[0]
        db.session.commit()

    def grow(have, n):
        if what == "questions":
            bulk_questions(item_id, world["contributor"], world["owner"], n - have)
        else:
            bulk_comments(item_id, world["owner"], n - have)

    sign_in_client(client, app, world["contributor"])
    counts = measure(app, client, f"/api/v1/items/{item_id}/{what}", grow)
    assert_bounded(counts)


def test_api_notifications(app, client, world):
    def grow(have, n):
        db.session.execute(insert(Notification), [
            {"user_id": world["contributor"], "kind": "engagement.comment", "message": f"Something {i}.",
             "url": "/", "created_at": _now()} for i in range(have, n)])

    sign_in_client(client, app, world["contributor"])
    counts = measure(app, client, "/api/v1/me/notifications", grow)
    assert_bounded(counts)


@pytest.mark.parametrize("per_page", [10, 100])
def test_search_page_at_10_and_100_results_per_page(app, client, world, per_page):
    """Items, questions and comments matching, more than a page of each."""
    from marketplace.search.cli import rebuild_index

    with app.app_context():
        failure = bulk_items(_org(world), 1, kind="failure", title="Failure")[0]
        challenge = bulk_items(_org(world), 1, title="Challenge")[0]
        db.session.commit()

    def grow(have, n):
        k = n - have
        bulk_items(_org(world), k // 3, title="Widget item", body="Widget body text.")
        bulk_comments(failure, world["owner"], k // 3, body="Widget comment")
        bulk_questions(challenge, world["contributor"], world["owner"], k - 2 * (k // 3), body="Widget question?")
        db.session.commit()
        rebuild_index(procs=1)

    sign_in_client(client, app, world["contributor"])
    counts = measure(app, client, f"/search?q=widget&per_page={per_page}", grow)
    assert_bounded(counts)


def _ideas_world(app, world):
    """A challenge with terms and one idea by the contributor, cloned in bulk as `grow`
    (half of them by the contributor, half by the owner's colleague)."""
    from marketplace.models import Idea, IdeaAuthor, User

    with app.app_context():
        ideas = IdeaFactories(None)
        owner = db.session.get(User, world["owner"])
        ch = db.session.get(Item, bulk_items(_org(world), 1, title="Idea challenge")[0])
        ideas.set_terms(owner, ch, confidentiality="open")
        ideas.set_rules(owner, ch)
        db.session.commit()
        template = ideas.submit(db.session.get(User, world["contributor"]), ch)
        columns = {c.key: getattr(template, c.key) for c in Idea.__table__.columns if c.key != "id"}
        author = db.session.execute(select(IdeaAuthor).where(IdeaAuthor.idea_id == template.id)).scalar_one()
        author_cols = {c.key: getattr(author, c.key) for c in IdeaAuthor.__table__.columns
                       if c.key not in ("id", "idea_id")}
        ch_id = ch.id

    def grow(have, n):
        first = (db.session.execute(select(Idea.id).order_by(Idea.id.desc())).scalar() or 0) + 1
        k = n - have - (1 if have == 0 else 0)
        db.session.execute(insert(Idea), [dict(columns, title=f"Idea {have + i}",
                                               submission_key=f"bulk-{have}-{i}") for i in range(k)])
        new = db.session.execute(select(Idea.id).where(Idea.id >= first)).scalars().all()
        db.session.execute(insert(IdeaAuthor), [dict(author_cols, idea_id=i) for i in new])

    return ch_id, grow


@pytest.mark.parametrize("page", ["ideas", "review", "mine", "api"])
def test_ideas_lists_with_n_ideas(app, client, world, page):
    ch_id, grow = _ideas_world(app, world)
    url, who = {"ideas": (f"/challenges/{ch_id}/ideas", "contributor"),
                "review": (f"/challenges/{ch_id}/review", "owner"),
                "mine": ("/ideas/mine", "contributor"),
                "api": (f"/api/v1/ideas?challenge_id={ch_id}", "contributor")}[page]
    sign_in_client(client, app, world[who])
    counts = measure(app, client, url, grow)
    assert_bounded(counts)


@pytest.mark.parametrize("failures_only", [False, True])
def test_mail_log_with_n_mails(app, client, world, failures_only):
    from marketplace.models import OutgoingMail, User

    with app.app_context():
        u = db.session.get(User, world["moderator"])
        u.site_role = "admin"
        db.session.commit()

    def grow(have, n):
        db.session.execute(insert(OutgoingMail), [
            {"to_email": f"someone{i}@example.test", "subject": f"Mail {i}", "body": "Body", "kind": "engagement",
             "status": "failed" if i % 2 else "sent", "last_error": "refused" if i % 2 else None,
             "about_type": "items", "about_id": 1, "created_at": _now()} for i in range(have, n)])

    sign_in_client(client, app, world["moderator"])
    counts = measure(app, client, "/mail/failures" if failures_only else "/notifications/mail-log", grow)
    assert_bounded(counts)


# --------------------------------------------------------------------------- many authors


def bulk_authors(n: int, tag: str) -> list[int]:
    """`n` accounts (one per post, so the identity map cannot hide a per-author query)."""
    first = (db.session.execute(select(User.id).order_by(User.id.desc()).limit(1)).scalar() or 0) + 1
    db.session.execute(insert(User), [{"email": f"{tag}{first + i}@authors.test", "display_name": f"Author {first + i}",
                                       "password_hash": "!", "created_at": _now()} for i in range(n)])
    return list(db.session.execute(select(User.id).where(User.id >= first).order_by(User.id)).scalars())


@pytest.mark.parametrize("viewer", ["contributor", "anonymous"])
def test_threads_by_many_authors(app, client, world, viewer):
    """Every post by its own author, shown by name: the discussion and the Q&A pages load
    their authors with the page's posts, not one query per author."""
    with app.app_context():
        failure_id = bulk_items(_org(world), 1, kind="failure", title="Failure")[0]
        challenge_id = bulk_items(_org(world), 1, title="Challenge")[0]
        db.session.commit()

    def grow(have, n):
        now = _now()
        authors = bulk_authors(n - have, "c")
        db.session.execute(insert(Comment), [{"item_id": failure_id, "author_id": a, "body": "Said.",
                                              "body_html": "<p>Said.</p>", "created_at": now} for a in authors])
        askers = bulk_authors(n - have, "q")
        db.session.execute(insert(Question), [{"item_id": challenge_id, "author_id": a, "body": "Asked?",
                                               "body_html": "<p>Asked?</p>", "show_name": True, "created_at": now}
                                              for a in askers])
        qids = db.session.execute(select(Question.id).where(Question.item_id == challenge_id,
                                                            ~Question.id.in_(select(Answer.question_id)))).scalars().all()
        answerers = bulk_authors(len(qids), "a")
        db.session.execute(insert(Answer), [{"question_id": q, "item_id": challenge_id, "author_id": a,
                                             "body": "Answered.", "body_html": "<p>Answered.</p>", "created_at": now}
                                            for q, a in zip(qids, answerers)])

    if viewer != "anonymous":
        sign_in_client(client, app, world[viewer])
    counts = {"failure": {}, "challenge": {}}
    have = 0
    for n in SIZES:
        with app.app_context():
            grow(have, n)
            db.session.commit()
        have = n
        for kind, item_id in (("failure", failure_id), ("challenge", challenge_id)):
            url = f"/{kind}s/{item_id}"
            client.get(url)
            counts[kind][n] = queries(app, client, url)
    assert_bounded(counts["failure"])
    assert_bounded(counts["challenge"])
