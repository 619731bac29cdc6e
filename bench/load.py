"""Load, concurrency and fault benchmark (issue 13).

    python bench/load.py                       # SQLite
    python bench/load.py --db postgres         # the scripts/pg.sh server
    python bench/load.py --db both --duration 20 --users 24 --writers 50
    python bench/load.py --db both --parts aimed  # only the kills aimed at idea POSTs

One run, against the site as `make serve` runs it (scripts/run.sh gunicorn: 4 sync workers on
127.0.0.1 and one `flask worker` beside them, which writes the search index) on bench/dataset.py's data, with the
hello-world ceiling (bench/hello_app.py, same gunicorn settings) measured before and after:

1. The mix: `--users` virtual users for `--duration` s. Each request is anonymous browsing or
   search (70%), signed-in browsing (20%) or a write (10%: comments, questions, idea
   submissions, reports), each visitor with an address of its own (X-Forwarded-For, the site
   runs with TRUSTED_PROXIES=1) so per-address limits apply per visitor. Printed per kind of
   page: requests per second, p50/p95/p99, errors and the ratio to the ceiling.
2. `--writers` concurrent writers (50), each posting a few comments, questions, an idea and a
   report at the same moment.
3. Faults: kill -9 of a gunicorn worker while ideas are being submitted (a failed submission
   is sent again with the same form, as a person pressing the button again would: the
   submission key makes it land once), and kill -9 of the `flask worker` (the search index
   writer) while the outbox holds a batch of jobs (run.sh's supervisor starts it again).
   Then kills aimed at one idea POST each (`aimed`): the POST goes out on a socket of its own,
   the gunicorn worker holding that connection is found in /proc and killed -9 while its body
   is arriving, half-way through, or the moment its idea is committed (seen from another
   connection) before the answer; the person then sends the same form (same submission key)
   again, and the database must hold exactly one idea and one acceptance receipt for the key.
4. Afterwards: every write the server confirmed (302) is in the database once, with its
   dependent rows (an idea's author, revision and acceptance) and its audit event; the
   outbox drains; `flask search verify` and `flask audit verify` pass; no "database is
   locked" in the answers or the server log.

Every write carries a marker of the run, so the checks find exactly this run's rows.
"""
from __future__ import annotations

import argparse
import html as htmlmod
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import warnings
from html.parser import HTMLParser
from pathlib import Path

warnings.filterwarnings("ignore", category=SyntaxWarning)
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dataset  # noqa: E402
from loadkit import (BIN, ROOT, Browser, Recorder, connection_owner, cycle_user, hello_server, ms,  # noqa: E402
                     run_load, site_server, table, timed)
from pages import LoadSampler  # noqa: E402


