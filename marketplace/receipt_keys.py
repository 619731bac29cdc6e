"""The Ed25519 keys that sign terms acceptance receipts, and their public list.

Receipts are signed with a key of their own, not with SECRET_KEY, so rotating SECRET_KEY
never invalidates one; and with a public-key signature, so anyone holding the public key can
check a receipt offline without asking (or trusting) the site. The public keys are published
at /.well-known/receipt-keys.json as a JWK set (RFC 8037: "OKP", "Ed25519"), each with its
key id (`kid`), which every receipt names in its `key_id`.

Where the keys live (RECEIPT_KEYS_DIR, default instance/receipt_keys, mode 700):
    <kid>.key   the current private key (PKCS#8 PEM, mode 600); only the current one exists
    <kid>.pub   the public key of every key that has ever signed (PEM), kept for verifying
    current     the id of the current key
The first receipt creates a key (race-safe across processes). `flask keys rotate` makes a
new current key and deletes the old private key (its public key stays, so the receipts it
signed still verify, and nobody can sign new ones with it).

RECEIPT_SIGNING_KEY in the environment (the one-line form `flask keys generate` prints, or a
PEM) overrides the current key; its public key is then copied into the folder on first use,
so it stays published after the variable is changed.

A key id is the first 16 hex digits of the SHA-256 of the raw public key: derived, never
chosen, so a receipt's `key_id` only ever selects among keys loaded here, never a path.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import current_app

log = logging.getLogger(__name__)
KID_RE = re.compile(r"^[0-9a-f]{16}$")
CURRENT = "current"


def receipt_text(receipt: dict) -> str:
    """A receipt as people download and read it: indented JSON, keys sorted, non-ASCII kept."""
    return json.dumps(receipt, indent=2, sort_keys=True, ensure_ascii=False)


@dataclass
class ReceiptCheck:
    """What checking a receipt (terms acceptance or data-sharing) found: ok, or the problems;
    for a terms receipt, the receipt read and the acceptance it names."""
    ok: bool
    problems: list[str] = field(default_factory=list)
    receipt: dict | None = None
    acceptance_id: int | None = None


class ReceiptKeyError(RuntimeError):
    """The key store is unusable (unreadable, or a current key without its private half)."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def kid_for(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public(key)).hexdigest()[:16]


