"""The upload store (marketplace/storage.py): one contract, run against every backend.

- ``local``: a folder in tmp.
- ``s3``: the S3 backend over real HTTP against moto's S3 server, started in this process
  on a free port of 127.0.0.1. moto is an *emulator* of S3 (a Python implementation of its
  HTTP API), not S3 or MinIO: it proves our requests, conditional writes, listing and error
  handling speak the S3 protocol, not how a given provider behaves under load.

Then a full store: on a real tiny tmpfs when this process may mount one (root, with the
mount capability), else by the ENOSPC the disk would give (raised by os.fsync, where a full
disk reports it): the upload is refused with a clear 507, and nothing is half-written (no
idea row, no attachment row, no file, no temporary file).
"""
from __future__ import annotations

import errno
import io
import os
import secrets
import socket
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import func, select

from marketplace.extensions import db
from marketplace.models import Idea, IdeaAttachment
from marketplace.storage import LocalStorage, S3Storage, StorageError, StorageFull, from_config

from .factories_ideas import PDF, IdeaFactories

BUCKET = "marketplace-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's S3 server (an emulator) on a free port; yields its URL with a bucket made."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    S3Storage(BUCKET, endpoint_url=url, access_key="test-key", secret_key="test-secret").client.create_bucket(
        Bucket=BUCKET)
    yield url
    server.stop()


def _s3(url: str) -> S3Storage:
    # A prefix of its own per test: the bucket is shared by the module's tests.
    return S3Storage(BUCKET, f"t{secrets.token_hex(4)}/uploads", endpoint_url=url, access_key="test-key",
                     secret_key="test-secret", region="eu-west-1")


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStorage(tmp_path / "uploads")
    return _s3(request.getfixturevalue("s3_endpoint"))


# --------------------------------------------------------------------------- the contract


def test_write_then_read_gives_the_same_bytes(store):
    data = os.urandom(300_000) + b"\x00\xff end"
    store.write("ideas/" + "a" * 32, data)
    with store.open("ideas/" + "a" * 32) as fh:
        assert fh.read() == data
    assert store.exists("ideas/" + "a" * 32)


def test_a_stored_file_is_never_overwritten(store):
    store.write("ideas/one", b"first")
    with pytest.raises(FileExistsError):
        store.write("ideas/one", b"second")
    assert store.open("ideas/one").read() == b"first"


def test_missing_files(store):
    with pytest.raises(FileNotFoundError):
        store.open("ideas/none")
    assert not store.exists("ideas/none")
    store.delete("ideas/none")  # not an error


def test_delete(store):
    store.write("ideas/gone", b"x")
    store.delete("ideas/gone")
    assert not store.exists("ideas/gone")
    with pytest.raises(FileNotFoundError):
        store.open("ideas/gone")


def test_names_lists_exactly_what_is_stored(store):
    assert list(store.names()) == []
    for name in ("ideas/b", "ideas/a", "other/c", "top"):
        store.write(name, name.encode())
    store.delete("ideas/b")
    assert sorted(store.names()) == ["ideas/a", "other/c", "top"]


@pytest.mark.parametrize("name", ["../escape", "/abs", "ideas/../x", "ideas/", "", "Ideas/X", "a b", "a\x00b",
                                  "x" * 201])
def test_names_outside_the_store_are_refused(store, name):
    with pytest.raises(ValueError):
        store.write(name, b"x")
    with pytest.raises(ValueError):
        store.open(name)


def test_a_failed_write_leaves_nothing(store, monkeypatch, tmp_path):
    """A store that cannot take the file (the disk full, the object store unreachable) says
    so with StorageError, and the name holds nothing afterwards."""
    if isinstance(store, LocalStorage):
        _fsync_says_disk_full(monkeypatch)
        broken = store
    else:
        broken = S3Storage(store.bucket, store.prefix, endpoint_url=f"http://127.0.0.1:{_free_port()}",
                           access_key="test-key", secret_key="test-secret")
        broken.client.meta.config.retries = {"max_attempts": 1}
    with pytest.raises(StorageError) as ei:
        broken.write("ideas/half", os.urandom(50_000))
    assert "Nothing was saved" in str(ei.value) and str(tmp_path) not in str(ei.value)
    monkeypatch.undo()
    assert not store.exists("ideas/half") and list(store.names()) == []


