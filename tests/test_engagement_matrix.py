"""The engagement policy matrix: each action (ask, comment, request) x each participation rule
x each visibility level x each kind of viewer, through the policy, the services and the
pages; and the three faces of the view rules (can, visible(), search principals) agree for
questions, answers, comments and requests in every state."""
from __future__ import annotations

import itertools

import pytest
from sqlalchemy import select

from marketplace import policy
from marketplace.extensions import db
from marketplace.models.engagement import Answer, AssetRequest, Comment, Question
from marketplace.services import engagement as svc
from marketplace.services.common import ServiceError

from .factories_engagement import (
    ACTIONS,
    KIND_FOR,
    PARTICIPATION,
    ROW_MODEL,
    RULE_FIELD,
    VISIBILITIES,
    EngagementWorld,
    count,
    do,
    expected,
)

CELLS = list(itertools.product(VISIBILITIES, PARTICIPATION))


def _build(f, action):
    w = EngagementWorld(f)
    items = {}
    for vis, rule in CELLS:
        items[(vis, rule)] = w.item(KIND_FOR[action], vis, {RULE_FIELD[action]: rule},
                                    title=f"{action} {vis}/{rule}")
    return w, items


def _names_rule(msg: str) -> bool:
    return "(rule: " in msg or "Sign in" in msg or "owns this asset" in msg


@pytest.mark.parametrize("action", ACTIONS)
def test_policy_and_services_follow_the_participation_rules(f, action):
    w, items = _build(f, action)
    wrong = []
    for (vis, rule), item in items.items():
        for viewer, user in w.users.items():
            want = expected(viewer, vis, rule, action)
            label = f"{viewer} {action} on {vis} with rule {rule}"
            got = policy.can(user, action, item)
            if got is not (want == "ok"):
                wrong.append(f"{label}: can() said {got}, expected {want}")
            if want == "refused":
                why = {"ask": policy.ask_refusal, "comment": policy.discussion_refusal,
                       "request": policy.asset_request_refusal}[action](policy.viewer_for(user), item)
                if not why or not _names_rule(why):
                    wrong.append(f"{label}: refusal message does not name the rule: {why!r}")
            if user is None:
                continue
            before = count(ROW_MODEL[action], item_id=item.id)
            try:
                do(action, user, item)
                outcome = "ok"
            except ServiceError as e:
                outcome = {404: "hidden", 403: "refused"}.get(e.status, f"status {e.status}")
            after = count(ROW_MODEL[action], item_id=item.id)
            if outcome != want:
                wrong.append(f"{label}: service gave {outcome}, expected {want}")
            if after - before != (1 if outcome == "ok" else 0):
                wrong.append(f"{label}: {after - before} rows written")
    assert wrong == []


ROUTES = {
    "ask": ("/engage/challenges/{id}/ask", lambda item: {"body": "A clarifying question?"}),
    "comment": ("/engage/failures/{id}/comment", lambda item: {"body": "We hit this too."}),
    "request": ("/engage/assets/{id}/request", lambda item: {
        "kind": "licence", "message": "We would like a licence.", "on_behalf_of": "",
        "terms_version": str(svc.current_terms(item).version), "terms_digest": svc.current_terms(item).digest}),
}


@pytest.mark.parametrize("action", ACTIONS)
def test_pages_enforce_the_participation_rules(f, client, auth, action):
    """The same matrix through HTTP: 404 for what one may not see, 403 naming the rule, a
    redirect and one row when allowed; the detail page shows the reason up front."""
    w, items = _build(f, action)
    path, data_for = ROUTES[action]
    wrong = []
    for viewer, user in w.users.items():
        if user is not None:
            assert auth.login(user.email).status_code == 302
        for (vis, rule), item in items.items():
            want = expected(viewer, vis, rule, action)
            label = f"{viewer} {action} on {vis} with rule {rule}"
            before = count(ROW_MODEL[action], item_id=item.id)
            r = client.post(path.format(id=item.id), data=data_for(item))
            after = count(ROW_MODEL[action], item_id=item.id)
            if user is None:
                ok = r.status_code == 302 and "/auth/login" in r.headers["Location"] and after == before
                if not ok:
                    wrong.append(f"{label}: anonymous got {r.status_code}")
                continue
            code = {"ok": 302, "hidden": 404, "refused": 403}[want]
            if r.status_code != code:
                wrong.append(f"{label}: got {r.status_code}, expected {code}")
            if want == "refused" and not (b"(rule: " in r.data or b"owns this asset" in r.data):
                wrong.append(f"{label}: 403 page does not name the rule")
            if after - before != (1 if want == "ok" else 0):
                wrong.append(f"{label}: {after - before} rows written")
            if want == "refused":
                page = client.get(f"/{KIND_FOR[action]}s/{item.id}")
                if page.status_code != 200 or b'class="why-not"' not in page.data:
                    wrong.append(f"{label}: the detail page does not explain the refusal")
        auth.logout()
    assert wrong == []


# --------------------------------------------------------------------------- view rules


