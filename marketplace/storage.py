"""Where uploaded files live: one interface, two backends, chosen by UPLOAD_STORAGE.

- ``local`` (the default): files under UPLOAD_DIR on this host's disk.
- ``s3://BUCKET[/PREFIX]``: an S3-compatible object store (AWS S3, MinIO, Ceph, Garage...),
  at S3_ENDPOINT_URL (unset: AWS), with S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY and
  S3_REGION. Every web process and worker on every host sees the same files.

The contract (tests/test_storage.py runs it against every backend):

- `write(name, data)` stores the bytes whole or not at all: a reader never sees part of a
  file, and a failed write leaves nothing behind under `name`. An existing name is refused
  (FileExistsError): stored files are never overwritten. A store that is out of space
  raises `StorageFull`; any other failure of the store raises `StorageError`; both carry a
  message that says what happened, without paths or credentials.
- `open(name)` gives a readable binary file; FileNotFoundError when there is none.
- `delete(name)` removes it (a missing name is not an error).
- `names()` lists every stored name (for backups); `exists(name)`.

Names are chosen by the caller (services/attachments.py: ``ideas/<32 hex digits>``): plain
relative paths of ``[a-z0-9_-]`` segments, checked here again so no name escapes the store.
"""
from __future__ import annotations

import errno
import io
import logging
import os
import re
import secrets
from pathlib import Path
from typing import BinaryIO, Iterator
from urllib.parse import urlsplit

from flask import Flask, current_app

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-z0-9_-]+(/[a-z0-9_-]+)*$")
FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class StorageError(RuntimeError):
    """The upload store failed; the message is safe to show (no path, no credentials)."""


class StorageFull(StorageError):
    """The upload store has no room left."""


def check_name(name: str) -> str:
    if not isinstance(name, str) or len(name) > 200 or not NAME_RE.match(name):
        raise ValueError(f"not a stored file name: {name!r}")
    return name