def test_the_store_is_chosen_by_upload_storage(tmp_path, s3_endpoint):
    assert isinstance(from_config({"UPLOAD_DIR": str(tmp_path)}), LocalStorage)
    s3 = from_config({"UPLOAD_DIR": str(tmp_path), "UPLOAD_STORAGE": f"s3://{BUCKET}/site/files",
                      "S3_ENDPOINT_URL": s3_endpoint, "S3_ACCESS_KEY_ID": "k", "S3_SECRET_ACCESS_KEY": "s"})
    assert isinstance(s3, S3Storage) and s3.bucket == BUCKET and s3.prefix == "site/files"
    s3.write("ideas/x", b"via config")
    assert s3.open("ideas/x").read() == b"via config"
    for bad in ("ftp://host/x", "s3://", "/var/uploads", "s3://b/p?endpoint=x"):
        with pytest.raises(ValueError, match="UPLOAD_STORAGE must be"):
            from_config({"UPLOAD_DIR": str(tmp_path), "UPLOAD_STORAGE": bad})


def test_a_wrong_upload_storage_stops_the_app_with_its_message(tmp_path):
    from marketplace import create_app
    from marketplace.config import ConfigError, TestingConfig

    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'x.db'}"
        UPLOAD_STORAGE = "gcs://bucket"

    with pytest.raises(ConfigError, match="UPLOAD_STORAGE must be 'local' or s3://"):
        create_app(Cfg)


# --------------------------------------------------------------------------- a full disk


def _fsync_says_disk_full(monkeypatch, after: int = 0):
    """os.fsync fails with ENOSPC (after `after` successful calls), as on a full disk."""
    real = os.fsync
    calls = {"n": 0}

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] > after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs when this process may mount one; else None (the caller simulates)."""
    where = tmp_path / "tiny"
    where.mkdir()
    if os.geteuid() != 0:
        yield None
        return
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=700", "tmpfs", str(where)],
                          capture_output=True)
    if done.returncode != 0:
        yield None
        return
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_full_disk_refuses_the_file_and_keeps_the_others(tiny_disk, tmp_path, monkeypatch):
    store = LocalStorage(tiny_disk or tmp_path / "uploads")
    store.write("ideas/first", b"1" * 20_000)
    if tiny_disk is None:
        _fsync_says_disk_full(monkeypatch)
    with pytest.raises(StorageFull) as ei:
        store.write("ideas/second", b"2" * 60_000)  # more than the 44 KiB left
    assert "The upload store is full" in str(ei.value)
    monkeypatch.undo()
    assert list(store.names()) == ["ideas/first"] and store.open("ideas/first").read() == b"1" * 20_000
    leftovers = [p.name for p in Path(store.root).rglob("*") if p.is_file()]
    assert leftovers == ["first"]  # no temporary file either


def test_a_submission_on_a_full_disk_gets_a_clear_507_and_writes_nothing(app, f, client, auth, tiny_disk,
                                                                          monkeypatch):
    fi = IdeaFactories(f)
    s = fi.challenge()
    auth.login(f.make_user().email)
    if tiny_disk is not None:
        app.config["UPLOAD_DIR"] = str(tiny_disk)
        files = [(io.BytesIO(PDF + b"a" * 30_000), "one.pdf"), (io.BytesIO(PDF + b"b" * 40_000), "two.pdf")]
    else:
        _fsync_says_disk_full(monkeypatch, after=1)  # the first file fits, the second does not
        files = [(io.BytesIO(PDF), "one.pdf"), (io.BytesIO(PDF), "two.pdf")]
    form = fi.form(s.challenge)
    form["attachments"] = files
    r = client.post(f"/challenges/{s.challenge.id}/ideas/new", data=form, content_type="multipart/form-data")
    text = r.get_data(as_text=True)
    assert r.status_code == 507, text[:500]
    assert "“two.pdf” could not be saved: The upload store is full" in text
    assert str(app.config["UPLOAD_DIR"]) not in text
    assert db.session.execute(select(func.count()).select_from(Idea)).scalar_one() == 0
    assert db.session.execute(select(func.count()).select_from(IdeaAttachment)).scalar_one() == 0
    updir = Path(app.config["UPLOAD_DIR"])
    assert not updir.exists() or not [p for p in updir.rglob("*") if p.is_file()]  # one.pdf was removed too
