"""Assets: versioned licence terms with their digest, and interest / licence / collaboration
requests: stale digests, own assets, limits, parallel duplicates, decisions and history,
and privacy between the two parties."""
from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import select

from marketplace import audit, policy
from marketplace.extensions import db
from marketplace.models import Notification, User
from marketplace.models.engagement import AssetRequest, AssetTerms, RequestEvent
from marketplace.models.moderation import Report
from marketplace.services import engagement as svc
from marketplace.services.common import ServiceError
from marketplace.services.guards import AppendOnlyViolation

from .factories_engagement import TERMS, EngagementWorld


@pytest.fixture
def w(f):
    return EngagementWorld(f)


@pytest.fixture
def asset(w):
    return w.item("asset", "public", {"request_rule": "registered"})


def _send(user, item, kind="licence", message="We would like to use it.", org=None, terms=None):
    t = terms or svc.current_terms(item)
    return svc.send_request(user, item, kind, message, terms_version=t.version if t else None,
                            terms_digest=t.digest if t else None, on_behalf_of=org)


def _form(item, kind="licence", message="Please.", org="", t=None):
    t = t or svc.current_terms(item)
    return {"kind": kind, "message": message, "on_behalf_of": org,
            "terms_version": str(t.version) if t else "", "terms_digest": t.digest if t else ""}


# --------------------------------------------------------------------------- terms


def test_terms_versions_carry_a_canonical_digest(w, asset, client, auth):
    t1 = svc.current_terms(asset)
    doc = json.loads(t1.canonical)
    assert doc == {"asset_id": asset.id, "version": 1, **TERMS}
    assert t1.digest == audit.sha256_hex(audit.canonical_json(doc))
    auth.login(w.admin.email)
    r = client.post(f"/engage/assets/{asset.id}/terms", data=dict(TERMS, territory="EU only"))
    assert r.status_code == 302
    t2 = svc.current_terms(asset)
    assert t2.version == 2 and t2.digest != t1.digest
    page = client.get(f"/assets/{asset.id}").data
    assert t2.digest.encode() in page and b"EU only" in page
    r = client.get(f"/engage/assets/{asset.id}/terms/1?format=json")
    assert r.status_code == 200 and r.headers["X-Terms-Digest"] == t1.digest
    assert audit.sha256_hex(r.data) == t1.digest


def test_republishing_identical_terms_is_refused(w, asset, client, auth):
    auth.login(w.admin.email)
    r = client.post(f"/engage/assets/{asset.id}/terms", data=TERMS)
    assert r.status_code == 409 and b"already" in r.data
    assert db.session.query(AssetTerms).filter_by(item_id=asset.id).count() == 1


@pytest.mark.parametrize("change,field", [
    ({"licence_kind": "exclusive", "field_of_use": ""}, b"field of use"),
    ({"licence_kind": "open", "fee_model": "royalty"}, b"open licence is free"),
    ({"licence_kind": "collaboration-only", "fee_model": "royalty"}, b"Collaboration-only terms"),
    ({"licence_kind": "non-exclusive", "fee_model": "none"}, b"needs a fee model"),
    ({"licence_kind": "perpetual-magic"}, b"Not a valid choice"),
])
def test_incomplete_terms_get_a_clear_error(w, asset, client, auth, change, field):
    auth.login(w.admin.email)
    r = client.post(f"/engage/assets/{asset.id}/terms", data=dict(TERMS, **change))
    assert r.status_code == 400 and field in r.data
    assert db.session.query(AssetTerms).filter_by(item_id=asset.id).count() == 1


def test_only_the_owning_org_admins_publish_terms(w, asset, client, auth):
    for user in (w.member, w.outsider):
        auth.login(user.email)
        r = client.post(f"/engage/assets/{asset.id}/terms", data=dict(TERMS, territory="Mars"))
        assert r.status_code == 403
        auth.logout()
    assert db.session.query(AssetTerms).filter_by(item_id=asset.id).count() == 1


def test_terms_versions_are_append_only(asset):
    t = svc.current_terms(asset)
    t.fee_model = "free"
    with pytest.raises(AppendOnlyViolation):
        db.session.flush()
    db.session.rollback()


# --------------------------------------------------------------------------- sending


def test_request_references_the_exact_terms_shown(w, asset, client, auth):
    auth.login(w.outsider.email)
    page = client.get(f"/assets/{asset.id}").data
    t = svc.current_terms(asset)
    assert t.digest.encode() in page
    r = client.post(f"/engage/assets/{asset.id}/request", data=_form(asset))
    assert r.status_code == 302
    req = db.session.execute(select(AssetRequest)).scalar_one()
    assert (req.terms_id, req.terms_version, req.terms_digest) == (t.id, t.version, t.digest)
    assert [e.action for e in req.events] == ["sent"]