@pytest.fixture
def states(f):
    """Questions, answers, comments and requests in every state, on items at every level."""
    w = EngagementWorld(f)
    for vis in VISIBILITIES:
        ch = w.item("challenge", vis, {"ask_rule": "registered"})
        fa = w.item("failure", vis, {"comment_rule": "registered"})
        asset = w.item("asset", vis, {"request_rule": "registered", "max_open_requests": 5})
        askers = [u for u in (w.granted, w.outsider, w.member) if policy.can(u, "ask", ch)]
        for n, asker in enumerate(askers):
            q_open = svc.ask_question(asker, ch, f"Unanswered by {asker.display_name}", show_name=bool(n % 2))
            q_ans = svc.ask_question(asker, ch, "Answered later")
            svc.answer_question(w.admin, q_ans, "Here is the answer.")
            q_hidden = svc.ask_question(asker, ch, "Hidden one")
            svc.answer_question(w.admin, q_hidden, "Answer to a hidden question.")
            q_hidden.hidden_at = policy.utcnow()
            q_del = svc.ask_question(asker, ch, "Deleted one")
            svc.answer_question(w.admin, q_del, "Answer outlives the question.")
            svc.delete_post(asker, q_del)
            q_ahidden = svc.ask_question(asker, ch, "Answer hidden")
            a = svc.answer_question(w.admin, q_ahidden, "Hidden answer")
            a.hidden_at = policy.utcnow()
            svc.delete_post(asker, svc.ask_question(asker, ch, "Deleted unanswered"))
            del q_open
        commenters = [u for u in (w.granted, w.outsider, w.member) if policy.can(u, "comment", fa)]
        for c_author in commenters:
            top = svc.add_comment(c_author, fa, "Top comment")
            svc.add_comment(w.admin, fa, "Reply", parent=top)
            hid = svc.add_comment(c_author, fa, "Hidden comment")
            hid.hidden_at = policy.utcnow()
            svc.delete_post(c_author, svc.add_comment(c_author, fa, "Deleted comment"))
        for requester in (w.granted, w.outsider):
            if policy.can(requester, "request", asset):
                t = svc.current_terms(asset)
                svc.send_request(requester, asset, "interest", "", terms_version=t.version, terms_digest=t.digest)
        if policy.can(w.other_admin, "request", asset):
            t = svc.current_terms(asset)
            svc.send_request(w.other_admin, asset, "licence", "For our org", terms_version=t.version,
                             terms_digest=t.digest, on_behalf_of=w.other_org)
        db.session.commit()
    viewers = dict(w.users)
    viewers["third-party admin"] = w.other_admin
    return w, viewers


MODELS = (Question, Answer, Comment, AssetRequest)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_can_and_visible_agree(states, model):
    _w, viewers = states
    rows = db.session.execute(select(model)).scalars().all()
    assert rows, "the fixture made rows of every model"
    for name, user in viewers.items():
        by_can = {r.id for r in rows if policy.can(user, "view", r)}
        by_sql = set(db.session.execute(select(model.id).where(policy.visible_clause(user, model))).scalars())
        assert by_sql == by_can, f"{name}: visible() and can() disagree on {model.__name__}"


@pytest.mark.parametrize("model", (Question, Comment), ids=lambda m: m.__name__)
def test_search_principals_agree_with_can(states, model):
    _w, viewers = states
    twin = policy.question_doc_principals if model is Question else policy.comment_doc_principals
    for name, user in viewers.items():
        mine = set(policy.principals(user))
        for row in db.session.execute(select(model)).scalars():
            assert policy.can(user, "view", row) == bool(mine & set(twin(row))), \
                f"{name}: principals disagree with can() on {model.__name__} {row.id} ({row.body!r})"


def test_unanswered_questions_reach_only_asker_and_org(states):
    _w, viewers = states
    unanswered = db.session.execute(
        select(Question).where(~Question.id.in_(select(Answer.question_id)), Question.deleted_at.is_(None))
    ).scalars().all()
    assert unanswered
    for q in unanswered:
        for name, user in viewers.items():
            allowed = user is not None and (user.id == q.author_id or name in ("member", "admin", "moderator"))
            assert policy.can(user, "view", q) is allowed, f"{name} on question {q.id}"


def test_requests_reach_only_the_two_parties(states):
    w, viewers = states
    for r in db.session.execute(select(AssetRequest)).scalars():
        for name, user in viewers.items():
            party = user is not None and (user.id == r.author_id or name == "admin"
                                          or (r.requester_org_id and user.id == w.other_admin.id))
            assert policy.can(user, "view", r) is bool(party), f"{name} on request {r.id}"


def test_unknown_participation_rule_fails_closed(f):
    w = EngagementWorld(f)
    item = w.item("challenge", "public", {"ask_rule": "registered"})
    rules = policy.engagement_rules(item)
    rules.ask_rule = "everyone"
    db.session.commit()
    with pytest.raises(policy.PolicyError):
        policy.can(w.outsider, "ask", item)
    with pytest.raises(ServiceError) as e:
        svc.set_rules(w.admin, item, {"ask_rule": "everyone"})
    assert e.value.field == "ask_rule"


def test_unknown_request_status_fails_closed(f):
    w = EngagementWorld(f)
    asset = w.item("asset", "public")
    r = do("request", w.outsider, asset)
    db.session.execute(AssetRequest.__table__.update().values(status="limbo"))
    db.session.commit()
    db.session.expire_all()
    r = db.session.get(AssetRequest, r.id)
    with pytest.raises(policy.PolicyError):
        policy.can(w.admin, "view", r)