class FormFields(HTMLParser):
    """The fields of the first form whose action contains `action` (hidden values kept)."""

    def __init__(self, action: str):
        super().__init__()
        self.action, self.inside, self.done = action, False, False
        self.fields: dict[str, str] = {}
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        # The form posting to `action`, or to its own page (no action attribute).
        if tag == "form" and not self.done and (a.get("method") or "").lower() == "post" \
                and (not a.get("action") or self.action in a["action"]):
            self.inside = True
        elif self.inside and tag == "input" and a.get("name"):
            if a.get("type") not in ("checkbox", "radio", "submit", "file"):
                self.fields[a["name"]] = a.get("value") or ""
        elif self.inside and tag == "textarea" and a.get("name"):
            self._textarea = a["name"]
            self.fields[a["name"]] = ""

    def handle_data(self, data):
        if self._textarea:
            self.fields[self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "textarea":
            self._textarea = None
        if tag == "form" and self.inside:
            self.inside, self.done = False, True


def form_of(page: bytes, action: str) -> dict[str, str]:
    p = FormFields(action)
    p.feed(page.decode("utf-8", "replace"))
    if not p.fields:
        raise RuntimeError(f"no form posting to {action}")
    return {k: htmlmod.unescape(v) for k, v in p.fields.items()}


# --------------------------------------------------------------------------- writes


class Writer:
    """A signed-in person who writes; every write is noted (kind, marker, confirmed or not)."""

    def __init__(self, port, account, address, manifest, run, rec, vu):
        self.b = Browser(port, timeout=60, forwarded_for=address)
        self.account, self.m, self.run, self.rec, self.vu = account, manifest, run, rec, vu
        self.n = 0
        self.used_challenges: set[int] = set()
        self.reported: set[int] = set()
        self.rng = random.Random(f"{run}-{vu}")  # another run picks other challenges

    def sign_in(self):
        self.b.sign_in(self.account["email"], self.account["password"])

    def marker(self, kind) -> str:
        self.n += 1
        return f"benchrun{self.run} {kind} vu{self.vu} n{self.n}"

    def _post(self, kind, form_path, action, fill, label_prefix="write", retries=0):
        got = timed(self.rec, f"{label_prefix}: {kind} form (GET)", lambda: self.b.get(form_path))
        if not got:
            self.rec.note({"kind": kind, "marker": None, "ok": False, "why": "form page failed"})
            return
        try:
            fields = form_of(got[1], action)
        except RuntimeError:
            # The page refuses this person (e.g. a challenge whose NDA they have not accepted).
            m = re.search(r"You cannot [^:<]*: ([^<]{0,120})", got[1].decode("utf-8", "replace"))
            self.rec.note({"kind": kind, "marker": None, "ok": False,
                           "why": "refused: " + (m.group(1).strip() if m else "no form on the page")})
            return False
        marker = fill(fields)
        for attempt in range(retries + 1):
            res = timed(self.rec, f"{label_prefix}: {kind} (POST)", lambda: self.b.post(action, fields), ok=(302,))
            if res:
                self.rec.note({"kind": kind, "marker": marker, "ok": True, "attempts": attempt + 1})
                return
            time.sleep(0.5)
        self.rec.note({"kind": kind, "marker": marker, "ok": False, "why": "not confirmed"})

    def comment(self, **kw):
        f = self.rng.choice(self.m["open_public_failures"])

        def fill(fields):
            mk = self.marker("comment")
            fields["body"] = f"{mk}: what we learned from the pilot, with numbers."
            return mk
        self._post("comment", f"/engage/failures/{f}/comment", f"/engage/failures/{f}/comment", fill, **kw)

    def question(self, **kw):
        c = self.rng.choice(self.m["open_public_challenges"])

        def fill(fields):
            mk = self.marker("question")
            fields["body"] = f"{mk}: which data formats does the pilot accept?"
            return mk
        self._post("question", f"/engage/challenges/{c}/ask", f"/engage/challenges/{c}/ask", fill, **kw)

    def idea(self, **kw):
        for _try in range(6):  # a challenge that refuses this person (NDA first...): another one
            left = [c for c in self.m["open_public_challenges"] if c not in self.used_challenges]
            c = self.rng.choice(left)
            self.used_challenges.add(c)
            if self._idea(c, **kw) is not False:
                return

    def _idea(self, c, **kw):

        def fill(fields):
            mk = self.marker("idea")
            fields.update(title=f"{mk} idea", summary="A pilot in three months.",
                          body=f"{mk}\n\nWe would start with a **pilot** in one plant.", accept_terms="y",
                          confirm_eligibility="y", confirm_coi="y", coauthors="")
            return mk
        return self._post("idea", f"/challenges/{c}/ideas/new", f"/challenges/{c}/ideas/new", fill, **kw)

    def idea_form(self) -> tuple[str, dict, str]:
        """A filled idea form as the page gives it (its CSRF token and submission key), not
        sent: (action, fields, marker). Tries other challenges when one refuses this person."""
        for _try in range(12):
            left = [c for c in self.m["open_public_challenges"] if c not in self.used_challenges]
            c = self.rng.choice(left)
            self.used_challenges.add(c)
            action = f"/challenges/{c}/ideas/new"
            status, page, _h = self.b.get(action)
            if status != 200:
                continue
            try:
                fields = form_of(page, action)
            except RuntimeError:
                continue  # refused (already took part, NDA first...): another challenge
            mk = self.marker("idea")
            # A long body (about 20 KB) so a request cut in the middle of its body is one.
            fields.update(title=f"{mk} idea", summary="A pilot in three months.",
                          body=f"{mk}\n\n" + "We would start with a **pilot** in one plant. " * 400,
                          accept_terms="y", confirm_eligibility="y", confirm_coi="y", coauthors="")
            return action, fields, mk
        raise RuntimeError(f"no challenge offered {self.account['email']} an idea form")

    def report(self, **kw):
        left = [c for c in self.m["open_public_failures"] if c not in self.reported]
        f = self.rng.choice(left)
        self.reported.add(f)

        def fill(fields):
            mk = self.marker("report")
            fields.update(category="spam", note=f"{mk}: looks like an advert.")
            return mk
        self._post("report", f"/moderation/report/failure/{f}", f"/moderation/report/failure/{f}", fill, **kw)


def address(vu: int, kind: int) -> str:
    return f"10.{kind}.{vu // 250}.{vu % 250 + 1}"


ANON = [("home", 15, lambda m, r: "/"), ("challenge list", 15, lambda m, r: "/challenges/"),
        ("challenge page", 20, lambda m, r: f"/challenges/{r.choice(m['open_public_challenges'])}"),
        ("failure page", 15, lambda m, r: f"/failures/{r.choice(m['open_public_failures'])}"),
        ("search", 20, lambda m, r: f"/search?q={r.choice(m['search_words'])}"),
        ("API list", 8, lambda m, r: "/api/v1/challenges"),
        ("Atom feed", 7, lambda m, r: "/feeds/challenges.atom")]
SIGNED = ANON[:5] + [("notifications", 10, lambda m, r: "/notifications/")]


def mix_user(port, manifest, run, write_budget=20):
    def user(index, rec):
        rng = random.Random(f"{run}-{1000 + index}")
        anon = Browser(port, forwarded_for=address(index, 1))
        w = Writer(port, manifest["writers"][index % 100], address(index, 2), manifest, run, rec, index)
        w.sign_in()
        writes = [0]

        def act():
            r = rng.random()
            if r < .70:
                name, _w, path = rng.choices(ANON, [a[1] for a in ANON])[0]
                timed(rec, f"anonymous: {name}", lambda: anon.get(path(manifest, rng)))
            elif r < .90 or writes[0] >= write_budget:
                name, _w, path = rng.choices(SIGNED, [a[1] for a in SIGNED])[0]
                timed(rec, f"signed-in: {name}", lambda: w.b.get(path(manifest, rng)))
            else:
                writes[0] += 1
                what = rng.choices(["comment", "question", "idea", "report"], [40, 40, 10, 10])[0]
                if what == "idea" and len(w.used_challenges) >= 3:
                    what = "comment"
                getattr(w, what)()
        return act
    return user


def _plan_user(w: Writer, plan: list, **kw):
    steps = list(plan)

    def act():
        getattr(w, steps.pop(0))(**kw)
        return not steps
    return act


def writers_user(port, manifest, run, first: int, plan: list[str]):
    """Writers that do `plan` (e.g. idea, comment, ...) all at the same moment, then stop."""
    def user(index, rec):
        w = Writer(port, manifest["writers"][first + index], address(first + index, 3), manifest, run, rec,
                   first + index)
        w.sign_in()
        return _plan_user(w, plan, label_prefix="writers")
    return user


def fault_idea_user(port, manifest, run, first: int, n: int, victim: int | None):
    """Writers submitting ideas; a submission that fails (the worker was killed under it) is
    posted again with the same form (same submission key). The first writer kills `victim`
    (a gunicorn worker) 0.3 s after they all start submitting."""
    def user(index, rec):
        w = Writer(port, manifest["writers"][first + index], address(first + index, 4), manifest, run, rec,
                   first + index)
        w.sign_in()
        act = _plan_user(w, ["idea"] * n, label_prefix="fault", retries=3)
        if index != 0 or not victim:
            return act
        armed = []

        def first_act():
            if not armed:
                import threading

                def kill():
                    os.kill(victim, signal.SIGKILL)
                    rec.note({"kind": "killed", "marker": None, "ok": True, "pid": victim})
                threading.Timer(0.3, kill).start()
                armed.append(1)
            return act()
        return first_act
    return user


def fault_comment_user(port, manifest, run, first: int, n: int):
    def user(index, rec):
        w = Writer(port, manifest["writers"][first + index], address(first + index, 5), manifest, run, rec,
                   first + index)
        w.sign_in()
        return _plan_user(w, ["comment"] * n, label_prefix="fault")
    return user


# --------------------------------------------------------------------------- aimed kill


class RawPost:
    """One form POST on a socket of its own, sent in parts: the bench knows the connection
    (its client port), so it can find the gunicorn worker that holds it and kill -9 that
    worker while the request is in flight."""

    def __init__(self, b: Browser, path: str, fields: dict):
        self.body = urllib.parse.urlencode(fields).encode()
        h = b._headers({"Host": f"127.0.0.1:{b.port}", "Content-Type": "application/x-www-form-urlencoded",
                        "Content-Length": str(len(self.body)), "Connection": "close"})
        self.head = (f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items())
                     + "\r\n").encode()
        self.sock = socket.create_connection(("127.0.0.1", b.port), timeout=60)
        self.client_port = self.sock.getsockname()[1]
        self.sent = 0
        self.finished_at = 0.0

    def send(self, upto: int | None = None) -> None:
        """The head and the body up to byte `upto` (all of it by default)."""
        if not self.sent:
            self.sock.sendall(self.head)
        end = len(self.body) if upto is None else upto
        self.sock.sendall(self.body[self.sent:end])
        self.sent = end
        self.finished_at = time.perf_counter()

    def answer(self) -> str:
        """What the client got: "HTTP nnn" or how the connection ended without an answer."""
        data = b""
        try:
            while True:
                got = self.sock.recv(65536)
                if not got:
                    break
                data += got
        except OSError as e:
            if not data:
                return f"connection dropped ({type(e).__name__}), no answer"
        finally:
            self.sock.close()
        if not data:
            return "connection closed, no answer"
        m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
        return f"HTTP {m.group(1).decode()}" if m else f"a broken answer ({len(data)} bytes)"


