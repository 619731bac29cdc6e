"""Terms acceptance receipts signed with Ed25519 keys of their own: they survive a SECRET_KEY
rotation and a key rotation, the public keys are published, anyone can check a receipt
offline (the README's snippet, run for real), and receipts issued before (HMAC) still verify.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from marketplace import receipt_keys
from marketplace.audit import canonical_json
from marketplace.extensions import db
from marketplace.models import TermsAcceptance
from marketplace.services import terms as terms_svc

from .factories_ideas import IdeaFactories

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def acc(f):
    fi = IdeaFactories(f)
    s = fi.challenge()
    fi.submit(f.make_user(), s.challenge)
    return db.session.execute(select(TermsAcceptance)).scalar_one()


def keydir(app) -> Path:
    return Path(app.instance_path) / "receipt_keys"


def legacy_receipt(acc, secret: str) -> dict:
    """A receipt as issued before Ed25519 signing (schema /1, HMAC keyed from SECRET_KEY)."""
    body = {"receipt": "oim-terms-acceptance/1", "acceptance_id": acc.id, **terms_svc._recorded(acc),
            "challenge_title": acc.challenge.title, "accepted_by": acc.user.display_name}
    key = hmac.new(secret.encode(), b"oim terms receipt v1", hashlib.sha256).digest()
    return {**body, "signature": hmac.new(key, canonical_json(body).encode(), hashlib.sha256).hexdigest()}


def test_a_receipt_names_its_key_and_the_key_is_published(app, acc, client):
    receipt = terms_svc.build_receipt(acc)
    assert receipt["receipt"] == "oim-terms-acceptance/2" and re.fullmatch(r"[0-9a-f]{16}", receipt["key_id"])
    assert terms_svc.verify_receipt(json.dumps(receipt)).ok
    r = client.get("/.well-known/receipt-keys.json")
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
    assert r.json == {"keys": [{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "status": "current",
                                "kid": receipt["key_id"], "x": r.json["keys"][0]["x"]}]}
    d = keydir(app)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((d / f"{receipt['key_id']}.key").stat().st_mode) == 0o600
    # The same acceptance gives the same receipt (Ed25519 is deterministic).
    assert terms_svc.build_receipt(acc) == receipt


def test_receipts_survive_a_secret_key_rotation(app, acc):
    receipt = terms_svc.build_receipt(acc)
    app.config["SECRET_KEY"] = "a-completely-new-secret-key"
    assert terms_svc.verify_receipt(receipt).ok


def test_receipts_survive_a_key_rotation_and_the_old_private_key_is_gone(app, acc, runner, client):
    before = terms_svc.build_receipt(acc)
    old = before["key_id"]
    r = runner.invoke(args=["keys", "rotate"])
    assert r.exit_code == 0 and f"Receipts signed with {old} still verify" in r.output
    after = terms_svc.build_receipt(acc)
    new = after["key_id"]
    assert new != old and f"new receipts are signed with {new}" in r.output
    assert terms_svc.verify_receipt(before).ok and terms_svc.verify_receipt(after).ok
    d = keydir(app)
    assert not (d / f"{old}.key").exists() and (d / f"{old}.pub").exists() and (d / f"{new}.key").exists()
    assert [(k["kid"], k["status"]) for k in client.get("/.well-known/receipt-keys.json").json["keys"]] == [
        (new, "current"), (old, "retired")]
    listing = runner.invoke(args=["keys", "list"]).output
    assert f"{new}  current" in listing and f"{old}  retired" in listing


def test_forged_and_tampered_receipts_fail(app, acc):
    receipt = terms_svc.build_receipt(acc)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    stranger = Ed25519PrivateKey.generate()  # someone else's key, even under our key id
    body = {k: v for k, v in receipt.items() if k != "signature"}
    forged = {**body, "signature": receipt_keys.b64url(stranger.sign(canonical_json(body).encode()))}
    for bad in (forged, {**receipt, "key_id": "0" * 16}, {**receipt, "key_id": "../../etc/passwd"},
                {**receipt, "signature": "not base64!"}, {**receipt, "signature": 12},
                {**receipt, "accepted_by": "Someone Else"}):
        check = terms_svc.verify_receipt(bad)
        assert not check.ok and "signature does not match" in check.problems[0]
    # A key file renamed to the current key's id is not taken for it.
    pub = keydir(app) / f"{receipt['key_id']}.pub"
    other = receipt_keys.kid_for(stranger.public_key())
    (keydir(app) / f"{other}.pub").write_bytes(pub.read_bytes())
    assert other not in receipt_keys.public_keys()


def test_receipts_issued_before_ed25519_still_verify(app, acc):
    old_secret = app.config["SECRET_KEY"]
    receipt = legacy_receipt(acc, old_secret)
    assert terms_svc.verify_receipt(json.dumps(receipt)).ok
    assert not terms_svc.verify_receipt({**receipt, "content_sha256": "0" * 64}).ok
    # SECRET_KEY rotated, the old one kept in SECRET_KEY_FALLBACKS: still valid.
    app.config.update(SECRET_KEY="the-new-secret-key-after-rotation", SECRET_KEY_FALLBACKS=[old_secret])
    assert terms_svc.verify_receipt(receipt).ok
    # Or kept for receipts only (a key retired after a leak must not keep sessions valid).
    app.config.update(SECRET_KEY_FALLBACKS=[], LEGACY_RECEIPT_SECRETS=[old_secret])
    assert terms_svc.verify_receipt(receipt).ok
    app.config["LEGACY_RECEIPT_SECRETS"] = []
    check = terms_svc.verify_receipt(receipt)
    assert not check.ok and "signature does not match" in check.problems[0]


def test_the_key_can_come_from_the_environment(app, acc, runner):
    line = runner.invoke(args=["keys", "generate"]).output.splitlines()[0]
    assert re.fullmatch(r"ed25519:[A-Za-z0-9_-]{43}", line)
    app.config["RECEIPT_SIGNING_KEY"] = line
    receipt = terms_svc.build_receipt(acc)
    kid = receipt["key_id"]
    assert kid == receipt_keys.kid_for(receipt_keys.load_env_key(line).public_key())
    assert (keydir(app) / f"{kid}.pub").exists() and not (keydir(app) / f"{kid}.key").exists()
    r = runner.invoke(args=["keys", "rotate"])
    assert r.exit_code == 1 and "RECEIPT_SIGNING_KEY is set" in r.output
    # The variable replaced by another key: receipts of the first still verify.
    app.config["RECEIPT_SIGNING_KEY"] = runner.invoke(args=["keys", "generate"]).output.splitlines()[0]
    assert terms_svc.verify_receipt(receipt).ok
    assert terms_svc.build_receipt(acc)["key_id"] != kid
    app.config["RECEIPT_SIGNING_KEY"] = "ed25519:too-short"
    with pytest.raises(receipt_keys.ReceiptKeyError, match="keys generate"):
        terms_svc.build_receipt(acc)


def test_processes_creating_the_first_key_at_once_agree_on_one(app):
    results, errors = [], []

    def first_key():
        try:
            with app.app_context():
                results.append(receipt_keys.signing_key()[0])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=first_key) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    files = sorted(p.name for p in keydir(app).iterdir())
    assert files == sorted([f"{results[0]}.key", f"{results[0]}.pub", "current"])


def readme_snippet() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- offline-receipt-check -->\s*```python\n(.*?)```", text, re.S)
    assert m, "README: the offline receipt check snippet is missing"
    return m.group(1)


def test_the_readme_snippet_checks_a_receipt_offline(app, acc, client, tmp_path):
    """The contributor's side: the receipt file and the published keys, no site, no database."""
    receipt = terms_svc.receipt_json(acc)
    keys = client.get("/.well-known/receipt-keys.json").data
    work = tmp_path / "offline"
    work.mkdir()
    (work / "receipt.json").write_text(receipt, encoding="utf-8")
    (work / "receipt-keys.json").write_bytes(keys)
    code = readme_snippet()
    ok = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "signature OK" in ok.stdout, ok.stderr
    (work / "receipt.json").write_text(receipt.replace(acc.content_hash, "1" * 64), encoding="utf-8")
    bad = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "InvalidSignature" in bad.stderr