class LocalStorage:
    """Files in a folder. A write goes to a temporary file in the same folder, is flushed to
    disk, then hard-linked to its name (which fails if the name exists) and the temporary
    name removed: the name appears only with every byte behind it."""

    kind = "local"

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def describe(self) -> str:
        return f"local folder {self.root}"

    def _path(self, name: str) -> Path:
        return self.root / check_name(name)

    def write(self, name: str, data: bytes) -> None:
        path = self._path(name)
        tmp = path.with_name(f".part-{path.name}-{secrets.token_hex(4)}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.link(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        except FileExistsError:
            raise
        except OSError as e:
            if e.errno in FULL:
                log.error("upload store %s is full (%s)", self.root, e.strerror)
                raise StorageFull("The upload store is full, so the file could not be saved. Nothing was "
                                  "saved; please try again later.") from e
            log.exception("upload store %s: writing %s failed", self.root, name)
            raise StorageError("The upload store could not save the file. Nothing was saved; please try "
                               "again later.") from e

    def open(self, name: str) -> BinaryIO:
        return open(self._path(name), "rb")

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def names(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for p in sorted(self.root.rglob("*")):
            if p.is_file() and not p.name.startswith(".part-"):
                rel = p.relative_to(self.root).as_posix()
                if NAME_RE.match(rel):
                    yield rel


class S3Storage:
    """Objects in an S3 bucket under a prefix. A PUT is atomic in S3 (an object appears whole
    or not at all); an existing name is refused by a conditional PUT (If-None-Match: *)."""

    kind = "s3"

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 access_key: str | None = None, secret_key: str | None = None, region: str | None = None):
        try:
            import boto3
            from botocore.config import Config as BotoConfig
        except ImportError as e:  # pragma: no cover - the s3 extra is installed with the tests
            raise StorageError("UPLOAD_STORAGE=s3://... needs boto3: pip install 'open-innovation-marketplace[s3]'") \
                from e
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.client = boto3.client(
            "s3", endpoint_url=endpoint_url or None, aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None, region_name=region or "us-east-1",
            config=BotoConfig(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=60,
                              s3={"addressing_style": "path"}))

    def describe(self) -> str:
        where = self.endpoint_url or "AWS"
        return f"S3 bucket {self.bucket}" + (f" under {self.prefix}/" if self.prefix else "") + f" at {where}"

    def _key(self, name: str) -> str:
        check_name(name)
        return f"{self.prefix}/{name}" if self.prefix else name

    @staticmethod
    def _code(e) -> str:
        return str(getattr(e, "response", {}).get("Error", {}).get("Code", ""))

    def write(self, name: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self._key(name)
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*")
        except ClientError as e:
            code = self._code(e)
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise FileExistsError(name) from e
            if code in ("EntityTooLarge", "QuotaExceeded", "XMinioStorageFull", "InsufficientStorage"):
                log.error("upload store %s is full (%s)", self.describe(), code)
                raise StorageFull("The upload store is full, so the file could not be saved. Nothing was "
                                  "saved; please try again later.") from e
            log.error("upload store %s: writing %s failed: %s", self.describe(), name, code)
            raise StorageError("The upload store could not save the file. Nothing was saved; please try "
                               "again later.") from e
        except BotoCoreError as e:
            log.error("upload store %s: writing %s failed: %s", self.describe(), name, type(e).__name__)
            raise StorageError("The upload store could not be reached. Nothing was saved; please try again "
                               "later.") from e

    def open(self, name: str) -> BinaryIO:
        from botocore.exceptions import ClientError

        try:
            got = self.client.get_object(Bucket=self.bucket, Key=self._key(name))
        except ClientError as e:
            if self._code(e) in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(name) from e
            raise
        with got["Body"] as body:
            return io.BytesIO(body.read())  # attachments are small (MAX_UPLOAD_BYTES)

    def exists(self, name: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(name))
            return True
        except ClientError as e:
            if self._code(e) in ("NoSuchKey", "404", "NotFound"):
                return False
            raise

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(name))

    def names(self) -> Iterator[str]:
        start = f"{self.prefix}/" if self.prefix else ""
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start):
            for obj in page.get("Contents", []):
                name = obj["Key"][len(start):]
                if NAME_RE.match(name):
                    yield name


def from_config(config) -> LocalStorage | S3Storage:
    """The store UPLOAD_STORAGE names (see the module docstring); ValueError for a value
    that names none."""
    spec = (config.get("UPLOAD_STORAGE") or "local").strip()
    if spec == "local":
        return LocalStorage(config["UPLOAD_DIR"])
    parts = urlsplit(spec)
    if parts.scheme == "s3" and parts.netloc and not parts.query and not parts.fragment:
        return S3Storage(parts.netloc, parts.path, endpoint_url=config.get("S3_ENDPOINT_URL") or None,
                         access_key=config.get("S3_ACCESS_KEY_ID") or None,
                         secret_key=config.get("S3_SECRET_ACCESS_KEY") or None,
                         region=config.get("S3_REGION") or None)
    raise ValueError(f"UPLOAD_STORAGE must be 'local' or s3://BUCKET[/PREFIX], not {spec!r}")


def init_app(app: Flask) -> None:
    """Check UPLOAD_STORAGE at start (a wrong value stops the app with its message)."""
    store = from_config(app.config)
    if store.kind != "local":
        app.extensions["upload_storage"] = store


def get_storage(app: Flask | None = None) -> LocalStorage | S3Storage:
    """The app's store. The local one is made afresh from UPLOAD_DIR on each call (nothing to
    keep, and a config changed after start is followed); an S3 client is made once."""
    app = app or current_app
    if (app.config.get("UPLOAD_STORAGE") or "local").strip() == "local":
        return LocalStorage(app.config["UPLOAD_DIR"])
    store = app.extensions.get("upload_storage")
    if store is None:
        store = app.extensions["upload_storage"] = from_config(app.config)
    return store