class KeyProbe:
    """What the database holds for one submission key: the ideas made with it and their
    acceptance receipts (one connection, polled quickly while a request is in flight)."""

    def __init__(self, url: str):
        from sqlalchemy import create_engine

        self.engine = create_engine(url)
        self.conn = self.engine.connect()

    def ideas(self, author_id: int, key: str) -> list[int]:
        from sqlalchemy import text

        ids = [r[0] for r in self.conn.execute(text(
            "SELECT id FROM ideas WHERE author_id = :a AND submission_key = :k"), {"a": author_id, "k": key})]
        self.conn.rollback()  # a fresh snapshot for the next poll
        return ids

    def receipts(self, idea_ids: list[int]) -> int:
        from sqlalchemy import bindparam, text

        if not idea_ids:
            return 0
        n = self.conn.execute(text("SELECT COUNT(*) FROM terms_acceptances WHERE purpose = 'submission' "
                                   "AND idea_id IN :ids").bindparams(bindparam("ids", expanding=True)),
                              {"ids": idea_ids}).scalar()
        self.conn.rollback()
        return n

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()


AIMS = {
    "none": "no kill (the baseline: a normal submission)",
    "body": "while its body was arriving (half of it sent)",
    "midway": "half a normal submission's time after its last byte",
    "commit": "the moment its idea was committed (the row seen by another connection), before the answer",
}


