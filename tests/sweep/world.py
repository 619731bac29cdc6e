"""The sweep's world: one organisation's private content of every kind, each field carrying
a unique canary word, built through the real services (so notifications, mails, the audit
trail, moderation flags and the search index are the site's own), plus the facts the
oracle needs.

A canary is one alphanumeric word, ``cnry`` + record type (2 letters) + number (3 digits)
+ field (2 letters), e.g. ``cnryit007ti`` for the title of item 7: one token for the search
analyzer (digits stop the stemmer), findable in any response with one regular expression.
Every text that carries canaries also carries the word ``sweepmark``, so one search lists
everything the persona may find.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

from sqlalchemy import select
from werkzeug.datastructures import FileStorage

from marketplace.extensions import db
from marketplace.models import (
    AccessGrant,
    ChallengeTerms,
    Idea,
    IdeaAttachment,
    InvitationList,
    Item,
    ModerationAction,
    ModerationFlag,
    Organisation,
    OutgoingMail,
    TermsAcceptance,
    User,
    utcnow,
)
from marketplace.models.moderation import Report
from marketplace.notify import notify, send_mail
from marketplace.sanitize import render_markdown
from marketplace.services import engagement as eng_svc
from marketplace.services import ideas as ideas_svc
from marketplace.services import invitations as inv_svc
from marketplace.services import lists as lists_svc
from marketplace.services import moderation as mod_svc
from marketplace.services import notifications as notes_svc
from marketplace.services import terms as terms_svc

from ..factories import PASSWORD, Factories, appoint_reviewer
from ..factories_ideas import IdeaFactories
from .oracle import ActionF, IdeaF, ItemF, ListF, Oracle, Persona, Place, PostF, RequestF

CANARY_RE = re.compile(r"cnry[a-z]{2}\d{3}[a-z]{2}", re.I)
COMMON = "sweepmark"
KINDS = ("challenge", "failure", "asset")
VISIBILITIES = ("public", "registered", "invited", "organisation")
STATUSES = ("draft", "open", "closed", "archived")
KIND_FIELD = {"challenge": ("context", "cx"), "failure": ("went_wrong", "wr"), "asset": ("availability", "av")}

ACME, GLOBEX, CLUSTER = "acme", "globex", "cluster"
PERSONAS: dict[str, Persona] = {p.name: p for p in [
    Persona("anonymous", anonymous=True),
    Persona("outsider"),
    Persona("author"),                      # lead author of ideas, asker, requester
    Persona("coauthor"),                    # accepted co-author
    Persona("copending"),                   # named co-author who has not answered
    Persona("invitee"),                     # accepted e-mail invitations
    Persona("invitee_expired"),             # accepted, access since expired
    Persona("invitee_revoked"),             # accepted, then revoked
    Persona("list_member"),                 # on the invitation list attached to invited items
    Persona("member", orgs=((ACME, "member"),)),
    Persona("admin", orgs=((ACME, "admin"),)),
    Persona("owner", orgs=((ACME, "owner"),)),
    Persona("other_member", orgs=((GLOBEX, "member"),)),
    Persona("other_admin", orgs=((GLOBEX, "admin"),)),
    Persona("scoped_mod", scoped=frozenset({ACME})),
    Persona("site_mod", site_role="moderator"),
    Persona("site_admin", site_role="admin"),
    Persona("reviewer", orgs=((ACME, "member"),)),   # member reviewer of the sealed challenge
    Persona("judge"),                       # outside judge of the sealed challenge, NDA accepted
    Persona("other_reviewer"),              # outside judge of another challenge
    Persona("suspended", orgs=((ACME, "member"),), blocked=True),
    Persona("banned", orgs=((ACME, "admin"),), blocked=True),
]}
BLOCKED = ("suspended", "banned")
# Whom a decision on one of Acme's items affects: its owners and admins (and its creator, the owner).
MANAGERS = {"owner", "admin", "banned"}


@dataclass
class Canary:
    token: str
    what: str
    allowed: frozenset[str] = frozenset()


@dataclass
class SweepWorld:
    """Everything the walker needs, as plain data (no ORM rows)."""

    emails: dict[str, str]                       # persona -> e-mail
    canaries: dict[str, Canary]
    ids: dict[str, dict[int, frozenset[str]]]    # object type -> id -> personas who may see it
    item_kinds: dict[int, str]
    sample_items: set[int]                       # see walker.probes: the ids sub-routes get
    item_titles: dict[int, str]                  # id -> title canary (positive control)
    attachments: dict[int, list[int]]            # idea id -> attachment ids (removed ones too)
    revisions: dict[int, list[int]]              # idea id -> revision numbers
    challenge_versions: dict[int, list[int]]     # challenge id -> terms versions
    user_ids: dict[str, int]
    org_slugs: list[str]
    review_panels: dict[int, frozenset[str]]     # idea id -> who may see its review section

    def allowed(self, persona: str) -> set[str]:
        return {t for t, c in self.canaries.items() if persona in c.allowed}


class Builder:
    """Builds the world (`build`, then `block` once the personas are signed in) and returns
    it as plain data (`result`). Methods run inside an application context."""

    def __init__(self):
        self.f = Factories()
        self.fi = IdeaFactories(self.f)
        self.o = Oracle(PERSONAS)
        self.seq: dict[str, int] = {}
        self.pending: list[tuple[str, str, Callable[[Persona], bool]]] = []
        self.obj_rules: list[tuple[str, int, Callable[[Persona], bool]]] = []
        self.item_ids: dict[str, int] = {}
        self.item_title: dict[int, str] = {}
        self.idea_ids: dict[str, int] = {}
        self.post_ids: dict[str, tuple[str, int]] = {}
        self.request_ids: dict[str, int] = {}
        self.final_status: dict[str, str] = {}
        self.action_targets: list[tuple[str, Callable[[Persona], bool]]] = []
        self.past = utcnow() - timedelta(days=1)
        self.uid: dict[str, int] = {}

    # ------------------------------------------------------------------ canaries

    def rec(self, rt: str) -> int:
        self.seq[rt] = self.seq.get(rt, 0) + 1
        return self.seq[rt]

    def tok(self, rt: str, n: int, fc: str, what: str, rule: Callable[[Persona], bool]) -> str:
        token = f"cnry{rt}{n:03d}{fc}"
        self.pending.append((token, what, rule))
        return token

    def user(self, name: str) -> User:
        return db.session.get(User, self.uid[name])

    # ------------------------------------------------------------------ people

    def people(self) -> None:
        f = self.f
        for name, p in PERSONAS.items():
            if p.anonymous:
                continue
            u = f.make_user(email=f"{name.replace('_', '.')}@sweep.test", name=name.replace("_", " ").title(),
                            site_role=p.site_role)
            self.uid[name] = u.id
        U = self.user
        self.curator = f.make_user(email="curator@cluster.test", name="Cora Curator")
        self.globex_owner = f.make_user(email="gus@globex.test", name="Gus Globex")
        self.orgs = {
            ACME: f.make_org(name="Acme Robotics", owner=U("owner"), admins=(U("admin"), U("banned")),
                             members=(U("member"), U("reviewer"), U("suspended"))),
            GLOBEX: f.make_org(name="Globex", owner=self.globex_owner, admins=(U("other_admin"),),
                               members=(U("other_member"),)),
            CLUSTER: f.make_org(name="Ringo Cluster", kind="cluster", owner=self.curator),
        }
        self.org_ids = {k: o.id for k, o in self.orgs.items()}
        mod_svc.grant_scope(U("site_admin"), U("scoped_mod"), self.orgs[ACME])

    def org(self, key: str) -> Organisation:
        return db.session.get(Organisation, self.org_ids[key])

    # ------------------------------------------------------------------ items

    def item(self, key: str, kind: str, vis: str, status: str, org: str = ACME) -> Item:
        """An item whose every text field carries a canary (created published when it will end
        up closed or archived: the status is set at the end, as time would)."""
        n = self.rec("it")
        what = f"item {key}"
        o = self.o

        def title(p, k=key):
            return o.item_title(p, k)

        def brief(p, k=key):
            return o.item_brief(p, k)

        ti = self.tok("it", n, "ti", f"title of {what}", title)
        su = self.tok("it", n, "su", f"summary of {what}", title)
        tg = self.tok("it", n, "tg", f"tag of {what}", lambda p, k=key: o.item_view(p, k))
        bd = self.tok("it", n, "bd", f"body of {what}", brief)
        fname, fc = KIND_FIELD[kind]
        kf = self.tok("it", n, fc, f"{fname} of {what}", brief)
        extra = {fname: f"{kf} {COMMON}", f"{fname}_html": render_markdown(f"{kf} {COMMON}")}
        it = self.f.make_item(self.org(org), kind=kind, visibility=vis, status="draft" if status == "draft" else "open",
                              title=f"{kind.title()} {ti}", summary=f"{su} {COMMON}", body=f"{bd} {COMMON} body",
                              tags=(tg, "sweep"), created_by=self.user("owner") if org == ACME else None, **extra)
        self.o.items[key] = ItemF(key, kind, org, vis, status)
        self.item_ids[key] = it.id
        self.item_title[it.id] = ti
        self.obj_rules.append(("item", it.id, lambda p, k=key: o.item_view(p, k)))
        self.final_status[key] = status
        return it

    def get_item(self, key: str) -> Item:
        return db.session.get(Item, self.item_ids[key])

    def items(self) -> None:
        for kind in KINDS:
            for vis in VISIBILITIES:
                for status in STATUSES:
                    self.item(f"{kind}/{vis}/{status}", kind, vis, status)
            self.item(f"{kind}/public/open/hidden", kind, "public", "open")
        self.item("challenge/invited/open/hidden", "challenge", "invited", "open")
        self.item("globex/challenge/public/draft", "challenge", "public", "draft", org=GLOBEX)
        self.item("globex/failure/organisation/open", "failure", "organisation", "open", org=GLOBEX)
        self.item("globex/asset/public/open", "asset", "public", "open", org=GLOBEX)
        # The challenges ideas are submitted to (terms and rules through the services).
        self.item("ideas/sealed", "challenge", "public", "open")     # sealed terms with an NDA
        self.item("ideas/open", "challenge", "public", "open")       # open confidentiality
        self.item("ideas/later-hidden", "challenge", "public", "open")  # hidden after an idea came in

    # ------------------------------------------------------------------ lists and invitations

    def lists(self) -> None:
        n = self.rec("ls")
        o = self.o
        nm = self.tok("ls", n, "nm", "name of the invitation list", lambda p: o.list_name(p, "list"))
        ds = self.tok("ls", n, "ds", "description of the invitation list", lambda p: o.list_view(p, "list"))
        lst = lists_svc.create_list(self.curator, self.org(CLUSTER), f"Experts {nm}", f"{ds} {COMMON}")
        lists_svc.add_member(self.curator, lst, user=self.user("list_member"))
        lists_svc.share(self.curator, lst, self.org(ACME))
        self.list_id = lst.id
        o.lists["list"] = ListF("list", CLUSTER, shared_with={ACME}, entries={"list_member"})
        self.obj_rules.append(("list", lst.id, lambda p: o.list_view(p, "list")))

    def _reveals(self, key: str) -> bool:
        """README: an invitation shows its item only where accepting would let the invitee see
        it: published, not hidden, at public, registered or invited level."""
        it = self.o.items[key]
        return it.status != "draft" and not it.hidden and it.visibility in ("public", "registered", "invited")

    def invite(self, key: str, persona: str, accept: bool = True, **kw):
        admin = self.user("admin")
        item = self.get_item(key)
        inv, token = inv_svc.create_invitation(admin, item, self.user(persona).email, **kw)
        if self._reveals(key):
            self.o.items[key].invite_revealed.add(persona)
        if accept:
            inv = inv_svc.accept(self.user(persona), token)
        return inv

    def invitations(self) -> None:
        admin = self.user("admin")
        lst = db.session.get(InvitationList, self.list_id)
        invited = [k for k, it in self.o.items.items() if it.visibility == "invited" and it.org == ACME]
        for key in invited:
            it = self.o.items[key]
            lists_svc.attach(admin, self.get_item(key), lst)
            it.access.add("list_member")
            if it.status == "draft":
                self.invite(key, "invitee", accept=False)
                continue
            self.invite(key, "invitee")
            it.access.add("invitee")
            inv = self.invite(key, "invitee_expired", access_until=utcnow() + timedelta(days=3))
            db.session.get(AccessGrant, inv.grant_id).expires_at = self.past   # time passed
            db.session.commit()
            inv = self.invite(key, "invitee_revoked")
            inv_svc.revoke(admin, inv)
        # Pending invitations of an outsider: one that shows its item, two that may not.
        for key in ("failure/invited/open", "challenge/organisation/open", "challenge/invited/draft"):
            self.invite(key, "outsider", accept=False)

    # ------------------------------------------------------------------ moderation helpers

    def place_of(self, key: str, discussion: bool = False, site_only: bool = False) -> Place:
        it = self.o.items[key]
        return Place(it.org, it.kind, discussion, site_only)

    def report(self, reporter: str, type_name: str, target_id: int, place: Place, what: str):
        n = self.rec("rp")
        o = self.o
        note = self.tok("rp", n, "nt", f"note of the report on {what}", lambda p, pl=place: o.report_view(p, pl))
        r = mod_svc.file_report(self.user(reporter), type_name, target_id, "other", f"{note} {COMMON}")
        return r

    def act(self, mod: str, type_name: str, target_id: int, kind: str, place: Place, what: str,
            affected=(), reporters=(), challenge: str | None = None, target_rule=None, **kw):
        n = self.rec("ac")
        o = self.o
        key = f"action-{n}"
        rule = kw.pop("rule", None)
        reason = self.tok("ac", n, "rs", f"reason of the {kind} of {what}", lambda p, k=key: o.action_reason(p, k))
        if rule is not None:
            rule = self.tok("ac", n, "ru", f"rule of the {kind} of {what}", lambda p, k=key: o.action_reason(p, k))
        a = mod_svc.take_action(self.user(mod), type_name, target_id, kind, f"{reason} {COMMON}", rule=rule, **kw)
        o.actions[key] = ActionF(key, kind, place, set(affected), set(reporters), challenge)
        if target_rule is not None:
            self.action_targets.append((key, target_rule))
        self.obj_rules.append(("action", a.id, lambda p, k=key: o.action_view(p, k)))
        return a

    def hide_items(self) -> None:
        o = self.o
        for key in ("challenge/public/open/hidden", "failure/public/open/hidden", "asset/public/open/hidden",
                    "challenge/invited/open/hidden"):
            it = o.items[key]
            self.act("site_mod", it.kind, self.item_ids[key], "hide", self.place_of(key), f"item {key}",
                     affected=MANAGERS, challenge=key if it.kind == "challenge" else None,
                     target_rule=lambda p, k=key: o.item_view(p, k))
            it.hidden = True
        # A report nobody has acted on yet: site moderators only (not a challenge).
        key = "failure/registered/open"
        self.report("outsider", "failure", self.item_ids[key], self.place_of(key), f"item {key}")
        # A report on a profile: site-only.
        self.report("outsider", "user", self.uid["author"], Place(None, None, site_only=True), "the author's profile")

    # ------------------------------------------------------------------ ideas

    def challenges_for_ideas(self) -> None:
        o = self.o
        owner = self.user("owner")
        rules = {"team_allowed": True, "max_team_size": 4, "max_ideas_per_contributor": 50}
        n = self.rec("tm")
        nda = self.tok("tm", n, "nd", "NDA text of the sealed challenge", lambda p: o.item_view(p, "ideas/sealed"))
        self.fi.set_terms(owner, self.get_item("ideas/sealed"), confidentiality="sealed", nda_text=f"{nda} {COMMON}")
        self.fi.set_rules(owner, self.get_item("ideas/sealed"), **rules)
        o.items["ideas/sealed"].nda = True
        for key in ("ideas/open", "ideas/later-hidden"):
            self.fi.set_terms(owner, self.get_item(key), confidentiality="open")
            self.fi.set_rules(owner, self.get_item(key), **rules)
        # Terms with an NDA on an invited challenge too (its brief is then behind the NDA).
        n = self.rec("tm")
        key = "challenge/invited/open"
        nda2 = self.tok("tm", n, "nd", f"NDA text of {key}", lambda p, k=key: o.item_view(p, k))
        self.fi.set_terms(owner, self.get_item(key), confidentiality="sealed", nda_text=f"{nda2} {COMMON}")
        o.items[key].nda = True

        ch = self.get_item("ideas/sealed")
        ideas_svc.appoint_reviewer(owner, ch, self.user("reviewer").email)
        o.items["ideas/sealed"].reviewers.add("reviewer")
        for judge, key in (("judge", "ideas/sealed"), ("other_reviewer", "ideas/open")):
            n = self.rec("ra")
            text = self.tok("ra", n, "nd", f"reviewer NDA of {judge}",
                            lambda p, j=judge, k=key: (p.signed_in and p.name == j) or o.org_admin_of(p, k))
            appt = appoint_reviewer(owner, self.get_item(key), self.user(judge), f"{text} {COMMON}")
            ideas_svc.accept_reviewer_nda(self.user(judge), appt, appt.nda_digest)
            o.items[key].reviewers.add(judge)
        # Reviewers appointed while the challenge is still a draft (it opens later).
        ideas_svc.appoint_reviewer(owner, self.get_item("challenge/registered/draft"), self.user("reviewer").email)
        o.items["challenge/registered/draft"].reviewers.add("reviewer")
        self.criterion = ideas_svc.add_criterion(owner, ch, "Feasibility", 3)
        terms = terms_svc.policy.current_terms(ch.id)
        for who in ("author", "coauthor", "copending"):
            terms_svc.accept_nda(self.user(who), ch, terms.version, terms.digest)
            o.items["ideas/sealed"].nda_accepted.add(who)

    def idea(self, label: str, challenge: str, sealed: bool, coauthors: dict[str, str] | None = None,
             uploads=None, **over) -> Idea:
        o = self.o
        n = self.rec("id")
        key = f"idea {label}"
        view = lambda p, k=key: o.idea_view(p, k)  # noqa: E731
        ti = self.tok("id", n, "ti", f"title of {key}", view)
        su = self.tok("id", n, "su", f"summary of {key}", view)
        bd = self.tok("id", n, "bd", f"body of {key}", view)
        authors = {"author": "lead", **(coauthors or {})}
        o.ideas[key] = IdeaF(key, challenge, "submitted", sealed, authors)
        emails = ",".join(self.user(c).email for c in (coauthors or {}))
        idea = self.fi.submit(self.user("author"), self.get_item(challenge), uploads=uploads,
                              title=f"Idea {ti}", summary=f"{su} {COMMON}",
                              body=f"{bd} {COMMON} {label} {n * 7919} unlike any other", coauthors=emails, **over)
        self.idea_ids[key] = idea.id
        self.obj_rules.append(("idea", idea.id, view))
        return idea

    def set_idea(self, key: str) -> None:
        i = db.session.get(Idea, self.idea_ids[key])
        self.o.ideas[key].status = i.status
        self.o.ideas[key].hidden = i.hidden_at is not None

    def ideas(self) -> None:
        o = self.o
        U = self.user
        admin = U("admin")
        ch = "ideas/sealed"
        data = lambda: self.fi.submission(self.get_item(ch))  # noqa: E731
        self.idea("awaiting co-authors", ch, True, {"copending": "pending"})
        # Submitted with an accepted co-author, an attachment and a declaration only its maker sees.
        n = self.rec("at")
        key = "idea submitted"
        fname = self.tok("at", n, "fn", f"file name of {key}", lambda p, k=key: o.idea_view(p, k))
        fcontent = self.tok("at", n, "fc", f"file content of {key}", lambda p, k=key: o.idea_view(p, k))
        n = self.rec("co")
        coi = self.tok("co", n, "nt", f"conflict-of-interest note of {key}", lambda p: p.signed_in and p.name == "author")
        idea = self.idea("submitted", ch, True, {"coauthor": "pending"}, coi_note=f"{coi} {COMMON}",
                         uploads=[FileStorage(stream=io.BytesIO(f"{fcontent} {COMMON}\n".encode()),
                                              filename=f"{fname}.txt")])
        ideas_svc.accept_coauthorship(U("coauthor"), idea, data())
        o.ideas[key].authors["coauthor"] = "accepted"
        # A second revision replaces the body and the file; the first stays in the history.
        n = self.rec("rv")
        view = lambda p, k=key: o.idea_view(p, k)  # noqa: E731
        body = self.tok("rv", n, "bd", f"revised body of {key}", view)
        fname = self.tok("rv", n, "fn", f"revised file name of {key}", view)
        fcontent = self.tok("rv", n, "fc", f"revised file content of {key}", view)
        ideas_svc.revise_idea(U("author"), idea, self.fi.submission(self.get_item(ch), title=idea.title, summary=idea.summary,
                                                                    body=f"{body} {COMMON} revised"),
                              uploads=[FileStorage(stream=io.BytesIO(f"{fcontent} {COMMON}\n".encode()),
                                                   filename=f"{fname}.txt")],
                              remove_ids=[a.id for a in idea.current_attachments])
        # Under review: scored, with private notes, and an open report.
        idea = self.idea("under review", ch, True)
        ideas_svc.score_idea(U("reviewer"), idea, {self.criterion.id: 7})
        for who in ("reviewer", "judge"):
            n = self.rec("rn")
            note = self.tok("rn", n, "nt", f"{who}'s review note", lambda p, w=who: p.signed_in and p.name == w)
            ideas_svc.add_note(U(who), idea, f"{note} {COMMON}")
        self.report("admin", "idea", idea.id, self.place_of(ch), "idea under review")
        idea = self.idea("shortlisted", ch, True)
        ideas_svc.shortlist_idea(admin, idea)
        idea = self.idea("awarded", ch, True)
        ideas_svc.shortlist_idea(admin, idea)
        n = self.rec("aw")
        note = self.tok("aw", n, "nt", "award note", lambda p: o.idea_view(p, "idea awarded") and (
            o.idea_author(p, "idea awarded") or o.panel(p, ch)))
        ideas_svc.award_idea(admin, idea, 0, note=f"{note} {COMMON}")
        idea = self.idea("declined", ch, True)
        n = self.rec("dr")
        reason = self.tok("dr", n, "rs", "decline reason", lambda p: o.idea_decision(p, "idea declined"))
        ideas_svc.decline_idea(admin, idea, f"{reason} {COMMON}")
        idea = self.idea("withdrawn", ch, True)
        ideas_svc.withdraw_idea(U("author"), idea)
        idea = self.idea("hidden", ch, True)
        a = self.act("site_mod", "idea", idea.id, "hide", self.place_of(ch), "idea hidden", affected={"author"},
                     challenge=ch, target_rule=lambda p: o.idea_view(p, "idea hidden"))
        n = self.rec("ap")
        statement = self.tok("ap", n, "st", "appeal statement", lambda p, k=f"action-{self.seq['ac']}":
                             o.action_view(p, k))
        mod_svc.file_appeal(U("author"), a, f"{statement} {COMMON}")
        idea = self.idea("disqualified", ch, True)
        self.act("site_mod", "idea", idea.id, "disqualify", self.place_of(ch), "idea disqualified",
                 affected={"author"}, challenge=ch, rule=True)
        # Open confidentiality: seen by all who see the challenge (not its decline reason).
        self.idea("open submitted", "ideas/open", False)
        idea = self.idea("open declined", "ideas/open", False)
        n = self.rec("dr")
        reason = self.tok("dr", n, "rs", "decline reason of the open idea", lambda p: o.idea_decision(p, "idea open declined"))
        ideas_svc.decline_idea(admin, idea, f"{reason} {COMMON}")
        # An idea whose challenge moderators hid afterwards: its author keeps the idea, not the challenge.
        self.idea("under a hidden challenge", "ideas/later-hidden", False)
        key = "ideas/later-hidden"
        self.act("site_mod", "challenge", self.item_ids[key], "hide", self.place_of(key), f"item {key}",
                 affected=MANAGERS, challenge=key, target_rule=lambda p, k=key: o.item_view(p, k))
        o.items[key].hidden = True
        for k in self.idea_ids:
            self.set_idea(k)

    # ------------------------------------------------------------------ engagement

    def post(self, rt: str, what: str, rule) -> tuple[str, str]:
        n = self.rec(rt)
        return self.tok(rt, n, "bd", what, rule), f"{rt}{n}"

    def engagement(self) -> None:
        o = self.o
        U = self.user
        admin = U("admin")
        qv = lambda k: (lambda p: o.question_view(p, k))  # noqa: E731
        av = lambda k: (lambda p: o.answer_view(p, k))  # noqa: E731
        cv = lambda k: (lambda p: o.comment_view(p, k))  # noqa: E731
        qa1, qa2 = "challenge/public/open", "challenge/invited/open"

        def ask(key, who, item):
            body, _ = self.post("qu", f"question {key}", qv(key))
            q = eng_svc.ask_question(U(who), self.get_item(item), f"{body} {COMMON} asked")
            o.posts[key] = PostF(key, item, who)
            self.post_ids[key] = ("question", q.id)
            self.obj_rules.append(("question", q.id, qv(key)))
            return q

        def answer(key, q, qkey):
            body, _ = self.post("an", f"answer {key}", av(key))
            a = eng_svc.answer_question(admin, q, f"{body} {COMMON} answered")
            o.posts[key] = PostF(key, o.posts[qkey].item, "admin", question=qkey)
            o.posts[qkey].answered = True
            self.post_ids[key] = ("answer", a.id)
            self.obj_rules.append(("answer", a.id, av(key)))
            return a

        q = ask("q answered", "author", qa1)
        answer("a plain", q, "q answered")
        ask("q unanswered", "author", qa1)
        q = ask("q hidden", "outsider", qa1)
        self.report("admin", "question", q.id, self.place_of(qa1, True), "hidden question")
        self.act("admin", "question", q.id, "hide", self.place_of(qa1, True), "hidden question",
                 affected={"outsider"}, challenge=qa1, target_rule=qv("q hidden"))
        o.posts["q hidden"].hidden = True
        q = ask("q deleted", "author", qa1)
        eng_svc.delete_post(U("author"), q)
        o.posts["q deleted"].deleted = True
        q = ask("q with hidden answer", "outsider", qa1)
        a = answer("a hidden", q, "q with hidden answer")
        self.act("site_mod", "answer", a.id, "hide", self.place_of(qa1, True), "hidden answer",
                 affected={"admin"}, challenge=qa1, target_rule=av("a hidden"))
        o.posts["a hidden"].hidden = True
        q = ask("q invited answered", "invitee", qa2)
        answer("a invited", q, "q invited answered")
        self.report("list_member", "question", q.id, self.place_of(qa2, True), "question on the invited challenge")
        ask("q invited unanswered", "invitee", qa2)

        d1, d2 = "failure/public/open", "failure/invited/open"

        def comment(key, who, item, parent=None):
            body, _ = self.post("cm", f"comment {key}", cv(key))
            c = eng_svc.add_comment(U(who), self.get_item(item), f"{body} {COMMON} commented", parent=parent)
            o.posts[key] = PostF(key, item, who)
            self.post_ids[key] = ("comment", c.id)
            self.obj_rules.append(("comment", c.id, cv(key)))
            return c

        c = comment("c plain", "author", d1)
        comment("c reply", "outsider", d1, parent=c)
        c = comment("c hidden", "outsider", d1)
        self.report("admin", "comment", c.id, self.place_of(d1, True), "hidden comment")
        self.act("site_mod", "comment", c.id, "hide", self.place_of(d1, True), "hidden comment",
                 affected={"outsider"}, reporters={"admin"}, target_rule=cv("c hidden"))
        o.posts["c hidden"].hidden = True
        c = comment("c deleted", "author", d1)
        eng_svc.delete_post(U("author"), c)
        o.posts["c deleted"].deleted = True
        comment("c invited", "invitee", d2)

        a1, a2 = "asset/public/open", "asset/invited/open"

        def request(key, who, item, on_behalf=None):
            n = self.rec("rq")
            rv = lambda p, k=key: o.request_view(p, k)  # noqa: E731
            msg = self.tok("rq", n, "ms", f"message of request {key}", rv)
            r = eng_svc.send_request(U(who), self.get_item(item), "interest", f"{msg} {COMMON}",
                                     terms_version=None, terms_digest=None,
                                     on_behalf_of=self.org(on_behalf) if on_behalf else None)
            o.requests[key] = RequestF(key, item, who, on_behalf)
            self.request_ids[key] = r.id
            self.obj_rules.append(("request", r.id, rv))
            return r, n, rv

        r, n, rv = request("r followed up", "author", a1)
        ev1 = self.tok("rq", n, "fu", "follow-up proposal of a request", rv)
        eng_svc.decide_request(admin, r, "follow-up", f"{ev1} {COMMON}")
        ev2 = self.tok("rq", n, "re", "requester's reply", rv)
        eng_svc.respond_to_request(U("author"), r, f"{ev2} {COMMON}")
        r_globex, _, _ = request("r for globex", "other_admin", a1, on_behalf=GLOBEX)
        # Issue 17: the request becomes a data-sharing agreement with Globex, naming
        # other_admin; the asset's file carries a canary in its name.
        from marketplace.services import agreements as agr_svc

        asset = self.get_item(a1)
        agr_svc.publish_sheet(admin, asset, {
            "purpose": "Benchmarks.", "allowed_uses": "Research.", "access_roles": "analyst", "duration_days": "60",
            "end_of_term": "delete", "end_of_term_days": "10", "confidentiality_days": "30",
            "publication_rules": "None.", "governing_law": "Dutch law"})
        named = {"other_admin"}
        fv = lambda p: o.asset_file_view(p, a1, named)  # noqa: E731
        fname = self.tok("af", self.rec("af"), "fn", "name of a file shared under an agreement", fv)
        shared = agr_svc.add_files(admin, asset, [FileStorage(io.BytesIO(b"a,b\n1,2\n"), filename=f"{fname}.csv")])
        eng_svc.decide_request(admin, r_globex, "accept")
        agreement = agr_svc.agreement_for_request(r_globex)
        agr_svc.accept_agreement(U("other_admin"), agreement, [(self.uid["other_admin"], "analyst")],
                                 agreement.sheet_version, agreement.sheet_digest)
        self.obj_rules.append(("agreement", agreement.id, lambda p: o.agreement_view(p, a1, GLOBEX, named)))
        self.obj_rules.append(("asset_file", shared[0].id, fv))
        r, _, _ = request("r reported", "outsider", a1)
        self.report("admin", "asset_request", r.id, self.place_of(a1, site_only=True), "reported request")
        o.requests["r reported"].open_report = True
        r, _, _ = request("r report dismissed", "coauthor", a1)
        self.report("admin", "asset_request", r.id, self.place_of(a1, site_only=True), "dismissed request report")
        self.act("site_mod", "asset_request", r.id, "dismiss", self.place_of(a1, site_only=True),
                 "request report", reporters={"admin"})
        request("r invited", "invitee", a2)

    # ------------------------------------------------------------------ following, announcements, digests

    def reach(self) -> None:
        """Followers of challenges (some hidden by moderators afterwards: see hide_items), with
        a daily digest for some of them, and announcements carrying canaries: the challenge
        page, the following page, notifications, instant mails and digests must each show an
        announcement (and a followed challenge) only to whoever may see the challenge."""
        o = self.o
        U = self.user
        follows = {"challenge/public/open/hidden": ("outsider", "other_member", "list_member"),
                   "challenge/public/open": ("outsider", "other_member"),
                   "challenge/invited/open/hidden": ("list_member", "invitee")}
        for key, who in follows.items():
            for name in who:
                notes_svc.follow(U(name), "challenge", self.get_item(key))
        for name in ("outsider", "list_member"):
            notes_svc.set_channels(U(name), {"announcements": "digest"})
        for key in ("challenge/public/open", "challenge/public/open/hidden", "challenge/invited/open",
                    "challenge/invited/open/hidden"):
            n = self.rec("an")
            ti = self.tok("an", n, "ti", f"title of an announcement on {key}", lambda p, k=key: o.item_view(p, k))
            bd = self.tok("an", n, "bd", f"body of an announcement on {key}", lambda p, k=key: o.item_view(p, k))
            notes_svc.announce(U("owner"), self.get_item(key), f"News {ti}", f"{bd} {COMMON}")
        db.session.commit()

    # ------------------------------------------------------------------ messages

    def messages(self) -> None:
        n = self.rec("nt")
        # Mailed at once (the kind's default), its subject quotes it: the mail log shows site
        # admins the subjects of mails about nothing (policy.mail_subject_visible).
        tok = self.tok("nt", n, "ms", "planted notification to member",
                       lambda p: (p.signed_in and p.name == "member") or p.site_admin)
        notify(self.user("member"), "sweep", f"Planted {tok} {COMMON}")
        n = self.rec("ml")
        # The mail log lists every mail for site admins: a mail naming nothing private is theirs to read.
        tok = self.tok("ml", n, "ms", "planted mail to other_member",
                       lambda p: p.name == "other_member" or p.site_admin)
        send_mail(self.user("other_member").email, "A planted message", f"Planted {tok} {COMMON}")
        db.session.commit()

    def final_statuses(self) -> None:
        for key, status in self.final_status.items():
            if status in ("closed", "archived"):
                item = self.get_item(key)
                item.status = status
        db.session.commit()

    def block(self) -> None:
        """Suspend and ban two accounts that are signed in (the walker keeps their cookies)."""
        for who, kind, kw in (("suspended", "suspend", {"days": 30}), ("banned", "ban", {})):
            self.act("site_mod", "user", self.uid[who], kind, Place(None, None, site_only=True), f"account {who}",
                     affected={who}, **kw)
        mod_svc.send_digest()

    # ------------------------------------------------------------------ facts from the database

    def cases(self) -> None:
        """Which rows have a case (report, action or flag), and which items are the context of
        a report or an action: data the rules read."""
        o = self.o
        by_id = {}
        for key, i in self.idea_ids.items():
            by_id[("idea", i)] = o.ideas[key]
        for key, (t, i) in self.post_ids.items():
            by_id[(t, i)] = o.posts[key]
        item_by_id = {i: o.items[k] for k, i in self.item_ids.items()}
        for model in (Report, ModerationAction, ModerationFlag):
            for row in db.session.execute(select(model)).scalars():
                target = by_id.get((row.target_type, row.target_id))
                if target is not None:
                    target.has_case = True
                if model is not ModerationFlag and row.context_item_id in item_by_id:
                    item_by_id[row.context_item_id].has_case = True

    # ------------------------------------------------------------------ the lot

    def build(self) -> None:
        self.people()
        self.items()
        self.lists()
        self.invitations()
        self.challenges_for_ideas()
        self.ideas()
        self.engagement()
        self.reach()
        self.hide_items()
        self.messages()
        self.final_statuses()

    def result(self) -> SweepWorld:
        self.cases()
        o = self.o
        for key, rule in self.action_targets:
            o.actions[key].target_viewers = o.who(rule)
        canaries = {}
        for token, what, rule in self.pending:
            assert token not in canaries, token
            canaries[token] = Canary(token, what, o.who(rule))
        ids: dict[str, dict[int, frozenset[str]]] = {}
        for t, i, rule in self.obj_rules:
            ids.setdefault(t, {})[i] = o.who(rule)
        holder = {uid: name for name, uid in self.uid.items()}
        ids["acceptance"] = {a.id: frozenset({holder[a.user_id]} if a.user_id in holder else set())
                             for a in db.session.execute(select(TermsAcceptance)).scalars()}
        # Profiles are for signed-in users; a few suffice (the other ids name the same kind of row).
        ids["user"] = {uid: o.who(lambda p: p.signed_in) for uid in list(self.uid.values())[:4]}
        atts: dict[int, list[int]] = {}
        for a in db.session.execute(select(IdeaAttachment)).scalars():
            atts.setdefault(a.idea_id, []).append(a.id)
        revisions = {i: list(range(1, db.session.get(Idea, i).revision + 1)) for i in self.idea_ids.values()}
        versions: dict[int, list[int]] = {}
        for t in db.session.execute(select(ChallengeTerms)).scalars():
            versions.setdefault(t.challenge_id, []).append(t.version)
        item_kinds = {i: o.items[k].kind for k, i in self.item_ids.items()}
        # Every item outside the visibility x status matrix, and of the matrix: each level
        # open, each level as a draft, and each status at the `invited` level.
        sample = set()
        for k, i in self.item_ids.items():
            parts = k.split("/")
            if len(parts) != 3 or parts[0] not in KINDS or parts[2] in ("open", "draft") or parts[1] == "invited":
                sample.add(i)
        panels = {i: o.who(lambda p, k=k: o.idea_review(p, k)) for k, i in self.idea_ids.items()}
        emails = {name: self.user(name).email for name in self.uid}
        slugs = [org.slug for org in db.session.execute(select(Organisation)).scalars()]
        return SweepWorld(emails=emails, canaries=canaries, ids=ids, item_kinds=item_kinds, sample_items=sample,
                          item_titles=dict(self.item_title), attachments=atts, revisions=revisions, challenge_versions=versions,
                          user_ids=dict(self.uid), org_slugs=slugs, review_panels=panels)


def deliver_all() -> dict[str, list[tuple[str, str]]]:
    """Queue today's digests, run the real mail worker (locmem backend) until nothing is due, and return what reached
    each address: (subject, text part + HTML part). The worker asks again, at sending time,
    whether each recipient may still see what a mail is about (marketplace/mail/worker.py):
    what it cancels never reaches anyone, and what it sends is read as the recipient reads it."""
    from flask import current_app

    from marketplace.mail import worker

    # Today's digests (after the configured hour), as the periodic job would send them.
    notes_svc.send_digests(now=utcnow().replace(hour=23, minute=0))
    mailman = current_app.extensions["mailman"]  # where the locmem backend keeps what it sent
    mailman.outbox = []
    while any(worker.send_pending(limit=500).values()):
        pass
    boxes: dict[str, list[tuple[str, str]]] = {}
    for msg in mailman.outbox:
        html = "\n".join(content for content, mimetype in getattr(msg, "alternatives", []) if mimetype == "text/html")
        for to in msg.to:
            boxes.setdefault(to.lower(), []).append((str(msg.subject), f"{msg.body}\n{html}"))
    return boxes


__all__ = ["BLOCKED", "Builder", "CANARY_RE", "COMMON", "PASSWORD", "PERSONAS", "SweepWorld", "deliver_all"]