def test_a_stale_digest_is_refused_with_a_clear_message(w, asset, client, auth):
    old = svc.current_terms(asset)
    svc.publish_terms(w.admin, asset, dict(TERMS, fee_model="fixed-fee"))
    auth.login(w.outsider.email)
    r = client.post(f"/engage/assets/{asset.id}/request", data=_form(asset, t=old))
    assert r.status_code == 409
    assert b"licence terms changed since you loaded the page" in r.data and b"version 2" in r.data
    assert db.session.query(AssetRequest).count() == 0
    # A forged digest for the current version is refused just the same.
    data = _form(asset)
    data["terms_digest"] = "0" * 64
    assert client.post(f"/engage/assets/{asset.id}/request", data=data).status_code == 409
    assert db.session.query(AssetRequest).count() == 0
    assert client.post(f"/engage/assets/{asset.id}/request", data=_form(asset)).status_code == 302


def test_no_requests_to_ones_own_asset(w, asset, client, auth):
    for user in (w.member, w.admin):
        auth.login(user.email)
        r = client.post(f"/engage/assets/{asset.id}/request", data=_form(asset))
        assert r.status_code == 403 and b"owns this asset" in r.data
        auth.logout()
    with pytest.raises(ServiceError) as e:
        _send(w.owner, asset, org=w.org)
    assert e.value.status == 403
    assert db.session.query(AssetRequest).count() == 0


def test_on_behalf_only_of_an_organisation_one_administers(w, asset, f):
    plain = f.make_user()
    f.add_member(w.other_org, plain)
    with pytest.raises(ServiceError) as e:
        _send(plain, asset, org=w.other_org)
    assert e.value.status == 403 and "on behalf of an organisation you own or administer" in e.value.message
    r = _send(w.other_admin, asset, org=w.other_org)
    assert r.requester_org_id == w.other_org.id


def test_licence_requests_refused_on_collaboration_only_terms(w, client, auth):
    tank = w.item("asset", "public", terms=False)
    svc.publish_terms(w.admin, tank, {"licence_kind": "collaboration-only", "fee_model": "none"})
    with pytest.raises(ServiceError) as e:
        _send(w.outsider, tank, kind="licence")
    assert "collaboration only" in e.value.message
    assert _send(w.outsider, tank, kind="collaboration").kind == "collaboration"


def test_without_terms_only_interest_can_be_registered(w):
    bare = w.item("asset", "public", terms=False)
    with pytest.raises(ServiceError) as e:
        _send(w.outsider, bare, kind="licence")
    assert "no licence terms yet" in e.value.message
    r = _send(w.outsider, bare, kind="interest", message="")
    assert r.terms_id is None and r.status == "pending"


@pytest.mark.parametrize("kind,message,error", [
    ("licence", "", "empty"), ("collaboration", "  ", "empty"), ("licence", "z" * 5001, "too long"),
    ("takeover", "Hi", "Choose what you are asking for"),
])
def test_bad_request_input(w, asset, kind, message, error):
    with pytest.raises(ServiceError) as e:
        _send(w.outsider, asset, kind=kind, message=message)
    assert error in e.value.message
    assert db.session.query(AssetRequest).count() == 0 and db.session.query(RequestEvent).count() == 0


def test_max_open_requests_per_requester_is_enforced_and_named(w, asset, client, auth):
    _send(w.outsider, asset, kind="interest", message="")
    with pytest.raises(ServiceError) as e:
        _send(w.outsider, asset, kind="licence")
    assert e.value.status == 403 and "rule: max open requests" in e.value.message
    svc.set_rules(w.admin, asset, {"max_open_requests": 2})
    _send(w.outsider, asset, kind="licence")
    with pytest.raises(ServiceError) as e:
        _send(w.outsider, asset, kind="collaboration")
    assert "allows 2 per requester" in e.value.message


def test_duplicate_open_request_of_the_same_kind_is_refused(w, asset):
    svc.set_rules(w.admin, asset, {"max_open_requests": 5})
    first = _send(w.outsider, asset)
    with pytest.raises(ServiceError) as e:
        _send(w.outsider, asset)
    assert e.value.status == 409 and "already have an open licence request" in e.value.message
    svc.withdraw_request(w.outsider, first)
    assert _send(w.outsider, asset).id != first.id


