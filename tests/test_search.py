"""Search shows only what the searcher may see: results, counts, facets, snippets and
suggestions, for every kind of viewer; narrowing changes take effect before the change is
reported saved; grants expiring or revoked and list places ending take effect at once;
any query string gives a normal page.

The index is real (Whoosh in a temporary folder) and so is the outbox: SEARCH_WORKER is
"sync" in tests, and some tests switch the writer off to prove the query-time filters.
Every test runs with both Whoosh query engines (SEARCH_ENGINE=fast and SEARCH_ENGINE=whoosh)
and with the PostgreSQL backend (SEARCH_BACKEND=postgres, on a database of its own on the
server the suite starts; tests/search_backends.py): the site must work the same with each.
"""
from __future__ import annotations

import itertools
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update

from marketplace import policy
from marketplace.extensions import db
from marketplace.models import Item, SearchOutbox, User, utcnow
from marketplace.search import get_backend, get_runtime, service
from marketplace.search.documents import epoch, principals_for
from marketplace.search.sources import item_document

from .factories import sign_in_client
from .factories_foundation import KINDS, PROFILES, STATUSES, VISIBILITIES, World, expected
from .search_backends import SEARCH_VARIANTS, dispose_search_app, make_search_app

CELLS = list(itertools.product(VISIBILITIES, STATUSES, (False, True)))


@pytest.fixture(params=SEARCH_VARIANTS)
def app(request, tmp_path, unavailable):
    """conftest's `app`, once per search backend and Whoosh query engine."""
    app = make_search_app(request.param, tmp_path, unavailable)
    yield app
    dispose_search_app(app)


def found(user, q: str, **kw) -> set[int]:
    return {h.id for h in service.search(user, q, per_page=100, **kw).hits}


@contextmanager
def writer_stopped(app):
    """No writer applies the outbox meanwhile (as if it were busy or down)."""
    runtime = get_runtime(app)
    runtime.apply_now(wait=True)  # the index is up to date, then the writer stops
    mode = runtime.mode
    runtime.mode = "off"
    try:
        yield
    finally:
        runtime.mode = mode


# --------------------------------------------------------------------------- the matrix


@pytest.fixture(scope="module", params=SEARCH_VARIANTS)
def matrix(request, tmp_path_factory, unavailable):
    app = make_search_app(request.param, tmp_path_factory.mktemp("search-matrix"), unavailable)
    with app.app_context():
        world = World()
        cells = {}
        for n, (vis, status, hidden) in enumerate(CELLS):
            item = world.add_item(kind=KINDS[n % 3], visibility=vis, status=status, hidden=hidden,
                                  title=f"Zebrafish cell {vis} {status} {'hidden' if hidden else 'shown'}")
            cells[item.id] = (vis, status, hidden)
        user_ids = {name: u.id for name, u in world.users.items()}
    yield app, cells, user_ids
    dispose_search_app(app)


@pytest.mark.parametrize("profile", list(PROFILES))
def test_results_counts_and_facets_match_the_rules(matrix, profile):
    app, cells, user_ids = matrix
    with app.app_context():
        user = db.session.get(User, user_ids[profile]) if profile in user_ids else None
        want = {iid for iid, spec in cells.items() if expected(PROFILES[profile], *spec, "view")}
        page = service.search(user, "zebrafish", per_page=100)
        got = {h.id for h in page.hits}
        assert got == want, f"{profile}: extra {sorted(got - want)}, missing {sorted(want - got)}"
        assert page.total == len(want)
        facets = {f.field: {v.value: v.count for v in f.values} for f in page.facets}
        kinds = {}
        for iid in want:
            kind = db.session.get(Item, iid).kind
            kinds[kind] = kinds.get(kind, 0) + 1
        assert facets.get("kind", {}) == kinds
        statuses = {}
        for iid in want:
            st = cells[iid][1]
            statuses[st] = statuses.get(st, 0) + 1
        assert facets.get("status", {}) == statuses
        # Filters narrow within what is visible, and never reveal more.
        for st in STATUSES:
            assert found(user, f"zebrafish status:{st}") == {i for i in want if cells[i][1] == st}


