def test_home_anonymous(client):
    r = client.get("/")
    assert r.status_code == 200
    assert b"Open challenges" in r.data


def test_register_login_logout(client):
    r = client.post("/auth/register", data={"email": "new@example.test", "display_name": "New Person",
                                             "password": "a-long-password", "confirm": "a-long-password"})
    assert r.status_code == 200 and b"Check your inbox" in r.data
    # Signing in works before the address is confirmed.
    r = client.post("/auth/login", data={"email": "new@example.test", "password": "a-long-password"})
    assert r.status_code == 302
    assert client.get("/auth/account").status_code == 200
    client.post("/auth/logout")
    assert client.get("/auth/account").status_code == 302
