"""Load, concurrency and fault benchmark (issue 13).

    python bench/load.py                       # SQLite
    python bench/load.py --db postgres         # the scripts/pg.sh server
    python bench/load.py --db both --duration 20 --users 24 --writers 50

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
import subprocess
import sys
import time
import warnings
from html.parser import HTMLParser
from pathlib import Path

warnings.filterwarnings("ignore", category=SyntaxWarning)
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dataset  # noqa: E402
from loadkit import (BIN, ROOT, Browser, cycle_user, hello_server, ms, run_load, site_server, table,  # noqa: E402
                     timed)
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


def run_db(db: str, args) -> str:
    env, manifest = dataset.prepare(db, args.dir, args.seed)
    d = args.dir / db
    run = secrets.token_hex(3)
    log = d / "site.log"
    log_start = log.stat().st_size if log.exists() else 0
    hello = hello_server(d, args.workers)
    site = site_server(env, d, args.workers, extra={"TRUSTED_PROXIES": "1"})
    notes: list[dict] = []
    report = Printed()
    with LoadSampler() as load:
        try:
            hello.start()
            site.start("/healthz")
            ceil = []
            st, el = run_load(cycle_user(hello.port, ["/"], None, "ceiling"), 8, min(args.duration, 5), args.procs)
            ceil.append(len(st["ceiling"].latencies) / el)
            # 1. the mix
            say(db, 'the mix')
            mix, mix_el = run_load(mix_user(site.port, manifest, run), args.users, args.duration, args.procs, notes)
            st, el = run_load(cycle_user(hello.port, ["/"], None, "ceiling"), 8, min(args.duration, 5), args.procs)
            ceil.append(len(st["ceiling"].latencies) / el)
            ceil_rps = sum(ceil) / len(ceil)
            total = sum(len(s.latencies) for s in mix.values())
            report.append(f"\n## {db}: the mix, {args.users} virtual users, {args.duration:g} s "
                          f"(ceiling {ceil_rps:.0f} req/s, mean of {', '.join(f'{c:.0f}' for c in ceil)}; "
                          f"all pages {total / mix_el:.1f} req/s)\n")
            report.append(table(stats_rows(mix, mix_el, ceil_rps),
                                ["kind of page", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "of ceiling",
                                 "errors"]))
            say(db, f'{total / mix_el:.1f} req/s; {args.writers} concurrent writers')
            # 2. concurrent writers
            plan = ["idea", "comment", "question", "report"]
            wstats, wel = run_load(writers_user(site.port, manifest, run, 100, plan), args.writers, 600,
                                   max(args.procs, 2), notes)
            report.append(f"\n### {args.writers} concurrent writers ({', '.join(plan)} each), {wel:.1f} s\n")
            report.append(table(stats_rows(wstats, wel, 0),
                                ["kind of write", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "of ceiling",
                                 "errors"]))
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
        finally:
            site.stop()
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
    args = ap.parse_args()
    for db in (["sqlite", "postgres"] if args.db == "both" else [args.db]):
        run_db(db, args)


if __name__ == "__main__":
    main()
