"""Idea attachments: allow-list by content and extension, size limit, storage, serving."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from marketplace.extensions import db
from marketplace.models import Idea, IdeaAttachment
from marketplace.services import attachments as files_svc
from marketplace.services.common import ServiceError

from .factories_ideas import JPEG, PDF, PNG, IdeaFactories


@pytest.fixture
def fi(f):
    return IdeaFactories(f)


def ooxml(prefix: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr(f"{prefix}document.xml", "<doc/>")
    return buf.getvalue()


@pytest.mark.parametrize("name, data, kind", [
    ("a.pdf", PDF, "pdf"), ("b.PNG", PNG, "png"), ("c.jpg", JPEG, "jpeg"), ("c.jpeg", JPEG, "jpeg"),
    ("notes.txt", "Plain text, accents ok: é.\n".encode(), "text"), ("data.csv", b"a,b\n1,2\n", "text"),
    ("d.docx", ooxml("word/"), "docx"), ("e.xlsx", ooxml("xl/"), "xlsx"), ("f.pptx", ooxml("ppt/"), "pptx"),
])
def test_allowed_types(ctx, name, data, kind):
    checked = files_svc.check_upload(name, data)
    assert checked.kind == kind and checked.size == len(data)


@pytest.mark.parametrize("name, data, says", [
    ("evil.pdf", PNG, "named as PDF document but its content is PNG image"),
    ("page.png", b"<html><script>alert(1)</script></html>", "named as PNG image but its content is plain text"),
    ("x.txt", b"MZ\x90\x00\x03\x00\x00\x00", "content is a file type we do not accept"),
    ("report.docx", ooxml("xl/"), "content is Excel workbook"),
    ("fake.docx", b"PK\x03\x04 not really a zip", "a file type we do not accept"),
    ("plain.zip", ooxml("word/"), "only these file types"),
    ("script.html", b"<html></html>", "only these file types"),
    ("noext", PDF, "only these file types"),
])
def test_lying_or_unknown_types_are_refused(ctx, name, data, says):
    with pytest.raises(ServiceError) as ei:
        files_svc.check_upload(name, data)
    assert ei.value.status == 415 and says in ei.value.message


def test_filenames_are_cleaned(ctx):
    assert files_svc.clean_filename("../../etc/passwd.txt") == "passwd.txt"
    assert files_svc.clean_filename("C:\\Users\\me\\plan.pdf") == "plan.pdf"
    assert files_svc.clean_filename('a"b<c>\x00.pdf') == "abc.pdf"
    assert files_svc.clean_filename("") == "attachment"


def test_empty_and_too_large(app, ctx):
    app.config["IDEA_ATTACHMENT_MAX_BYTES"] = 100
    with pytest.raises(ServiceError) as ei:
        files_svc.check_upload("big.txt", b"x" * 101)
    assert ei.value.status == 413 and "at most" in ei.value.message
    with pytest.raises(ServiceError) as ei:
        files_svc.check_upload("empty.txt", b"")
    assert ei.value.status == 400


def _post(client, fi, challenge, files):
    form = fi.form(challenge)
    form["attachments"] = files
    return client.post(f"/challenges/{challenge.id}/ideas/new", data=form, content_type="multipart/form-data")


def test_lying_attachment_over_http_writes_nothing(app, f, fi, client, auth):
    s = fi.challenge()
    auth.login(f.make_user().email)
    r = _post(client, fi, s.challenge, [(io.BytesIO(PDF), "ok.pdf"), (io.BytesIO(PNG), "liar.pdf")])
    assert r.status_code == 415 and "liar.pdf" in r.get_data(as_text=True)
    assert db.session.execute(select(func.count()).select_from(Idea)).scalar_one() == 0
    updir = Path(app.config["UPLOAD_DIR"]) / "ideas"
    assert not updir.exists() or not any(updir.iterdir())


def test_per_file_limit_gives_a_clear_413(app, f, fi, client, auth):
    app.config["IDEA_ATTACHMENT_MAX_BYTES"] = 1024 * 1024
    s = fi.challenge()
    auth.login(f.make_user().email)
    r = _post(client, fi, s.challenge, [(io.BytesIO(b"a" * (1024 * 1024 + 1)), "long.txt")])
    assert r.status_code == 413 and "at most 1 MB" in r.get_data(as_text=True)
    assert db.session.execute(select(func.count()).select_from(Idea)).scalar_one() == 0


def test_request_over_the_upload_limit_gives_413_with_message(app, f, fi, client, auth):
    app.config["MAX_CONTENT_LENGTH"] = 2 * 1024 * 1024
    s = fi.challenge()
    auth.login(f.make_user().email)
    r = _post(client, fi, s.challenge, [(io.BytesIO(b"a" * (3 * 1024 * 1024)), "huge.txt")])
    assert r.status_code == 413 and "the limit is 2 MB" in r.get_data(as_text=True)


def test_files_are_stored_outside_static_under_generated_names(app, f, fi):
    s = fi.challenge()
    u = f.make_user()
    idea = fi.submit(u, s.challenge, uploads=[_fs("Plan.pdf", PDF)])
    att = idea.current_attachments[0]
    path = Path(app.config["UPLOAD_DIR"]) / "ideas" / att.stored_name  # the local store's layout
    assert path.read_bytes() == PDF and files_svc.open_stored(att.stored_name).read() == PDF
    assert len(att.stored_name) == 32 and "Plan" not in att.stored_name
    assert Path(app.config["UPLOAD_DIR"]) in path.parents
    assert Path(app.static_folder) not in path.parents
    assert att.sha256 == files_svc.check_upload("x.pdf", PDF).sha256


def _fs(name, data):
    from werkzeug.datastructures import FileStorage

    return FileStorage(stream=io.BytesIO(data), filename=name)


def test_download_headers_and_policy(f, fi, client, auth):
    s = fi.challenge(confidentiality="sealed")
    author, other = f.make_user(), f.make_user()
    idea = fi.submit(author, s.challenge, uploads=[_fs("notes.txt", b"<script>alert(1)</script>")])
    att = idea.current_attachments[0]
    url = f"/ideas/{idea.id}/files/{att.id}"
    assert client.get(url).status_code == 404  # anonymous
    auth.login(other.email)
    assert client.get(url).status_code == 404  # another contributor: sealed
    auth.logout()
    auth.login(author.email)
    r = client.get(url)
    assert r.status_code == 200 and r.data == b"<script>alert(1)</script>"
    assert r.headers["Content-Disposition"].startswith("attachment")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Content-Type"].startswith("text/plain")
    assert "no-store" in r.headers["Cache-Control"]
    other_idea = fi.submit(other, s.challenge)
    assert client.get(f"/ideas/{other_idea.id}/files/{att.id}").status_code == 404  # wrong idea in the URL


def test_revision_adds_and_removes_attachments_keeping_history(f, fi, client, auth):
    s = fi.challenge()
    u = f.make_user()
    idea = fi.submit(u, s.challenge, uploads=[_fs("v1.pdf", PDF)])
    old = idea.current_attachments[0]
    auth.login(u.email)
    form = fi.form(s.challenge, title=idea.title, summary=idea.summary, body=idea.body)
    for k in ("submission_key", "challenge_id"):
        form.pop(k)
    form["remove"] = str(old.id)
    form["attachments"] = [(io.BytesIO(PNG), "v2.png")]
    r = client.post(f"/ideas/{idea.id}/revise", data=form, content_type="multipart/form-data")
    assert r.status_code == 302, r.data
    db.session.expire_all()
    idea = db.session.get(Idea, idea.id)
    assert [a.filename for a in idea.current_attachments] == ["v2.png"]
    assert db.session.get(IdeaAttachment, old.id).removed_in_revision == 2
    assert client.get(f"/ideas/{idea.id}/files/{old.id}").status_code == 200  # history stays readable
    rev1 = client.get(f"/ideas/{idea.id}/revisions/1")
    assert b"v1.pdf" in rev1.data


def test_stored_name_must_be_hex(ctx):
    with pytest.raises(ServiceError):
        files_svc.key_for("../../etc/passwd")
    assert files_svc.key_for("ab" * 16) == "ideas/" + "ab" * 16