@pytest.mark.parametrize("profile", ["anonymous", "outsider", "member", "granted", "expired_grant"])
def test_the_json_api_agrees_with_the_page(matrix, profile):
    app, cells, user_ids = matrix
    client = app.test_client()
    if profile != "anonymous":
        sign_in_client(client, app, user_ids[profile])
    data = client.get("/api/search?q=zebrafish&per_page=100").get_json()
    want = {iid for iid, spec in cells.items() if expected(PROFILES[profile], *spec, "view")}
    assert {r["id"] for r in data["results"]} == want
    assert data["total"] == len(want)
    assert sum(v["count"] for v in data["facets"].get("kind", [])) == len(want)


def test_bulk_principals_match_the_one_item_rule(matrix):
    app, cells, user_ids = matrix
    with app.app_context():
        items = [db.session.get(Item, i) for i in cells]
        now = utcnow()
        many = policy.item_doc_principals_many(items, now)
        for item in items:
            assert many[item.id] == (policy.item_doc_principals(item, now),
                                     policy.item_principals_valid_until(item, now)), item.title


def test_bulk_principals_know_when_grants_expire(app, f):
    owner, a, b = f.make_user(), f.make_user(), f.make_user()
    org = f.make_org(owner=owner)
    item = f.make_item(org, visibility="invited")
    soon, later = utcnow() + timedelta(hours=1), utcnow() + timedelta(days=2)
    f.grant(item, user=a, expires_at=later)
    f.grant(item, user=b, expires_at=soon)
    f.grant(item, org=f.make_org(), expires_at=utcnow() - timedelta(days=1))
    now = utcnow()
    got = policy.item_doc_principals_many([item], now)[item.id]
    assert got == (policy.item_doc_principals(item, now), policy.item_principals_valid_until(item, now))
    assert abs((got[1] - soon).total_seconds()) < 1


# --------------------------------------------------------------------------- narrowing and lapses


def test_narrowing_is_effective_before_the_writer_runs(app, f):
    owner = f.make_user()
    org = f.make_org(owner=owner)
    item = f.make_item(org, title="Hydrogen valve leak", visibility="public")
    assert found(None, "hydrogen") == {item.id}
    with writer_stopped(app):
        item.visibility = "organisation"
        db.session.commit()  # the service would now report "saved"
        assert db.session.execute(select(func.count(SearchOutbox.id))).scalar() >= 1
        page = service.search(None, "hydrogen")
        assert page.total == 0 and page.hits == []
        assert all(f_.values == [] or sum(v.count for v in f_.values) == 0 for f_ in page.facets)
        assert found(owner, "hydrogen") == {item.id}  # members still find it
    # Once applied, the index itself is narrowed and the outbox is empty.
    get_runtime(app).apply_now(wait=True)
    assert db.session.execute(select(func.count(SearchOutbox.id))).scalar() == 0
    assert found(None, "hydrogen") == set()


def test_hiding_and_drafting_take_effect_at_once(app, f):
    owner, outsider = f.make_user(), f.make_user()
    org = f.make_org(owner=owner)
    a = f.make_item(org, title="Corrosion under insulation")
    b = f.make_item(org, title="Corrosion in pipelines")
    with writer_stopped(app):
        a.hidden_at = utcnow()
        b.status = "draft"
        db.session.commit()
        assert found(outsider, "corrosion") == set()
        assert found(owner, "corrosion") == {a.id, b.id}  # hidden: members; draft: admins


def test_revoking_a_grant_takes_effect_at_once(app, f):
    owner, guest = f.make_user(), f.make_user()
    org = f.make_org(owner=owner)
    item = f.make_item(org, title="Confidential turbine bearing failure", visibility="invited")
    grant = f.grant(item, user=guest)
    assert found(guest, "turbine") == {item.id}
    with writer_stopped(app):
        grant.revoked_at = utcnow()
        db.session.commit()
        assert found(guest, "turbine") == set()
        assert service.search(guest, "turbine").total == 0


def index_as_of(app, item, moment) -> None:
    """Write the item's document as the writer computed it at `moment`: the clock injected
    through the policy's `now` (principals_for), so the index is as it was then and nothing
    has been written since. Call it with the writer stopped, or the next sweep replaces it."""
    get_backend(app).apply([item_document(item, principals_for(item, now=moment))], [])


