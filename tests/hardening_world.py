"""A site holding something of every kind, and every route of the app made concrete with it.

Used by the hardening tests (tests/test_hardening_*.py) that walk the whole URL map: the demo
data (organisations of each kind, items at every level, ideas under terms, reviewers,
questions, answers, comments, asset requests, invitation lists, an invitation, reports) plus a
moderation decision with an appeal, an idea with an attachment and a suspended author's
appeal link, and the API's integrations: a webhook of Acme's with a delivery (of that idea),
a personal API token and an organisation token (their texts kept for bearer requests). `concrete_urls(app, world)` turns each rule into URLs with real ids, so a request
reaches the view's own code rather than the router's 404.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from flask import current_app
from sqlalchemy import select
from werkzeug.datastructures import FileStorage
from werkzeug.routing import AnyConverter

from marketplace.demo import DEMO_PASSWORD, load_demo
from marketplace.extensions import db
from marketplace.models import (
    ListInvitation,
    ReviewerInvitation,
    AccessGrant,
    ApiToken,
    Answer,
    Appeal,
    AssetRequest,
    AssetTerms,
    BlockedDomain,
    ChallengeTerms,
    Comment,
    Idea,
    IdeaAttachment,
    IdeaRevision,
    InvitationList,
    Item,
    ItemList,
    ListMember,
    ListShare,
    Membership,
    ModerationAction,
    ModerationFlag,
    ModeratorScope,
    Organisation,
    OutgoingMail,
    Question,
    ReviewCriterion,
    ReviewerAppointment,
    TermsAcceptance,
    User,
    Webhook,
    WebhookDelivery,
)
from marketplace.models.agreements import AssetFile, DataAgreement
from marketplace.models.invitations import Invitation
from marketplace.moderation import registry

from .factories import Factories

PASSWORD = DEMO_PASSWORD
PER_ARG = 4  # ids tried per path argument (enough to reach both allowed and refused rows)

# Demo accounts by role (marketplace/demo.py).
VIEWERS = {
    "anonymous": None,
    "site_admin": "admin@demo.test",
    "moderator": "moderator@demo.test",
    "owner": "owner@acme.test",
    "org_admin": "admin@acme.test",
    "curator": "curator@cluster.test",
    "researcher": "researcher@uni.test",  # a reviewer and a moderator scoped to Acme
    "invited": "invited@contributor.test",
    "outsider": "outsider@contributor.test",
}


@dataclass
class World:
    invitation_token: str = ""
    appeal_token: str = ""
    unsubscribe_token: str = ""  # the outsider's, for announcement mails
    api_token: str = ""  # the owner's personal token (every scope), for bearer requests
    org_token: str = ""  # Acme's organisation token (read only, acting as a member)
    ids: dict = field(default_factory=dict)


def _pdf(name: str = "plan.pdf") -> FileStorage:
    return FileStorage(stream=io.BytesIO(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"), filename=name)


def build_world() -> World:
    """Inside an app context: the demo data and the extras above. Returns the tokens a
    route needs that the database keeps only hashed."""
    from marketplace.services import engagement as eng_svc
    from marketplace.services import ideas as ideas_svc
    from marketplace.services import invitations as inv_svc
    from marketplace.services import moderation as mod_svc
    from marketplace.services import terms as terms_svc
    from marketplace.services import tokens as token_svc
    from marketplace.services import webhooks as webhook_svc

    load_demo()
    users = {k: db.session.execute(select(User).where(User.email == e)).scalar_one()
             for k, e in VIEWERS.items() if e}
    world = World()
    # A moderation decision on a comment, appealed by its author.
    comment = db.session.execute(select(Comment).order_by(Comment.id)).scalars().first()
    action = mod_svc.take_action(users["moderator"], "comment", comment.id, "hide", "Off topic for the demo.")
    author = db.session.get(User, comment.author_id)
    mod_svc.file_appeal(author, action, "It was on topic: it answered the question.")
    # An account suspended over a question, with the mailed appeal link.
    grip = db.session.execute(select(Item).where(Item.title == "Grip fragile parcels without damage")).scalar_one()
    spammer = Factories().make_user(email="spammer@hardening.test", name="Spam Sender")
    question = eng_svc.ask_question(spammer, grip, "Buy cheap parcels at spam.example!")
    suspend = mod_svc.take_action(users["moderator"], "question", question.id, "suspend", "Spam.", days=3,
                                  user_id=spammer.id)
    world.appeal_token = mod_svc.appeal_token(suspend, spammer)
    # Acme's webhook, registered before the idea below so that its submission queues a
    # delivery (a loopback endpoint: tests allow it; no worker runs, so it stays pending).
    webhook_svc.create_webhook(users["owner"], grip.organisation, "http://127.0.0.1:9/hardening-hook",
                               ["idea.submitted", "status.changed"])
    # An idea with an attachment, on the public gripper challenge (terms set by the demo).
    terms = terms_svc.policy.current_terms(grip.id)
    ideas_svc.submit_idea(users["outsider"], grip, {
        "challenge_id": str(grip.id), "submission_key": "hardening-world-1", "title": "Soft fingers",
        "summary": "Silicone fingers.", "body": "Cast silicone fingers with **air** chambers.",
        "terms_version": str(terms.version), "terms_digest": terms.digest, "accept_terms": True,
        "confirm_eligibility": True, "confirm_coi": True, "coi_note": ""}, [_pdf()])
    # A pending invitation whose link we know.
    lidar = db.session.execute(select(Item).where(Item.title.like("Confidential:%"))).scalar_one()
    _inv, world.invitation_token = inv_svc.create_invitation(users["owner"], lidar, "guest@hardening.test")
    db.session.commit()
    # A judging round on the lidar challenge with its ideas assigned, so the judging pages
    # (rounds, queue, results, an idea's judging page) show their forms to the walkers.
    from datetime import timedelta

    from marketplace.models import utcnow
    from marketplace.services import judging as judging_svc

    now = utcnow()
    rnd = judging_svc.create_round(users["owner"], lidar, {
        "name": "Screening", "starts_at": now - timedelta(days=1), "ends_at": now + timedelta(days=7),
        "advance_count": 1, "criteria": "Feasibility: 2\nCost: 1",
        "panel": [a.user_id for a in judging_svc.eligible_panel(lidar)]})
    judging_svc.auto_assign(users["owner"], rnd, 1)
    # API tokens: the owner's personal one, and one of Acme's (with its integration account).
    _t, world.api_token = token_svc.create_personal_token(users["owner"], "Hardening", ["read", "write"], None)
    _t, world.org_token = token_svc.create_org_token(users["owner"], grip.organisation, "Hardening sync",
                                                     ["read"], "member", None)
    # A data-sharing agreement in force on Acme's data set, with a file: the outsider's
    # organisation was granted the asset, asked for it and named the outsider (issue 17).
    from marketplace.services import agreements as agr_svc

    dataset = db.session.execute(select(Item).where(Item.title.like("Warehouse motion data set%"))).scalar_one()
    partner = Factories().make_org(name="Hardening Partner", owner=users["outsider"])
    Factories().grant(dataset, org=partner)
    agr_svc.publish_sheet(users["owner"], dataset, {
        "purpose": "Benchmarking.", "allowed_uses": "Research.", "access_roles": "analyst", "duration_days": "30",
        "end_of_term": "delete", "end_of_term_days": "10", "confidentiality_days": "30",
        "publication_rules": "None.", "governing_law": "Dutch law"})
    agr_svc.add_files(users["owner"], dataset, [FileStorage(stream=io.BytesIO(b"t,x\n0,1\n"), filename="motion.csv")])
    lic = eng_svc.current_terms(dataset)
    req = eng_svc.send_request(users["outsider"], dataset, "interest", "", terms_version=lic.version if lic else None,
                               terms_digest=lic.digest if lic else None, on_behalf_of=partner)
    eng_svc.decide_request(users["owner"], req, "accept")
    agreement = agr_svc.agreement_for_request(req)
    agr_svc.accept_agreement(users["outsider"], agreement, [(users["outsider"].id, "analyst")],
                             agreement.sheet_version, agreement.sheet_digest)
    # The outsider's unsubscribe link (for announcements), as mails carry it.
    from marketplace.notify import unsubscribe_url

    with current_app.test_request_context():
        world.unsubscribe_token = unsubscribe_url(users["outsider"], "announcements").rsplit("/", 1)[-1]
    # Index everything now (the search outbox is background work, not something a request did).
    from marketplace.search import get_runtime

    get_runtime().apply_now(wait=True)
    return world


def _ids(stmt, n: int = PER_ARG) -> list:
    return list(db.session.execute(stmt.limit(n)).all())


# Rules whose item id must be of one kind (the blueprint registers them per kind).
_KIND_PREFIX = {"/challenges/": "challenge", "/failures/": "failure", "/assets/": "asset",
                "/engage/challenges/": "challenge", "/engage/failures/": "failure", "/engage/assets/": "asset"}


def _item_ids(rule: str) -> list[int]:
    kind = next((k for p, k in sorted(_KIND_PREFIX.items(), key=lambda kv: -len(kv[0])) if rule.startswith(p)),
                None)
    q = select(Item.id).order_by(Item.id)
    if kind:
        q = q.where(Item.kind == kind)
    return [r[0] for r in _ids(q, 2 * PER_ARG)]


def _combos(rule, world: World) -> list[dict]:
    """Argument values for one rule: rows that exist, parents matched with their children."""
    args = set(rule.arguments) - set(rule.defaults or {})
    r = rule.rule
    pairs = {
        frozenset({"item_id", "grant_id"}): (AccessGrant.item_id, AccessGrant.id),
        frozenset({"challenge_id", "crit_id"}): (ReviewCriterion.challenge_id, ReviewCriterion.id),
        frozenset({"challenge_id", "appt_id"}): (ReviewerAppointment.challenge_id, ReviewerAppointment.id),
        frozenset({"challenge_id", "version"}): (ChallengeTerms.challenge_id, ChallengeTerms.version),
        frozenset({"item_id", "version"}): (AssetTerms.item_id, AssetTerms.version),
        frozenset({"idea_id", "att_id"}): (IdeaAttachment.idea_id, IdeaAttachment.id),
        frozenset({"idea_id", "number"}): (IdeaRevision.idea_id, IdeaRevision.number),
        frozenset({"list_id", "member_id"}): (ListMember.list_id, ListMember.id),
        frozenset({"list_id", "share_id"}): (ListShare.list_id, ListShare.id),
        frozenset({"slug", "member_id"}): (Organisation.slug, Membership.id),
        frozenset({"slug", "user_id"}): (Organisation.slug, Membership.user_id),
        frozenset({"slug", "webhook_id"}): (Organisation.slug, Webhook.id),
        frozenset({"challenge_id", "inv_id"}): (ReviewerInvitation.challenge_id, ReviewerInvitation.id),
        frozenset({"list_id", "inv_id"}): (ListInvitation.list_id, ListInvitation.id),
        frozenset({"slug", "delivery_id"}): (Organisation.slug, WebhookDelivery.id),
    }
    # How each child row reaches its organisation.
    org_joins = {
        frozenset({"slug", "member_id"}): [(Membership, Membership.org_id == Organisation.id)],
        frozenset({"slug", "user_id"}): [(Membership, Membership.org_id == Organisation.id)],
        frozenset({"slug", "webhook_id"}): [(Webhook, Webhook.org_id == Organisation.id)],
        frozenset({"slug", "delivery_id"}): [(Webhook, Webhook.org_id == Organisation.id),
                                             (WebhookDelivery, WebhookDelivery.webhook_id == Webhook.id)],
    }
    any_args = {a: sorted(c.items) for a, c in rule._converters.items() if isinstance(c, AnyConverter)}
    fixed = args - set(any_args)
    out: list[dict] = []
    key = frozenset(fixed)
    if key in pairs:
        parent, child = pairs[key]
        q = select(parent, child).order_by(child)
        for model, on in org_joins.get(key, []):
            q = q.join(model, on)
        names = sorted(fixed, key=lambda a: 0 if a in ("item_id", "challenge_id", "idea_id", "list_id", "slug") else 1)
        out = [dict(zip(names, row)) for row in _ids(q, 2 * PER_ARG)]
        if not out and key & {"delivery_id", "webhook_id"}:  # none yet: still probe (a 404)
            child_name = next(iter(key - {"slug"}))
            out = [{"slug": slug, child_name: 1} for (slug,) in _ids(select(Organisation.slug), 1)]
    elif fixed == {"target_type", "target_id"}:
        for type_name, entry in registry.REGISTRY.items():
            for (tid,) in _ids(select(entry.model.id).order_by(entry.model.id), 2):
                out.append({"target_type": type_name, "target_id": tid})
    elif fixed == {"kind", "key"}:  # /follow/<kind>/<key>
        out = [{"kind": "challenge", "key": cid} for (cid,) in _ids(select(Item.id).where(Item.kind == "challenge")
                                                                  .order_by(Item.id), 2)]
        out += [{"kind": "organisation", "key": oid} for (oid,) in _ids(select(Organisation.id).order_by(Organisation.id), 2)]
        out += [{"kind": "tag", "key": "robotics"}, {"kind": "nonsense", "key": "1"}]
    elif fixed == {"obj_id"}:  # /engage/<what>/<obj_id>/...
        models = {"questions": Question, "answers": Answer, "comments": Comment}
        for what in any_args.pop("what"):
            for (oid,) in _ids(select(models[what].id).order_by(models[what].id), 2):
                out.append({"what": what, "obj_id": oid})
    elif len(fixed) <= 1:
        (arg,) = fixed or {None}
        values = _single(arg, r, world) if arg else [None]
        out = [{arg: v} if arg else {} for v in values]
    else:
        raise AssertionError(f"{r}: no values known for the arguments {sorted(fixed)}; add them to tests/hardening_world.py")
    # any(...) converters: every choice, combined with each set of ids.
    for name, choices in any_args.items():
        out = [{**d, name: c} for d in out for c in choices]
    return out


def _single(arg: str, rule: str, world: World) -> list:
    models = {
        "challenge_id": select(Item.id).where(Item.kind == "challenge"), "idea_id": select(Idea.id),
        "acc_id": select(TermsAcceptance.id), "inv_id": select(Invitation.id), "list_id": select(InvitationList.id),
        "attachment_id": select(ItemList.id), "action_id": select(ModerationAction.id),
        "appeal_id": select(Appeal.id), "domain_id": select(BlockedDomain.id), "flag_id": select(ModerationFlag.id),
        "scope_id": select(ModeratorScope.id), "comment_id": select(Comment.id), "question_id": select(Question.id),
        "request_id": select(AssetRequest.id), "slug": select(Organisation.slug),
        "mail_id": select(OutgoingMail.id), "invitation_id": select(Invitation.id),
        "token_id": select(ApiToken.id),
        "agreement_id": select(DataAgreement.id), "file_id": select(AssetFile.id),
    }
    if arg == "item_id":
        return _item_ids(rule)
    if arg == "token":
        if rule.startswith("/moderation/"):
            return [world.appeal_token]
        if rule.startswith("/notifications/unsubscribe/"):
            return [world.unsubscribe_token]
        # Mailed-link pages of other kinds (verification, reset, address change, co-authors)
        # answer a token that is not theirs with their "link problem" page.
        return [world.invitation_token]
    if arg == "filename":
        return ["css/site.css"]
    if arg in models:
        values = [row[0] for row in _ids(models[arg].order_by(models[arg].selected_columns[0]), PER_ARG)]
        return values or [1]  # none of that kind: the route still answers (a 404)
    raise AssertionError(f"{rule}: no values known for <{arg}>; add it to tests/hardening_world.py")


def concrete_urls(app, world: World, methods: set[str]) -> list[tuple[str, str, str]]:
    """(method, endpoint, url) for every rule accepting one of `methods`, with real ids."""
    out = []
    with app.test_request_context():
        from flask import url_for

        for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
            for method in sorted(methods & (rule.methods or set())):
                for values in _combos(rule, world):
                    url = url_for(rule.endpoint, **{**(rule.defaults or {}), **values})
                    out.append((method, rule.endpoint, url))
    return list(dict.fromkeys(out))


def login(client, email: str, password: str = PASSWORD, csrf: str | None = None) -> None:
    data = {"email": email, "password": password}
    if csrf:
        data["csrf_token"] = csrf
    r = client.post("/auth/login", data=data)
    assert r.status_code == 302, f"{email} could not sign in: {r.status_code}"



# --------------------------------------------------------------------------- forms on a page


@dataclass
class Field:
    name: str
    kind: str  # input type, "textarea" or "select"
    value: str = ""
    options: list = field(default_factory=list)


@dataclass
class Form:
    action: str
    method: str
    fields: list = field(default_factory=list)
    submits: list = field(default_factory=list)  # (name, value) of named submit buttons

    @property
    def key(self) -> tuple:
        return (self.action, tuple(sorted(f.name for f in self.fields)))


class _FormParser(HTMLParser):
    def __init__(self, page_url: str):
        super().__init__(convert_charrefs=True)
        self.page_url = page_url
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._select: Field | None = None
        self._textarea: Field | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            action = a.get("action") or self.page_url
            self._form = Form(action=action, method=(a.get("method") or "get").lower())
            self.forms.append(self._form)
        elif self._form is None:
            return
        elif tag == "input" and a.get("name"):
            kind = (a.get("type") or "text").lower()
            if kind == "submit":
                self._form.submits.append((a["name"], a.get("value", "")))
            else:
                self._form.fields.append(Field(a["name"], kind, a.get("value", "")))
        elif tag == "button" and a.get("name"):
            self._form.submits.append((a["name"], a.get("value", "")))
        elif tag == "textarea" and a.get("name"):
            self._textarea = Field(a["name"], "textarea")
            self._form.fields.append(self._textarea)
        elif tag == "select" and a.get("name"):
            self._select = Field(a["name"], "select")
            self._form.fields.append(self._select)
        elif tag == "option" and self._select is not None:
            self._select.options.append(a.get("value", ""))
            if "selected" in a:
                self._select.value = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea.value += data


def forms_on(html: str, page_url: str, method: str = "post") -> list[Form]:
    parser = _FormParser(page_url)
    parser.feed(html)
    return [f for f in parser.forms if f.method == method]


NUMERIC_NAMES = re.compile(r"(^|[-_])(id|days|version|winners|weight|hours|number|page|max_[a-z_]+|incentive|"
                           r"user_id|list_id|parent_id|question_cutoff_hours|max_open_requests)$")


def is_numeric(f: Field) -> bool:
    if f.kind == "number" or NUMERIC_NAMES.search(f.name):
        return True
    if f.kind == "select":
        values = [o for o in f.options if o]
        return bool(values) and all(o.lstrip("-").isdigit() for o in values)
    return f.kind == "hidden" and f.value.isdigit()


def fill(form: Form, text: str = "Hardening text, long enough to pass.", number: str | None = None,
         date: str = "2031-05-06T10:00", email: str = "someone@example.test") -> dict:
    """Form data as a browser would send it, every field filled: `number` (if given) in every
    numeric field, `text` in every text field, `date` in every date field."""
    data: dict[str, str] = {}
    for f in form.fields:
        if f.kind in ("file", "image", "reset"):
            continue
        if f.name.endswith("csrf_token"):
            data[f.name] = f.value
        elif number is not None and is_numeric(f):
            data[f.name] = number
        elif f.kind == "checkbox":
            data[f.name] = f.value or "y"
        elif f.kind == "radio":
            data.setdefault(f.name, f.value)
        elif f.kind == "select":
            data[f.name] = f.value or next((o for o in f.options if o), "")
        elif f.kind == "hidden":
            data[f.name] = f.value
        elif f.kind in ("datetime-local", "date"):
            data[f.name] = date
        elif f.kind == "email":
            data[f.name] = email
        elif f.kind == "url":
            data[f.name] = "https://example.org/"
        elif f.kind == "password":
            data[f.name] = "a-long-password-1"
        else:
            data[f.name] = text
    if form.submits:
        name, value = form.submits[0]
        data[name] = value or "go"
    return data
