"""The caller's own things through the API, through the same functions as the pages:
notifications (one about something the reader may no longer see keeps only its kind and time,
as on the page), marking them read, and notification choices (the settings page's service)."""
from __future__ import annotations

from sqlalchemy import select

from marketplace import notify as notify_mod
from marketplace.extensions import db
from marketplace.models import Notification, NotificationPref
from marketplace.services import notifications as notif_svc

from .test_api_tokens import bearer, make_token


def _setup(f):
    owner = f.make_user(email="owner@acme.test", name="Owner")
    reader = f.make_user(email="reader@else.test", name="Reader")
    org = f.make_org(name="Acme", owner=owner)
    item = f.make_item(org, visibility="public", title="Secret plan")
    n = notify_mod.notify(reader, "follow.new_challenge", "New challenge: Secret plan", f"/items/{item.id}",
                          about=item, mail=False)
    db.session.commit()
    return reader, item, n


def test_notifications_mask_what_the_reader_may_no_longer_see_like_the_page(client, auth, f):
    reader, item, n = _setup(f)
    token = make_token(reader)
    got = client.get("/api/v1/me/notifications", headers=bearer(token)).get_json()["notifications"]
    assert [(x["id"], x["message"], x["shown"]) for x in got] == [(n.id, "New challenge: Secret plan", True)]

    item.visibility = "organisation"
    db.session.commit()
    r = client.get("/api/v1/me/notifications", headers=bearer(token))
    body = r.get_data(as_text=True)
    assert r.status_code == 200 and "Secret plan" not in body and f"/items/{item.id}" not in body
    (x,) = r.get_json()["notifications"]
    assert (x["shown"], x["message"], x["url"]) == (False, notify_mod.NOT_SHOWN, "")
    # The page says the same.
    auth.login("reader@else.test")
    page = client.get("/notifications/").get_data(as_text=True)
    assert notify_mod.NOT_SHOWN in page and "Secret plan" not in page


def test_notifications_are_only_the_caller_s_and_need_a_caller(client, f):
    reader, _item, _n = _setup(f)
    other = f.make_user(email="other@else.test", name="Other")
    assert client.get("/api/v1/me/notifications").status_code == 401
    r = client.get("/api/v1/me/notifications", headers=bearer(make_token(other)))
    assert r.get_json()["notifications"] == [] and r.get_json()["total"] == 0


def test_marking_read_needs_the_notifications_scope_and_marks_only_the_caller_s(client, f):
    reader, _item, n = _setup(f)
    other = f.make_user(email="other@else.test", name="Other")
    notify_mod.notify(other, "announcement", "Hello", mail=False)
    db.session.commit()
    r = client.post("/api/v1/me/notifications/read", headers=bearer(make_token(reader, scopes=("read",))))
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "insufficient_scope"
    r = client.post("/api/v1/me/notifications/read", headers=bearer(make_token(reader, scopes=("notifications:write",))))
    assert r.status_code == 200 and r.get_json() == {"updated": 1}
    db.session.expire_all()
    unread = db.session.execute(select(Notification.user_id).where(Notification.read_at.is_(None))).scalars().all()
    assert unread == [other.id]


def test_notification_choices_read_and_change_through_the_settings_service(client, f):
    reader, _item, _n = _setup(f)
    token = make_token(reader, scopes=("read", "notifications:write"))
    got = client.get("/api/v1/me/notification-settings", headers=bearer(token)).get_json()["categories"]
    assert {c["key"]: c["channel"] for c in got} == notif_svc.channels(reader)
    r = client.patch("/api/v1/me/notification-settings", headers=bearer(token),
                     json={"channels": {"followed": "off", "answers": "digest"}})
    assert r.status_code == 200
    changed = {c["key"]: c["channel"] for c in r.get_json()["categories"]}
    assert changed["followed"] == "off" and changed["answers"] == "digest"
    db.session.expire_all()
    assert notif_svc.channels(reader) == changed


def test_bad_notification_choices_are_422_and_change_nothing(client, f):
    reader, _item, _n = _setup(f)
    token = make_token(reader, scopes=("read", "notifications:write"))
    for payload in ({"channels": {"followed": "loud"}}, {"channels": {"nope": "off"}}, {"channels": {}},
                    {"channels": {"followed": "off"}, "user_id": 1}):
        r = client.patch("/api/v1/me/notification-settings", headers=bearer(token), json=payload)
        assert r.status_code == 422, payload
        assert r.get_json()["error"]["fields"], payload
    assert db.session.execute(select(NotificationPref)).first() is None
    # Anonymous callers have no choices to change.
    assert client.patch("/api/v1/me/notification-settings", json={"channels": {"followed": "off"}}).status_code == 401