def test_an_expiring_grant_takes_effect_without_any_write(app, f):
    owner, guest = f.make_user(), f.make_user()
    org = f.make_org(owner=owner)
    item = f.make_item(org, title="Membrane fouling in desalination", visibility="invited")
    expiry = utcnow() - timedelta(minutes=1)
    f.grant(item, user=guest, expires_at=expiry)
    earlier = expiry - timedelta(hours=1)  # when the grant was active, and the index last written
    assert principals_for(item, now=earlier) == (tuple(sorted(("staff", f"org:{org.id}", f"user:{guest.id}"))),
                                                 expiry)
    key, backend = f"item:{item.id}", get_backend(app)
    with writer_stopped(app):
        index_as_of(app, item, earlier)
        # The index still names the guest, and knows the moment that stops being true.
        assert backend.shown_keys([key], policy.principals(guest)) == [key]
        assert key not in backend.stale_keys(epoch(expiry) - 1) and key in backend.stale_keys(epoch(expiry))
        assert db.session.execute(select(func.count(SearchOutbox.id))).scalar() == 0
        # Nothing was written: the query-time re-check of lapsed grants hides it.
        assert found(guest, "desalination") == set()
        assert service.search(guest, "desalination").total == 0
    # The writer's sweep reindexes documents whose principals lapsed by the clock.
    get_runtime(app).apply_now(wait=True)
    assert backend.shown_keys([key], policy.principals(guest)) == []
    assert found(owner, "desalination") == {item.id}


def test_an_expiring_org_grant_and_list_place_take_effect(app, f):
    owner, member, listed = f.make_user(), f.make_user(), f.make_user()
    org = f.make_org(owner=owner)
    partner = f.make_org(members=(member,))
    cluster = f.make_org(kind="cluster")
    item = f.make_item(org, title="Gearbox vibration signatures", visibility="invited")
    expiry = utcnow() - timedelta(minutes=1)
    f.grant(item, org=partner, expires_at=expiry)
    lst = f.make_list(cluster)
    place = f.add_to_list(lst, user=listed)
    f.attach_list(item, lst)
    assert found(listed, "gearbox") == {item.id}
    key, backend = f"item:{item.id}", get_backend(app)
    with writer_stopped(app):
        index_as_of(app, item, expiry - timedelta(hours=1))  # while the partner's grant was active
        assert backend.shown_keys([key], policy.principals(member)) == [key]
        assert found(member, "gearbox") == set() and service.search(member, "gearbox").total == 0
        place.removed_at = utcnow()  # removal from the list: the viewer's principals change
        db.session.commit()
        assert found(listed, "gearbox") == set()
    get_runtime(app).apply_now(wait=True)
    assert backend.shown_keys([key], policy.principals(member)) == []


def test_detaching_a_list_takes_effect_at_once(app, f):
    owner, listed = f.make_user(), f.make_user()
    org = f.make_org(owner=owner)
    lst = f.make_list(f.make_org(kind="cluster"))
    f.add_to_list(lst, user=listed)
    item = f.make_item(org, title="Seaweed packaging trial", visibility="invited")
    link = f.attach_list(item, lst)
    assert found(listed, "seaweed") == {item.id}
    with writer_stopped(app):
        db.session.delete(link)
        db.session.commit()
        assert found(listed, "seaweed") == set()


def test_bulk_update_statements_queue_narrowing_jobs(app, f):
    owner = f.make_user()
    org = f.make_org(owner=owner)
    item = f.make_item(org, title="Kiln exhaust heat recovery")
    assert found(None, "kiln") == {item.id}
    with writer_stopped(app):
        db.session.execute(update(Item).where(Item.org_id == org.id).values(visibility="organisation"))
        db.session.commit()
        assert db.session.execute(
            select(SearchOutbox.narrowing).where(SearchOutbox.doc_id == item.id, SearchOutbox.doc_type == "item")
        ).scalars().all() == [True]
        assert found(None, "kiln") == set()


def test_new_content_is_searchable_after_commit(app, f):
    owner = f.make_user()
    org = f.make_org(owner=owner)
    item = f.make_item(org, title="Ultrasonic weld inspection")
    assert found(None, "ultrasonic") == {item.id}
    item.title = "Eddy current weld inspection"
    db.session.commit()
    assert found(None, "ultrasonic") == set()
    assert found(None, '"eddy current"') == {item.id}
    db.session.delete(item)
    db.session.commit()
    assert found(None, "eddy") == set()


# --------------------------------------------------------------------------- what is (not) indexed