def test_parallel_duplicate_requests_leave_exactly_one_open(app, w, asset):
    svc.set_rules(w.admin, asset, {"max_open_requests": 5})
    uid, iid = w.outsider.id, asset.id
    n = 6
    barrier = threading.Barrier(n)
    results: list = []

    def send():
        with app.app_context():
            try:
                from marketplace.models import Item
                user = db.session.get(User, uid)
                item = db.session.get(Item, iid)
                t = svc.current_terms(item)
                barrier.wait()
                svc.send_request(user, item, "licence", "Same request, many clicks", terms_version=t.version,
                                 terms_digest=t.digest)
                results.append("ok")
            except ServiceError as e:
                results.append(e.status)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=send) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 1 and sorted(set(results) - {"ok"}) == [409]
    db.session.expire_all()
    rows = db.session.execute(select(AssetRequest).where(AssetRequest.item_id == iid)).scalars().all()
    assert len(rows) == 1 and rows[0].is_open
    assert db.session.query(RequestEvent).count() == 1
    assert audit.verify_chain().ok


# --------------------------------------------------------------------------- decisions and history


def test_decline_needs_a_reason_and_closes_the_request(w, asset, client, auth):
    r = _send(w.outsider, asset)
    auth.login(w.admin.email)
    resp = client.post(f"/engage/requests/{r.id}/decide", data={"decision": "decline", "message": ""})
    assert resp.status_code == 400 and b"reason is empty" in resp.data
    db.session.refresh(r)
    assert r.status == "pending"
    resp = client.post(f"/engage/requests/{r.id}/decide", data={"decision": "decline", "message": "Field taken."})
    assert resp.status_code == 302
    db.session.refresh(r)
    assert r.status == "declined" and r.open_key is None
    resp = client.post(f"/engage/requests/{r.id}/decide", data={"decision": "accept", "message": ""})
    assert resp.status_code == 409
    notes = db.session.execute(select(Notification).where(Notification.user_id == w.outsider.id)).scalars().all()
    assert len(notes) == 1 and "declined" in notes[0].message
    # The slot is free again.
    assert _send(w.outsider, asset).status == "pending"


def test_follow_up_reply_and_accept_build_a_shared_history(w, asset, client, auth):
    r = _send(w.outsider, asset, message="Can we license it?")
    svc.decide_request(w.admin, r, "follow-up", "Which field of use exactly?")
    assert r.status == "follow-up" and r.is_open
    with pytest.raises(ServiceError):
        svc.decide_request(w.admin, r, "follow-up", "")  # a follow-up says what it proposes
    auth.login(w.outsider.email)
    assert client.post(f"/engage/requests/{r.id}/respond", data={"message": "Warehouse robotics."}).status_code == 302
    auth.logout()
    db.session.refresh(r)
    assert r.status == "pending"
    svc.decide_request(w.owner, r, "accept", "Welcome aboard.")
    assert r.status == "accepted"
    actions = [e.action for e in r.events]
    assert actions == ["sent", "follow-up", "replied", "accepted"]
    assert [e.side for e in r.events] == ["requester", "owner", "requester", "owner"]
    for user in (w.outsider, w.admin):
        auth.login(user.email)
        page = client.get(f"/engage/requests/{r.id}").data
        for text in (b"Can we license it?", b"Which field of use exactly?", b"Warehouse robotics.", b"Welcome aboard."):
            assert text in page
        auth.logout()
    event = r.events[0]
    event.message = "rewritten"
    with pytest.raises(AppendOnlyViolation):
        db.session.flush()
    db.session.rollback()


def test_only_the_owner_side_decides_and_only_the_requester_withdraws(w, asset):
    r = _send(w.outsider, asset)
    with pytest.raises(ServiceError) as e:
        svc.decide_request(w.outsider, r, "accept")
    assert e.value.status == 403
    with pytest.raises(ServiceError) as e:
        svc.withdraw_request(w.admin, r)
    assert e.value.status == 403
    with pytest.raises(ServiceError) as e:
        svc.decide_request(w.member, r, "accept")  # a plain member is not a party
    assert e.value.status == 404
    svc.withdraw_request(w.outsider, r, "Changed our plans.")
    assert r.status == "withdrawn" and r.open_key is None
    with pytest.raises(ServiceError) as e:
        svc.respond_to_request(w.outsider, r, "Actually...")
    assert e.value.status == 409


def test_decision_notifications_skip_requesters_who_lost_sight_of_the_asset(w):
    secret = w.item("asset", "invited")
    r = _send(w.granted, secret)
    for g in secret.grants:
        from marketplace.services import items as item_svc
        item_svc.revoke_grant(w.admin, g)
    svc.decide_request(w.admin, r, "decline", "No longer available.")
    assert db.session.query(Notification).filter_by(user_id=w.granted.id).count() == 0
    # They still see their own request, but not the asset's current title or terms.
    assert policy.can(w.granted, "view", r)