def _public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_private_pem(pem: bytes | str) -> Ed25519PrivateKey:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise ReceiptKeyError(f"not a PEM private key without a passphrase: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ReceiptKeyError("the receipt signing key must be an Ed25519 key")
    return key


def one_line(key: Ed25519PrivateKey) -> str:
    """The private key as one line for RECEIPT_SIGNING_KEY: "ed25519:" + base64url(seed)."""
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    return "ed25519:" + b64url(raw)


def load_env_key(value: str) -> Ed25519PrivateKey:
    """RECEIPT_SIGNING_KEY: the `ed25519:...` line `flask keys generate` prints, or a PEM
    (real line breaks or literal \\n, as some environment files need)."""
    value = value.strip()
    if value.startswith("ed25519:"):
        try:
            raw = b64url_decode(value[len("ed25519:"):])
        except (ValueError, TypeError):
            raw = b""
        if len(raw) != 32:
            raise ReceiptKeyError("RECEIPT_SIGNING_KEY is not a key: expected ed25519: and 43 base64url "
                                  "characters, as `flask --app app keys generate` prints")
        return Ed25519PrivateKey.from_private_bytes(raw)
    try:
        return load_private_pem(value.replace("\\n", "\n"))
    except ReceiptKeyError as e:
        raise ReceiptKeyError(f"RECEIPT_SIGNING_KEY: {e}") from None


def keys_dir() -> Path:
    configured = current_app.config.get("RECEIPT_KEYS_DIR")
    return Path(configured) if configured else Path(current_app.instance_path) / "receipt_keys"


def _ensure_dir(d: Path) -> None:
    d.mkdir(mode=0o700, parents=True, exist_ok=True)


def _temp_copy(path: Path, data: bytes, mode: int) -> str:
    """A fully written, fsynced temporary file beside `path`, with `mode` from the start."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _write_new(path: Path, data: bytes, mode: int) -> bool:
    """Create `path` with `data`, atomically and only if it does not exist yet; the file
    never exists, even briefly, with wider permissions or half-written. False if it existed."""
    tmp = _temp_copy(path, data, mode)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    return True


def _replace(path: Path, data: bytes, mode: int) -> None:
    tmp = _temp_copy(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _read_current(d: Path) -> str | None:
    try:
        kid = (d / CURRENT).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    if not KID_RE.match(kid):
        raise ReceiptKeyError(f"{d / CURRENT} does not hold a key id")
    return kid


def _store_public(d: Path, key: Ed25519PublicKey) -> str:
    kid = kid_for(key)
    if not (d / f"{kid}.pub").exists():
        _write_new(d / f"{kid}.pub", _public_pem(key), 0o644)
    return kid


def _new_key(d: Path) -> tuple[str, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    kid = _store_public(d, key.public_key())
    _write_new(d / f"{kid}.key", _private_pem(key), 0o600)
    return kid, key


def _load_dir_key(d: Path, kid: str) -> Ed25519PrivateKey:
    try:
        pem = (d / f"{kid}.key").read_bytes()
    except FileNotFoundError:
        raise ReceiptKeyError(f"the current receipt key {kid} has no private key in {d}: "
                        "run `flask --app app keys rotate` to make a new one") from None
    return load_private_pem(pem)


def signing_key() -> tuple[str, Ed25519PrivateKey]:
    """The current key id and private key; the first call on a new site creates the key."""
    env_key = current_app.config.get("RECEIPT_SIGNING_KEY")
    d = keys_dir()
    if env_key:
        key = load_env_key(env_key)
        try:
            _ensure_dir(d)
            kid = _store_public(d, key.public_key())  # keep it published after the variable changes
        except OSError as e:
            kid = kid_for(key.public_key())
            log.warning("cannot keep the public receipt key %s in %s: %s", kid, d, e)
        return kid, key
    kid = _read_current(d)
    if kid is not None:
        try:
            return kid, _load_dir_key(d, kid)
        except ReceiptKeyError:
            # `keys rotate` in another process may have just replaced it: read `current` again.
            kid = _read_current(d)
            return kid, _load_dir_key(d, kid)
    _ensure_dir(d)
    kid, key = _new_key(d)
    if _write_new(d / CURRENT, (kid + "\n").encode("ascii"), 0o644):
        log.info("created receipt signing key %s in %s", kid, d)
        return kid, key
    # Another process created the first key at the same moment: use its key, drop ours
    # (it never signed anything).
    for suffix in (".key", ".pub"):
        (d / f"{kid}{suffix}").unlink(missing_ok=True)
    kid = _read_current(d)
    return kid, _load_dir_key(d, kid)


@dataclass(frozen=True)
class PublicKey:
    kid: str
    key: Ed25519PublicKey
    current: bool

    def jwk(self) -> dict:
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw_public(self.key)), "kid": self.kid,
                "alg": "EdDSA", "use": "sig", "status": "current" if self.current else "retired"}


def public_keys() -> dict[str, PublicKey]:
    """Every key that may have signed a receipt here, by id (current and retired)."""
    d = keys_dir()
    current = None
    out: dict[str, PublicKey] = {}
    env_key = current_app.config.get("RECEIPT_SIGNING_KEY")
    if env_key:
        env_pub = load_env_key(env_key).public_key()
        current = kid_for(env_pub)
        out[current] = PublicKey(current, env_pub, True)
    else:
        current = _read_current(d)
    for path in sorted(d.glob("*.pub")) if d.is_dir() else ():
        kid = path.stem
        if not KID_RE.match(kid) or kid in out:
            continue
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except ValueError:
            log.warning("skipping %s: not a PEM public key", path)
            continue
        # The id is the key's own hash: a file renamed to another key's id is ignored.
        if isinstance(key, Ed25519PublicKey) and kid_for(key) == kid:
            out[kid] = PublicKey(kid, key, kid == current)
        else:
            log.warning("skipping %s: not the Ed25519 key its name says", path)
    return out


def jwks() -> dict:
    keys = sorted(public_keys().values(), key=lambda k: (not k.current, k.kid))
    return {"keys": [k.jwk() for k in keys]}


def verify(kid: object, signature: object, message: bytes) -> bool:
    if not isinstance(kid, str) or not KID_RE.match(kid) or not isinstance(signature, str):
        return False
    pub = public_keys().get(kid)
    if pub is None:
        return False
    try:
        sig = b64url_decode(signature)
    except (ValueError, TypeError):
        return False
    try:
        pub.key.verify(sig, message)
    except InvalidSignature:
        return False
    return True


def rotate() -> tuple[str | None, str]:
    """Make a new current key; delete the old private key (its public key stays). Returns
    (old id or None, new id)."""
    if current_app.config.get("RECEIPT_SIGNING_KEY"):
        raise ReceiptKeyError("RECEIPT_SIGNING_KEY is set, so the signing key comes from the environment: "
                        "put a new one there (`flask --app app keys generate` prints one) and restart; "
                        "the old public key stays published from " + str(keys_dir()))
    d = keys_dir()
    _ensure_dir(d)
    old = _read_current(d)
    kid, _key = _new_key(d)
    _replace(d / CURRENT, (kid + "\n").encode("ascii"), 0o644)
    if old is not None and old != kid:
        (d / f"{old}.key").unlink(missing_ok=True)
    log.info("rotated receipt signing key: %s -> %s", old, kid)
    return old, kid