def test_private_fields_are_never_indexed(app, f):
    owner = f.make_user(email="secret.person@hidden-domain.test", name="Zelda Quux")
    org = f.make_org(owner=owner)
    item = f.make_item(org, title="Sensor drift", created_by=owner)
    item.hidden_reason = "moderationnote confidential"
    db.session.commit()
    assert found(owner, "hidden-domain") == set()
    assert found(owner, "secret.person") == set()
    assert found(owner, "moderationnote") == set()
    stored = get_backend(app).stored_documents()
    if app.config["SEARCH_BACKEND"] == "postgres":
        # Rows hold the facet values, principals and the tsvector of the public text.
        assert stored and all(set(s) == {"key", "digest", "kind", "status", "org", "tags", "principals", "text",
                                         "created", "deadline", "stale_at"} for s in stored)
        dumped = repr(stored).lower()
        assert not any(w in dumped for w in ("secret", "hidden-domain", "moderationnote", "zelda", "quux"))
    else:
        assert stored and all(set(s) <= {"key", "digest"} for s in stored)


def test_snippets_highlight_and_escape(app, f):
    owner = f.make_user()
    org = f.make_org(owner=owner)
    f.make_item(org, title="<script>alert(1)</script> pump cavitation",
                body="Cavitation damages the **impeller**. <img src=x onerror=alert(1)>")
    page = service.search(None, "cavitation")
    hit = page.hits[0]
    assert "<mark>cavitation</mark>" in str(hit.title_html)
    assert "<script>" not in str(hit.title_html) and "&lt;script&gt;" in str(hit.title_html)
    assert "<img" not in str(hit.snippet) and "<mark>Cavitation</mark>" in str(hit.snippet)
    html = app.test_client().get("/search?q=cavitation").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html and "<mark>cavitation</mark>" in html


def test_suggestions_come_only_from_visible_documents(app, f):
    owner, outsider = f.make_user(), f.make_user()
    org = f.make_org(owner=owner)
    f.make_item(org, title="Xylophone resonance test rig", visibility="organisation")
    assert service.search(outsider, "xylophon").suggestion is None
    assert service.search(None, "xylophon").suggestion is None
    assert service.search(owner, "xylophon").suggestion == "xylophone"
    f.make_item(org, title="Public xylophone", visibility="public")
    assert service.search(outsider, "xylophon").suggestion == "xylophone"


def test_facets_and_filters(app, f):
    owner = f.make_user()
    org = f.make_org(owner=owner)
    other = f.make_org()
    f.make_item(org, kind="challenge", title="Graphene anode", tags=("batteries", "materials"))
    f.make_item(org, kind="failure", title="Graphene coating peeled", tags=("materials",))
    f.make_item(other, kind="asset", title="Graphene lab", tags=("batteries",), status="closed")
    f.make_item(other, kind="asset", title="Graphene secret", visibility="organisation")
    page = service.search(None, "graphene")
    assert page.total == 3
    facets = {f_.field: {v.value: v.count for v in f_.values} for f_ in page.facets}
    assert facets["kind"] == {"challenge": 1, "failure": 1, "asset": 1}
    assert facets["tags"] == {"batteries": 2, "materials": 2}
    assert facets["org"] == {org.slug: 2, other.slug: 1}
    assert facets["status"] == {"open": 2, "closed": 1}
    assert len(found(None, "graphene type:asset")) == 1
    assert len(found(None, "graphene tag:materials")) == 2
    assert len(found(None, f"graphene org:{org.slug}")) == 2
    assert len(found(None, "graphene -type:challenge")) == 2
    assert len(found(None, "graphene type:failure type:challenge")) == 2
    assert len(found(None, "graphene org:no-such-org")) == 0
    assert len(found(None, "type:asset")) == 1  # filters alone
    link = next(v for f_ in page.facets if f_.field == "kind" for v in f_.values if v.value == "asset")
    assert found(None, link.query) == found(None, "graphene type:asset")


def test_sorting_and_paging(app, f):
    owner = f.make_user()
    org = f.make_org(owner=owner)
    now = utcnow()
    ids = []
    for n in range(25):
        item = f.make_item(org, title=f"Lidar calibration {n}", deadline=now + timedelta(days=50 - n))
        item.published_at = now - timedelta(hours=n)
        ids.append(item.id)
    db.session.commit()
    newest = service.search(None, "lidar", sort="newest", per_page=10)
    assert newest.total == 25 and newest.pages == 3
    assert [h.id for h in newest.hits] == ids[:10]
    deadline = service.search(None, "lidar", sort="deadline", per_page=10, page=3)
    assert [h.id for h in deadline.hits] == list(reversed(ids))[20:]
    relevance = service.search(None, "lidar calibration", per_page=30)
    assert {h.id for h in relevance.hits} == set(ids)


