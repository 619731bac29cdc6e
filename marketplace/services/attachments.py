"""Idea attachments: an allow-list of types checked by content (magic bytes) *and* extension,
a size limit, storage outside ``static/`` under generated names.

A file is accepted only when its extension names an allowed type and its bytes are that
type; a ``.pdf`` holding a PNG, or a ``.png`` holding HTML, is refused with a message that
says what the content looks like. Files are written before the database commit and
removed again if the transaction fails (``discard``), so no row points at a missing file
and no stray file is kept for a refused upload.

The bytes go to the upload store (marketplace/storage.py: the local UPLOAD_DIR, or an
S3-compatible bucket) as ``ideas/<stored name>``. A store that is full or failing refuses the
upload with a 507 or 503 and its message; the files already written for the same submission
are removed and nothing is committed.
"""
from __future__ import annotations

import io
import logging
import os
import secrets
import unicodedata
import zipfile
from dataclasses import dataclass

from flask import current_app

from ..storage import StorageError, StorageFull, get_storage

from .common import ServiceError

# type -> (content type served, extensions, label)
TYPES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "pdf": ("application/pdf", (".pdf",), "PDF document"),
    "png": ("image/png", (".png",), "PNG image"),
    "jpeg": ("image/jpeg", (".jpg", ".jpeg"), "JPEG image"),
    "text": ("text/plain; charset=utf-8", (".txt", ".md", ".csv"), "plain text"),
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", (".docx",),
             "Word document"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", (".xlsx",),
             "Excel workbook"),
    "pptx": ("application/vnd.openxmlformats-officedocument.presentationml.presentation", (".pptx",),
             "PowerPoint presentation"),
}
EXT_TO_TYPE = {ext: t for t, (_ct, exts, _l) in TYPES.items() for ext in exts}
ALLOWED_EXTENSIONS = sorted(EXT_TO_TYPE)
OOXML_PREFIX = {"docx": "word/", "xlsx": "xl/", "pptx": "ppt/"}
MAX_FILES_PER_IDEA = 10
SUBDIR = "ideas"


def max_bytes() -> int:
    return int(current_app.config.get("IDEA_ATTACHMENT_MAX_BYTES")
               or current_app.config.get("MAX_CONTENT_LENGTH") or 10 * 1024 * 1024)


def sniff(data: bytes) -> str | None:
    """What the bytes are, from their content only (None: nothing we accept)."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                names = zf.namelist()  # the central directory only: nothing is extracted
        except (zipfile.BadZipFile, ValueError, OSError):
            return None
        if "[Content_Types].xml" not in names:
            return None
        for t, prefix in OOXML_PREFIX.items():
            if any(n.startswith(prefix) for n in names):
                return t
        return None
    if b"\x00" in data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(unicodedata.category(c) == "Cc" and c not in "\t\n\r\f" for c in text):
        return None
    return "text"


def describe(kind: str | None) -> str:
    return TYPES[kind][2] if kind in TYPES else "a file type we do not accept"


def clean_filename(name: str | None) -> str:
    """A display/download name: the base name, no control or path characters."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C" and c not in '<>:"|?*')
    base = base.strip().strip(".") or "attachment"
    if len(base) > 150:
        stem, ext = os.path.splitext(base)
        base = stem[: 150 - len(ext)] + ext
    return base


@dataclass
class CheckedFile:
    filename: str
    kind: str
    content_type: str
    data: bytes
    sha256: str
    size: int


def check_upload(filename: str | None, data: bytes) -> CheckedFile:
    """Validate one upload; raises ServiceError (413 too large, 415 wrong type, 400 empty)."""
    from ..audit import sha256_hex

    name = clean_filename(filename)
    limit = max_bytes()
    if len(data) > limit:
        raise ServiceError(f"“{name}” is too large: attachments may be at most {limit // (1024 * 1024)} MB "
                           f"({limit:,} bytes).", 413, field="attachments")
    if not data:
        raise ServiceError(f"“{name}” is empty.", field="attachments")
    ext = os.path.splitext(name)[1].lower()
    claimed = EXT_TO_TYPE.get(ext)
    if claimed is None:
        raise ServiceError(f"“{name}”: only these file types are accepted: {', '.join(ALLOWED_EXTENSIONS)}.",
                           415, field="attachments")
    actual = sniff(data)
    if actual != claimed:
        raise ServiceError(f"“{name}” is named as {describe(claimed)} but its content is "
                           f"{describe(actual)}; the file was refused.", 415, field="attachments")
    return CheckedFile(name, actual, TYPES[actual][0], data, sha256_hex(data), len(data))


def read_uploads(files) -> list[CheckedFile]:
    """Read and check werkzeug FileStorage objects (empty file inputs are skipped)."""
    out = []
    limit = max_bytes()
    for fs in files or []:
        if fs is None or not getattr(fs, "filename", ""):
            continue
        data = fs.read(limit + 1)
        out.append(check_upload(fs.filename, data))
    return out


def key_for(stored_name: str, subdir: str = SUBDIR) -> str:
    """The store's name for an upload; a 404 refusal for a name we never generate. Asset
    files (services/agreements.py) live under their own ``subdir``."""
    if not stored_name or len(stored_name) != 32 or not all(c in "0123456789abcdef" for c in stored_name):
        raise ServiceError("Not found.", 404)
    return f"{subdir}/{stored_name}"


def store(checked: CheckedFile, subdir: str = SUBDIR) -> str:
    """Write the bytes under a fresh random name; returns the stored name. The store writes
    a file whole or not at all; when it cannot (full, unreachable), a ServiceError (507 or
    503) says so and nothing was written under the name."""
    stored = secrets.token_hex(16)
    try:
        get_storage().write(key_for(stored, subdir), checked.data)
    except StorageFull as e:
        raise ServiceError(f"“{checked.filename}” could not be saved: {e}", 507, field="attachments") from e
    except StorageError as e:
        raise ServiceError(f"“{checked.filename}” could not be saved: {e}", 503, field="attachments") from e
    return stored


def open_stored(stored_name: str, subdir: str = SUBDIR):
    """The upload's bytes as a readable file; FileNotFoundError when the store has none."""
    return get_storage().open(key_for(stored_name, subdir))


def discard(stored_names: list[str], subdir: str = SUBDIR) -> None:
    """Remove files written for a transaction that did not commit."""
    store_ = get_storage()
    for s in stored_names:
        try:
            store_.delete(key_for(s, subdir))
        except Exception:  # noqa: BLE001 - cleanup goes on; a stray file is logged, never served
            logging.getLogger(__name__).exception("could not remove the unsaved upload %s", s)