def aimed_idea_kills(site, env, manifest, run, first: int, rec) -> list[dict]:
    """Each shot: a writer opens an idea form (its submission key), the POST goes out on a
    socket of its own, the gunicorn worker holding that connection is found (/proc) and
    killed with SIGKILL at the shot's moment; then the writer sends the SAME form again (as a
    person pressing the button again, or the browser resending, would) and the database must
    hold exactly one idea for the key and one acceptance receipt for it."""
    probe = KeyProbe(env["DATABASE_URL"])
    shots = []
    baseline = None
    n = 0
    try:
        for aim in AIMS:
            for attempt in range(1, 4):  # a kill that came after the answer was out: once more
                shot = _aimed_shot(site, manifest, run, first + n, rec, probe, aim, baseline)
                n += 1
                shot["attempt"] = attempt
                if aim == "none":
                    baseline = shot["seconds"]
                if aim == "none" or shot["in flight"]:
                    break
            shots.append(shot)
    finally:
        probe.close()
    return shots


def _aimed_shot(site, manifest, run, vu, rec, probe, aim, baseline) -> dict:
    acct = manifest["writers"][vu]
    w = Writer(site.port, acct, address(vu, 6), manifest, run, rec, vu)
    w.sign_in()
    action, fields, marker = w.idea_form()
    key = fields["submission_key"]
    shot = {"aim": aim, "marker": marker, "key": key, "killed": None, "when": ""}
    workers = site.gunicorn_workers()
    raw = RawPost(w.b, action, fields)
    t0 = time.perf_counter()
    raw.send(len(raw.body) // 2 if aim == "body" else None)
    owner, deadline = None, time.time() + 10
    while owner is None and time.time() < deadline:
        owner = connection_owner(site.port, raw.client_port, workers)
    if aim == "none":
        pass
    elif owner is None:
        shot["when"] = "the worker holding the connection was not found: not killed"
    elif aim == "body":
        time.sleep(0.2)  # the worker is blocked reading the rest of the body
        os.kill(owner, signal.SIGKILL)
        shot["killed"], shot["when"] = owner, f"{raw.sent:,} of {len(raw.body):,} bytes sent"
    elif aim == "midway":
        time.sleep(max(0.0, baseline / 2 - (time.perf_counter() - raw.finished_at)))
        os.kill(owner, signal.SIGKILL)
        shot["killed"] = owner
        shot["when"] = (f"{1000 * (time.perf_counter() - raw.finished_at):.0f} ms after the last byte "
                        f"(a normal submission took {1000 * baseline:.0f} ms)")
    elif aim == "commit":
        end = time.time() + 30
        while time.time() < end and not probe.ideas(acct["id"], key):
            time.sleep(0.0002)
        os.kill(owner, signal.SIGKILL)
        shot["killed"] = owner
        shot["when"] = f"{1000 * (time.perf_counter() - raw.finished_at):.0f} ms after the last byte"
    shot["client saw"] = raw.answer()
    shot["seconds"] = time.perf_counter() - t0
    # In flight: the worker died before its answer reached the client.
    shot["in flight"] = bool(shot["killed"]) and not shot["client saw"].startswith("HTTP")
    shot["in db after the kill"] = len(probe.ideas(acct["id"], key))
    # The same form again (same CSRF token, same submission key), as the person would.
    status, _body, h = w.b.post(action, fields)
    shot["retry"] = f"HTTP {status}"
    if status == 302:
        _s, page, _h = w.b.get(urllib.parse.urlsplit(h.get("Location", "")).path)
        shot["retry"] += (" (the idea made before: \"already submitted\")" if b"already submitted" in page
                          else " (a new idea)")
    ids = probe.ideas(acct["id"], key)
    shot["ideas"], shot["receipts"] = len(ids), probe.receipts(ids)
    shot["ok"] = shot["ideas"] == 1 and shot["receipts"] == 1 and status == 302
    rec.note({"kind": "idea", "marker": marker, "ok": status == 302, "attempts": 2})
    time.sleep(1.0)  # let gunicorn's master replace the killed worker before the next shot
    return shot


# --------------------------------------------------------------------------- checks


def check(env, run: str, notes: list[dict]) -> dict:
    """What the database, the audit chain and the index hold of this run's writes."""
    from sqlalchemy import func, select

    app = dataset.make_app(dict(env, SEARCH_WORKER="off"))
    from marketplace.extensions import db
    from marketplace.models import (AuditEvent, Comment, Idea, IdeaAuthor, IdeaRevision, Question, Report,
                                    SearchOutbox, TermsAcceptance)

    tag = f"benchrun{run} "
    out: dict = {}
    with app.app_context():
        found: dict[str, dict[str, list[int]]] = {}

        def collect(kind, model, column, action):
            rows = db.session.execute(select(model.id, column).where(column.like(f"%{tag}%"))).all()
            by = {}
            for rid, text in rows:
                m = re.search(rf"benchrun{run} {kind} vu\d+ n\d+", text)
                by.setdefault(m.group(0), []).append(rid)
            found[kind] = by
            ids = [i for v in by.values() for i in v]
            audited = set()
            if action and ids:
                audited = set(db.session.execute(select(AuditEvent.subject_id).where(
                    AuditEvent.action == action, AuditEvent.subject_id.in_(ids))).scalars())
            return ids, audited

        idea_ids, idea_aud = collect("idea", Idea, Idea.title, "idea.submitted")
        com_ids, com_aud = collect("comment", Comment, Comment.body, "comment.posted")
        q_ids, q_aud = collect("question", Question, Question.body, "question.asked")
        r_ids, _ = collect("report", Report, Report.note, None)
        incomplete = []
        for iid in idea_ids:
            a = db.session.execute(select(func.count()).where(IdeaAuthor.idea_id == iid)).scalar()
            rv = db.session.execute(select(func.count()).where(IdeaRevision.idea_id == iid)).scalar()
            ac = db.session.execute(select(func.count()).where(TermsAcceptance.idea_id == iid)).scalar()
            if not (a and rv and ac):
                incomplete.append(iid)
        audited = {"idea": (idea_ids, idea_aud), "comment": (com_ids, com_aud), "question": (q_ids, q_aud)}
        per_kind = {}
        for kind in ("idea", "comment", "question", "report"):
            confirmed = {n["marker"] for n in notes if n["kind"] == kind and n["ok"]}
            unconfirmed = {n["marker"] for n in notes if n["kind"] == kind and not n["ok"] and n["marker"]}
            have = found.get(kind, {})
            ids, aud = audited.get(kind, ([], None))
            per_kind[kind] = {
                "confirmed": len(confirmed),
                "in database": sum(1 for mk in confirmed if mk in have),
                "lost": sorted(mk for mk in confirmed if mk not in have),
                "duplicated": sorted(mk for mk, v in have.items() if len(v) > 1),
                "unconfirmed (in db / not)": f"{sum(1 for mk in unconfirmed if mk in have)}/"
                                             f"{sum(1 for mk in unconfirmed if mk not in have)}",
                "in audit chain": "-" if aud is None else f"{len(aud)}/{len(ids)}",
                "refused": sum(1 for n in notes if n["kind"] == kind and str(n.get("why", "")).startswith("refused")),
            }
        out["writes"] = per_kind
        out["incomplete ideas"] = incomplete
        out["outbox pending"] = db.session.execute(select(func.count(SearchOutbox.id))).scalar()
    return out


def flask(env, *args) -> tuple[int, str]:
    r = subprocess.run([str(BIN / "flask"), "--app", "app", *args], cwd=ROOT, env=dict(env, SEARCH_WORKER="off"),
                       capture_output=True, text=True)
    return r.returncode, (r.stdout + r.stderr).strip()


def wait_outbox(env, limit: float = 120) -> tuple[int, float]:
    """Wait until the index writer has applied every job; (pending left, seconds waited)."""
    from sqlalchemy import create_engine, text

    eng = create_engine(env["DATABASE_URL"])
    t = time.time()
    try:
        while True:
            with eng.connect() as c:
                n = c.execute(text("SELECT COUNT(*) FROM search_outbox")).scalar()
            if n == 0 or time.time() - t > limit:
                return n, time.time() - t
            time.sleep(0.5)
    finally:
        eng.dispose()


def outbox_now(env) -> int:
    from sqlalchemy import create_engine, text

    eng = create_engine(env["DATABASE_URL"])
    try:
        with eng.connect() as c:
            return c.execute(text("SELECT COUNT(*) FROM search_outbox")).scalar()
    finally:
        eng.dispose()


# --------------------------------------------------------------------------- the run


def stats_rows(stats, elapsed, ceil_rps, prefix_order=("anonymous", "signed-in", "write", "writers", "fault")):
    rows = []
    for label in sorted(stats, key=lambda k: ([i for i, p in enumerate(prefix_order) if k.startswith(p)] or [9])[0]):
        s = stats[label]
        rps = len(s.latencies) / elapsed
        rows.append([label, str(len(s.latencies) + s.errors), f"{rps:.1f}", ms(s.pct(50)), ms(s.pct(95)),
                     ms(s.pct(99)), f"{100 * rps / ceil_rps:.2f}%" if ceil_rps else "-",
                     str(s.errors) + (f" {sorted(k[:60] for k in s.error_kinds)[:3]}" if s.errors else "")])
    return rows


class Printed(list):
    """The report: each part is printed as soon as it is known (a long run shows progress)."""

    def append(self, text) -> None:
        print(text, flush=True)
        super().append(text)


def say(*a) -> None:
    print("load:", *a, file=sys.stderr, flush=True)


def faults(db, site, env, manifest, run, notes, report) -> None:
    """3. kill -9 of a gunicorn worker while ideas are submitted (timed, not aimed), and of the
    `flask worker` while the outbox holds a batch."""
    say(db, 'fault: kill -9 of a gunicorn worker')
    # 3a. kill -9 a gunicorn worker while ideas are submitted
    fault_notes: list[dict] = []
    workers_before = site.gunicorn_workers()
    victim = workers_before[0] if workers_before else None
    fstats, fel = run_load(fault_idea_user(site.port, manifest, run, 150, 3, victim), 10, 600, 2,
                           fault_notes)
    killed = {"worker": next((n["pid"] for n in fault_notes if n["kind"] == "killed"), None)}
    fault_notes = [n for n in fault_notes if n["kind"] != "killed"]
    notes.extend(fault_notes)
    retried = sum(1 for n in fault_notes if n.get("attempts", 1) > 1)
    report.append(f"\n### fault: kill -9 of gunicorn worker {killed.get('worker')} 0.3 s after the first of 10 writers "
                  f"began submitting 3 ideas each ({fel:.1f} s): {sum(n['ok'] for n in fault_notes)} of "
                  f"{len(fault_notes)} confirmed, {retried} after a retry with the same form; errors seen "
                  f"by the clients: {sum(s.errors for s in fstats.values())}")
    say(db, 'fault: kill -9 of the index writer')
    # 3b. kill -9 the index writer with a batch in the outbox
    burst: list[dict] = []
    import threading

    shot: dict = {}
    burst_done = threading.Event()

    def kill_writer_mid_batch():
        # As soon as the outbox holds a batch while writes keep coming: kill -9 the writer.
        t_end = time.time() + 120
        while time.time() < t_end and not shot and not burst_done.is_set():
            pending = outbox_now(env)
            if pending >= 3:
                pids = site.background_workers()
                if pids:
                    os.kill(pids[0], signal.SIGKILL)
                    shot.update(pid=pids[0], pending=pending)
                    return
            time.sleep(0.05)
    killer = threading.Thread(target=kill_writer_mid_batch)
    killer.start()
    bstats, bel = run_load(fault_comment_user(site.port, manifest, run, 160, 4), 20, 600, 2, burst)
    burst_done.set()
    killer.join()
    notes.extend(burst)
    report.append(f"\n### fault: {sum(n['ok'] for n in burst)} comments by 20 writers; kill -9 of the "
                  f"`flask worker` (the index writer, pid {shot.get('pid', '-')}) while the outbox held {shot.get('pending', '-')} "
                  f"job(s) and writes kept coming")
    time.sleep(0.5)
    left, waited = wait_outbox(env, 120)
    after = site.background_workers()
    report.append(f"; restarted by run.sh as pid {after[0] if after else '-'}; outbox drained to {left} "
                  f"in {waited:.1f} s\n")


def aimed(db, site, env, manifest, run, notes, report) -> None:
    """3c. kill -9 aimed at one idea POST at a time (aimed_idea_kills), then the same form again."""
    rec = Recorder()
    shots = aimed_idea_kills(site, env, manifest, run, 180, rec)
    notes.extend(rec.notes)
    report.append("\n### fault: kill -9 of the gunicorn worker handling an idea POST, then the same form "
                  "(same submission key) sent again\n")
    report.append(table([[AIMS[x["aim"]] + (f" (try {x['attempt']})" if x["attempt"] > 1 else ""),
                          str(x["killed"] or "-"), x["when"] or "-", x["client saw"],
                          str(x["in db after the kill"]), x["retry"], str(x["ideas"]), str(x["receipts"])]
                         for x in shots],
                        ["killed", "worker pid", "when", "the client saw", "ideas right after the kill",
                         "the same form again", "ideas with the key", "acceptance receipts"]))
    ok = all(x["ok"] for x in shots)
    missed = [AIMS[x["aim"]] for x in shots if x["aim"] != "none" and not x["in flight"]]
    errors = sorted({row[2] for row in rec.rows if row[2]})
    report.append(f"\nexactly one idea and one acceptance receipt per submission key after every shot: "
                  f"{'yes' if ok else 'NO'}" + (f"; errors: {errors}" if errors else "")
                  + (f"; NOT killed in flight (the answer was out first): {missed}" if missed else
                     "; every kill landed while the request was in flight (no answer reached the client)"))


def run_db(db: str, args) -> str:
    env, manifest = dataset.prepare(db, args.dir, args.seed)
    d = args.dir / db
    run = secrets.token_hex(3)
    log = d / "site.log"
    log_start = log.stat().st_size if log.exists() else 0
    parts = args.parts
    hello = hello_server(d, args.workers) if "mix" in parts else None
    site = site_server(env, d, args.workers, extra={"TRUSTED_PROXIES": "1"})
    notes: list[dict] = []
    report = Printed()
    report.append(f"\n## {db}: run {run} ({', '.join(parts)})")
    with LoadSampler() as load:
        try:
            if hello:
                hello.start()
            site.start("/healthz", timeout=300)  # migrations and 4 workers on a busy machine
            if "mix" in parts:
                ceil = []
                st, el = run_load(cycle_user(hello.port, ["/"], None, "ceiling"), 8, min(args.duration, 5),
                                  args.procs)
                ceil.append(len(st["ceiling"].latencies) / el)
                # 1. the mix
                say(db, 'the mix')
                mix, mix_el = run_load(mix_user(site.port, manifest, run), args.users, args.duration, args.procs,
                                       notes)
                st, el = run_load(cycle_user(hello.port, ["/"], None, "ceiling"), 8, min(args.duration, 5),
                                  args.procs)
                ceil.append(len(st["ceiling"].latencies) / el)
                ceil_rps = sum(ceil) / len(ceil)
                total = sum(len(s.latencies) for s in mix.values())
                report.append(f"\n### {db}: the mix, {args.users} virtual users, {args.duration:g} s "
                              f"(ceiling {ceil_rps:.0f} req/s, mean of {', '.join(f'{c:.0f}' for c in ceil)}; "
                              f"all pages {total / mix_el:.1f} req/s)\n")
                report.append(table(stats_rows(mix, mix_el, ceil_rps),
                                    ["kind of page", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms",
                                     "of ceiling", "errors"]))
                say(db, f'{total / mix_el:.1f} req/s')
            if "writers" in parts:
                say(db, f'{args.writers} concurrent writers')
                # 2. concurrent writers
                plan = ["idea", "comment", "question", "report"]
                wstats, wel = run_load(writers_user(site.port, manifest, run, 100, plan), args.writers, 600,
                                       max(args.procs, 2), notes)
                report.append(f"\n### {args.writers} concurrent writers ({', '.join(plan)} each), {wel:.1f} s\n")
                report.append(table(stats_rows(wstats, wel, 0),
                                    ["kind of write", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms",
                                     "of ceiling", "errors"]))
            if "faults" in parts:
                faults(db, site, env, manifest, run, notes, report)
            if "aimed" in parts:
                say(db, 'fault: kill -9 of the gunicorn worker handling an idea POST')
                aimed(db, site, env, manifest, run, notes, report)
        finally:
            site.stop()
            if hello:
                hello.stop()
    # 4. checks
    say(db, 'checks')
    res = check(env, run, notes)
    rows = [[k, str(v["confirmed"]), str(v["in database"]), str(len(v["lost"])), str(len(v["duplicated"])),
             v["unconfirmed (in db / not)"], v["in audit chain"], str(v["refused"])] for k, v in res["writes"].items()]
    report.append(f"\n### every write of run {run} (mix, writers and faults)\n")
    report.append(table(rows, ["write", "confirmed (302)", "in database", "lost", "duplicated",
                               "unconfirmed: in db/not", "audit events/rows", "refused by the page"]))
    rc_s, out_s = flask(env, "search", "verify")
    rc_a, out_a = flask(env, "audit", "verify")
    text = log.read_bytes()[log_start:].decode("utf-8", "replace") if log.exists() else ""
    locked = text.count("database is locked")
    report.append(f"\nincomplete ideas (no author, revision or acceptance): {res['incomplete ideas'] or 'none'}; "
                  f"outbox pending: {res['outbox pending']}")
    report.append(f"`flask search verify`: exit {rc_s}: {out_s.splitlines()[0] if out_s else ''}"
                  + ("" if rc_s == 0 else "\n" + out_s[-800:]))
    report.append(f"`flask audit verify`: exit {rc_a}: {out_a.splitlines()[-1] if out_a else ''}")
    report.append(f"\"database is locked\" in the server log: {locked}; server log lines with 'Traceback': "
                  f"{text.count('Traceback')}")
    report.append(f"load average during the run: {load.describe()}\n")
    return ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="sqlite")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of the mix (default 20)")
    ap.add_argument("--users", type=int, default=16, help="virtual users in the mix (default 16)")
    ap.add_argument("--writers", type=int, default=50, help="concurrent writers (default 50)")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--dir", type=Path, default=dataset.DEFAULT_DIR)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--parts", default="mix,writers,faults,aimed",
                    help="which parts to run, comma-separated: mix, writers, faults (timed kills of a "
                         "worker and of `flask worker`), aimed (kill -9 aimed at idea POSTs); default all")
    args = ap.parse_args()
    args.parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    unknown = set(args.parts) - {"mix", "writers", "faults", "aimed"}
    if unknown:
        ap.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    for db in (["sqlite", "postgres"] if args.db == "both" else [args.db]):
        run_db(db, args)


if __name__ == "__main__":
    main()