def test_relevance_prefers_title_matches(app, f):
    owner = f.make_user()
    org = f.make_org(owner=owner)
    body_only = f.make_item(org, title="Robot arm", body="Mentions the word flywheel once among many others "
                            "about arms and grippers and vision systems.")
    in_title = f.make_item(org, title="Flywheel energy storage", body="Storage of energy.")
    assert [h.id for h in service.search(None, "flywheel").hits] == [in_title.id, body_only.id]


# --------------------------------------------------------------------------- malformed queries

MALFORMED = [
    "(((", ")))", "content:*", "title:[a TO z]", "x" * 10_000, "a" * 200 + " " + "b " * 3000, '"', '"unclosed phrase',
    "OR", "OR OR OR", "-", "--", "- -", "type:", "tag:", "type:nonsense", "status:", "org:", 'org:"', "*", "?",
    "\x00\x01", "%00", "' OR 1=1 --", "<script>alert(1)</script>", "unknown:field value", "TO", "NOT AND",
    "title:(a OR b)^3", "a~2 b^4 c*", "ümlaut café naïve", "🙂🙂", "\\", "{}[]", "tag:" + "x" * 500,
    # NUL bytes and quotes inside filters and words (PostgreSQL text cannot hold a NUL).
    'status:"op\x00en"', "org:a\x00b", "tag:\x00", "type:\x00", "-status:\x00x", "-org:\x00", "content\x00title",
    "'\"\\", ')(\\"\'', "\\' OR '1'='1", '"a\\" b"', "pump & !cell | (x <-> y):*", "'content':* & 'title'",
]


@pytest.mark.parametrize("q", MALFORMED)
def test_malformed_queries_give_a_normal_page(app, client, f, q):
    owner = f.make_user()
    f.make_item(f.make_org(owner=owner), title="Content title field")
    resp = client.get("/search", query_string={"q": q})
    assert resp.status_code == 200
    assert b"Search" in resp.data
    api = client.get("/api/search", query_string={"q": q})
    assert api.status_code == 200 and "total" in api.get_json()


def test_unknown_fields_are_plain_words_not_field_queries(app, f):
    owner = f.make_user()
    item = f.make_item(f.make_org(owner=owner), title="Content about title design")
    assert found(None, "content:*") == {item.id}   # the word "content"
    assert found(None, "title:[a TO z]") == {item.id}  # "title"; "a", "to" are stop words, "z" too short


def test_bad_paging_and_sort_arguments(client, app, f):
    f.make_item(f.make_org(owner=f.make_user()), title="Pump")
    for qs in ({"q": "pump", "page": "x"}, {"q": "pump", "page": "-5"}, {"q": "pump", "page": "99999"},
               {"q": "pump", "sort": "drop table"}, {"q": "pump", "per_page": "0"}, {"q": "pump", "per_page": "9999"}):
        assert client.get("/search", query_string=qs).status_code == 200
        assert client.get("/api/search", query_string=qs).status_code == 200


def test_header_box_points_to_the_search_page(client):
    html = client.get("/").get_data(as_text=True)
    assert 'action="/search"' in html


def test_outbox_rows_commit_and_roll_back_with_the_change(app, f):
    from marketplace.models import Challenge

    owner = f.make_user()
    org = f.make_org(owner=owner)
    with writer_stopped(app):
        before = db.session.execute(select(func.count(SearchOutbox.id))).scalar()
        kept = f.make_item(org, title="Committed")
        db.session.add(Challenge(org_id=org.id, title="Rolled back", visibility="public", status="open"))
        db.session.flush()
        db.session.rollback()
        rows = db.session.execute(select(SearchOutbox.doc_type, SearchOutbox.doc_id)).all()
    assert len(rows) == before + 1
    assert ("item", kept.id) in [tuple(r) for r in rows]


def test_raw_sql_changes_are_reported_by_verify(app, f, runner):
    owner = f.make_user()
    item = f.make_item(f.make_org(owner=owner), title="Drift")
    service.search(None, "drift")
    db.session.execute(text("UPDATE items SET title = 'Changed behind our back' WHERE id = :i"), {"i": item.id})
    db.session.commit()
    result = runner.invoke(args=["search", "verify"])
    assert result.exit_code == 1
    assert f"item:{item.id}" in result.output