# --------------------------------------------------------------------------- privacy


def test_third_parties_get_404_and_see_nothing_in_lists(w, asset, client, auth, f):
    r = _send(w.outsider, asset, message="Confidential business plan")
    bystander = f.make_user()
    for user in (w.granted, w.member, w.other_admin, w.moderator, bystander):
        assert not policy.can(user, "view", r)
        auth.login(user.email)
        for path in (f"/engage/requests/{r.id}",):
            assert client.get(path).status_code == 404
        for action, data in (("decide", {"decision": "accept"}), ("respond", {"message": "hi"}),
                             ("withdraw", {})):
            assert client.post(f"/engage/requests/{r.id}/{action}", data=data).status_code == 404
        mine = client.get("/engage/requests/mine?state=all").data
        assert b"Confidential" not in mine and f"/engage/requests/{r.id}".encode() not in mine
        incoming = client.get("/engage/requests/incoming?state=all")
        assert f"/engage/requests/{r.id}".encode() not in incoming.data
        page = client.get(f"/assets/{asset.id}").data
        assert f"/engage/requests/{r.id}".encode() not in page
        auth.logout()
        ids = set(db.session.execute(select(AssetRequest.id).where(policy.visible_clause(user, AssetRequest))).scalars())
        assert r.id not in ids
    assert policy.can(w.outsider, "view", r) and policy.can(w.admin, "view", r) and policy.can(w.owner, "view", r)
    auth.login(w.outsider.email)
    assert b"Confidential business plan" in client.get(f"/engage/requests/{r.id}").data
    assert f"/engage/requests/{r.id}".encode() in client.get("/engage/requests/mine").data
    auth.logout()
    auth.login(w.admin.email)
    assert f"/engage/requests/{r.id}".encode() in client.get("/engage/requests/incoming").data


def test_request_on_behalf_of_an_org_is_shared_with_its_admins_only(w, asset, f):
    co_admin, plain = f.make_user(), f.make_user()
    f.add_member(w.other_org, co_admin, "admin")
    f.add_member(w.other_org, plain)
    r = _send(w.other_admin, asset, org=w.other_org)
    assert policy.can(co_admin, "view", r) and policy.can(co_admin, "respond", r)
    assert not policy.can(plain, "view", r)


def test_moderators_see_a_request_only_while_it_has_an_open_report(w, asset):
    r = _send(w.outsider, asset)
    assert not policy.can(w.moderator, "view", r)
    report = Report(target_type="asset_request", target_id=r.id, reporter_id=w.admin.id,
                               category="other", note="Abusive request", status="open", org_id=asset.org_id)
    db.session.add(report)
    db.session.commit()
    assert policy.can(w.moderator, "view", r)
    assert r.id in set(db.session.execute(
        select(AssetRequest.id).where(policy.visible_clause(w.moderator, AssetRequest))).scalars())
    assert not policy.can(w.member, "view", r)  # a report opens it to site moderators, nobody else
    assert policy.engagement_has_open_report("asset_request", r.id)


def test_request_pages_and_lists_for_the_parties(w, asset, client, auth):
    r = _send(w.outsider, asset)
    auth.login(w.outsider.email)
    assert b"My requests" in client.get("/").data
    assert client.get("/engage/requests/incoming").status_code == 403
    assert client.get("/engage/requests/mine?state=bogus").status_code == 400
    closed = client.get("/engage/requests/mine?state=closed").data
    assert f"/engage/requests/{r.id}".encode() not in closed
    auth.logout()
    auth.login(w.admin.email)
    assert b"Incoming requests" in client.get("/").data
    page = client.get(f"/engage/requests/{r.id}").data
    assert b"Decide" in page and r.terms_digest.encode() in page


def test_sending_a_request_leaves_no_trace_on_the_public_asset(w, asset):
    from marketplace.models import AuditEvent, Item

    before = db.session.get(Item, asset.id).updated_at
    r = _send(w.outsider, asset)
    svc.decide_request(w.admin, r, "decline", "No.")
    db.session.expire_all()
    assert db.session.get(Item, asset.id).updated_at == before  # feeds show updated_at
    events = db.session.execute(select(AuditEvent).where(AuditEvent.subject_type == "asset_request")).scalars().all()
    assert events and all(e.item_id is None for e in events)  # kept out of per-item decision logs
    assert all("No." not in e.data and "We would like" not in e.data for e in events)
