"""The registry of reportable types: what moderation needs to know about each thing that
can be reported, without knowing the feature that owns it.

Each entry knows how to load a target, where it lives (owning organisation, context item,
whether it is discussion content), who wrote it, how to hide and restore it, and how to
describe it to a moderator. Items (challenge/failure/asset), organisations and users are
registered here; ideas and engagement content (questions, answers, comments, asset
requests) are registered when their models exist, found by duck typing on ``hidden_at``,
``hidden_reason`` and an author attribute. Other features may also call
``register_reportable`` themselves.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from flask import current_app, has_request_context, url_for
from markupsafe import Markup, escape
from sqlalchemy import select

from ..extensions import db
from ..models import Item, ItemKind, Membership, Organisation, OrgRole, Status, User, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Placement:
    """Where a target lives; snapshotted onto reports, actions and flags."""

    target_type: str
    org_id: int | None
    context_item_id: int | None
    context_kind: str | None
    is_discussion: bool


@dataclass
class Reportable:
    type: str
    model: type
    label: str
    load: Callable[[int], Any | None]
    org_id: Callable[[Any], int | None]
    context_item: Callable[[Any], Item | None]
    author_ids: Callable[[Any], list[int]]
    describe: Callable[[Any], dict]
    can_hide: bool = False
    is_discussion: bool = False
    matches: Callable[[Any], bool] | None = None
    # Ideas: the status a disqualification sets, and its previous status for undoing it.
    disqualify_status: str | None = None
    extra: dict = field(default_factory=dict)

    def placement(self, obj: Any) -> Placement:
        item = self.context_item(obj)
        return Placement(self.type, self.org_id(obj), item.id if item is not None else None,
                         item.kind if item is not None else None, self.is_discussion)

    def hide(self, obj: Any, reason: str) -> None:
        obj.hidden_at = utcnow()
        obj.hidden_reason = reason

    def restore(self, obj: Any) -> None:
        obj.hidden_at = None
        obj.hidden_reason = None

    def is_hidden(self, obj: Any) -> bool:
        return self.can_hide and getattr(obj, "hidden_at", None) is not None


REGISTRY: dict[str, Reportable] = {}


def register_reportable(entry: Reportable) -> Reportable:
    """Add (or replace) a reportable type and give it the moderation view/act rules."""
    from .. import policy

    REGISTRY[entry.type] = entry
    policy.register_moderation_rules(entry.model, entry.type)
    return entry


def get(type_name: str) -> Reportable | None:
    ensure_registered()
    return REGISTRY.get(type_name)


def entry_for(obj: Any) -> Reportable | None:
    ensure_registered()
    for entry in REGISTRY.values():
        if isinstance(obj, entry.model) and (entry.matches is None or entry.matches(obj)):
            return entry
    return None


def type_of(obj: Any) -> str | None:
    e = entry_for(obj)
    return e.type if e else None


def load(type_name: str, obj_id: Any) -> tuple[Reportable | None, Any | None]:
    entry = get(type_name)
    if entry is None:
        return None, None
    try:
        obj_id = int(obj_id)
    except (TypeError, ValueError):
        return entry, None
    return entry, entry.load(obj_id)


def path_for(endpoint: str, _anchor: str | None = None, _external: bool = False, **values: Any) -> str:
    """url_for that also works outside a request (CLI commands, commit hooks): it then builds
    from SERVER_NAME (or localhost) and PREFERRED_URL_SCHEME."""
    if has_request_context():
        return url_for(endpoint, _anchor=_anchor, _external=_external, **values)
    cfg = current_app.config
    adapter = current_app.url_map.bind(cfg.get("SERVER_NAME") or "localhost",
                                       script_name=cfg.get("APPLICATION_ROOT") or "/",
                                       url_scheme=cfg.get("PREFERRED_URL_SCHEME") or "http")
    url = adapter.build(endpoint, values, force_external=_external)
    return f"{url}#{_anchor}" if _anchor else url


# --------------------------------------------------------------------------- built-ins


def _org_managers(org_id: int) -> list[int]:
    return list(db.session.execute(
        select(Membership.user_id).where(
            Membership.org_id == org_id, Membership.role.in_([OrgRole.OWNER.value, OrgRole.ADMIN.value]))
        .order_by(Membership.user_id)
    ).scalars())


def _item_loader(kind: str) -> Callable[[int], Item | None]:
    def load_item(obj_id: int) -> Item | None:
        item = db.session.get(Item, obj_id)
        return item if item is not None and item.kind == kind else None
    return load_item


def _item_authors(item: Item) -> list[int]:
    ids = set(_org_managers(item.org_id))
    if item.created_by_id:
        ids.add(item.created_by_id)
    return sorted(ids)


def _item_url(item: Item, anchor: str | None = None) -> str:
    return path_for("items.detail", kind=item.kind, item_id=item.id, _anchor=anchor)


def _describe_item(item: Item) -> dict:
    html = Markup("")
    if item.summary:
        html += Markup("<p class=\"lead\">") + escape(item.summary) + Markup("</p>")
    html += Markup(item.body_html or "")  # sanitised by marketplace.sanitize on write
    return {"title": item.title, "kind_label": item.kind_label, "html": html, "url": _item_url(item),
            "org_name": item.organisation.name if item.organisation else "", "context_title": None,
            "hidden": item.hidden_at is not None, "created_at": item.created_at}


def _describe_org(org: Organisation) -> dict:
    return {"title": org.name, "kind_label": "Organisation profile", "html": Markup(org.description_html or ""),
            "url": path_for("orgs.detail", slug=org.slug), "org_name": org.name, "context_title": None,
            "hidden": False, "created_at": org.created_at}


def _describe_user(user: User) -> dict:
    return {"title": user.display_name, "kind_label": "User profile", "html": Markup(""), "url": None,
            "org_name": "", "context_title": None, "hidden": False, "created_at": user.created_at,
            "blocked": user.is_blocked}


def _register_builtins() -> None:
    for kind in ItemKind.values():
        register_reportable(Reportable(
            type=kind, model=Item, label=ItemKind(kind).label, load=_item_loader(kind),
            org_id=lambda i: i.org_id, context_item=lambda i: i, author_ids=_item_authors,
            describe=_describe_item, can_hide=True,
            matches=(lambda k: (lambda i: i.kind == k))(kind),
        ))
    register_reportable(Reportable(
        type="organisation", model=Organisation, label="Organisation profile",
        load=lambda i: db.session.get(Organisation, i), org_id=lambda o: o.id, context_item=lambda o: None,
        author_ids=lambda o: _org_managers(o.id), describe=_describe_org,
    ))
    register_reportable(Reportable(
        type="user", model=User, label="User profile", load=lambda i: db.session.get(User, i),
        org_id=lambda u: None, context_item=lambda u: None, author_ids=lambda u: [u.id],
        describe=_describe_user,
    ))


# --------------------------------------------------------------------------- duck-typed features

AUTHOR_ATTRS = ("author_ids", "author_id", "submitted_by_id", "created_by_id", "user_id")
ITEM_ATTRS = ("item_id", "challenge_id")
TEXT_HTML_ATTRS = ("body_html", "message_html", "summary_html", "description_html")
TITLE_ATTRS = ("title", "name")


def _is_hideable(model: type) -> bool:
    return hasattr(model, "hidden_at") and hasattr(model, "hidden_reason")


def _author_ids_of(obj: Any) -> list[int]:
    """Authors by duck typing: an ``author_ids`` property, an ``authors``/``coauthors``
    relationship (users or rows with user_id), or a single author column."""
    ids: set[int] = set()
    val = getattr(obj, "author_ids", None)
    if isinstance(val, (list, tuple, set, frozenset)):
        ids.update(int(x) for x in val if x is not None)
    for rel in ("authors", "coauthors", "co_authors"):
        for row in getattr(obj, rel, None) or []:
            uid = getattr(row, "user_id", None)
            if uid is None and isinstance(row, User):
                uid = row.id
            if uid is not None:
                ids.add(int(uid))
    for attr in AUTHOR_ATTRS[1:]:
        uid = getattr(obj, attr, None)
        if isinstance(uid, int):
            ids.add(uid)
    return sorted(ids)


def _context_item_of(obj: Any) -> Item | None:
    for attr in ITEM_ATTRS:
        iid = getattr(obj, attr, None)
        if isinstance(iid, int):
            return db.session.get(Item, iid)
    return None


def _duck_describe(type_name: str, label: str) -> Callable[[Any], dict]:
    def describe(obj: Any) -> dict:
        item = _context_item_of(obj)
        html = Markup("")
        for attr in TEXT_HTML_ATTRS:
            val = getattr(obj, attr, None)
            if val:
                html = Markup(val)  # these *_html fields are written by marketplace.sanitize
                break
        title = next((getattr(obj, a) for a in TITLE_ATTRS if getattr(obj, a, None)), None)
        anchor = f"{type_name.replace('_', '-')}-{obj.id}"
        return {"title": title or f"{label} #{obj.id}", "kind_label": label, "html": html,
                "url": _item_url(item, anchor) if item is not None else None,
                "org_name": item.organisation.name if item is not None and item.organisation else "",
                "context_title": item.title if item is not None else None,
                "context_item": item, "hidden": getattr(obj, "hidden_at", None) is not None,
                "created_at": getattr(obj, "created_at", None)}
    return describe


def duck_reportable(type_name: str, model: type, label: str | None = None, *, is_discussion: bool = False,
                    disqualify_status: str | None = None) -> Reportable:
    """A registry entry for a model with hidden_at/hidden_reason, an author attribute and an
    item_id/challenge_id column."""
    label = label or type_name.replace("_", " ").capitalize()

    def org_of(obj):
        item = _context_item_of(obj)
        return item.org_id if item is not None else None

    return Reportable(
        type=type_name, model=model, label=label, load=lambda i: db.session.get(model, i),
        org_id=org_of, context_item=_context_item_of, author_ids=_author_ids_of,
        describe=_duck_describe(type_name, label), can_hide=_is_hideable(model),
        is_discussion=is_discussion, disqualify_status=disqualify_status,
    )


# Engagement content that is public discussion (org admins moderate it on their own items).
DISCUSSION_TYPES = frozenset({"question", "answer", "comment"})
_builtins_done = False
_optional_done: set[str] = set()


def _try_module(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name:
            raise
        return None


def _register_engagement() -> bool:
    mod = _try_module("marketplace.models.engagement")
    if mod is None:
        return False
    mapping = getattr(mod, "REPORTABLE", None) or {
        m.__tablename__.rstrip("s"): m for m in vars(mod).values()
        if isinstance(m, type) and hasattr(m, "__tablename__") and _is_hideable(m)
    }
    for type_name, model in mapping.items():
        if type_name in REGISTRY or not _is_hideable(model):
            continue
        register_reportable(duck_reportable(type_name, model, is_discussion=type_name in DISCUSSION_TYPES))
    return True


def _register_ideas() -> bool:
    mod = _try_module("marketplace.models.ideas")
    if mod is None:
        return False
    model = getattr(mod, "Idea", None)
    if model is None or not _is_hideable(model) or "idea" in REGISTRY:
        return model is not None
    status_enum = getattr(mod, "IdeaStatus", None)
    values = status_enum.values() if status_enum is not None else []
    entry = duck_reportable("idea", model, "Idea",
                            disqualify_status="disqualified" if "disqualified" in values else None)
    author_status = getattr(mod, "AuthorStatus", None)
    if author_status is not None:
        # Authors are the lead and co-authors who accepted; pending or declined invitees are not.
        counting = {author_status.LEAD.value, author_status.ACCEPTED.value}

        def idea_authors(idea: Any) -> list[int]:
            ids = {a.user_id for a in getattr(idea, "authors", []) if a.status in counting}
            if getattr(idea, "author_id", None):
                ids.add(idea.author_id)
            return sorted(ids)
        entry.author_ids = idea_authors
    register_reportable(entry)
    return True


def ensure_registered() -> None:
    """Register the built-in types, and the optional feature types whose models exist.

    Called when the moderation blueprint registers (every model is imported by then), so
    each optional module is looked for once per process, not on every request.
    """
    global _builtins_done
    if not _builtins_done:
        _builtins_done = True
        _register_builtins()
    for name, fn in (("engagement", _register_engagement), ("ideas", _register_ideas)):
        if name not in _optional_done:
            _optional_done.add(name)
            fn()


def is_published_item(item: Item | None) -> bool:
    return item is not None and item.status in (Status.OPEN.value, Status.CLOSED.value, Status.ARCHIVED.value)
