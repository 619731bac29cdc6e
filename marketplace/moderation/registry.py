"""The registry of reportable types: what moderation needs to know about each thing that
can be reported, without knowing the feature that owns it.

Each entry knows how to load a target, who wrote it, how to hide and restore it, and how to
describe it to a moderator. Where a target lives (its place: organisation, context item,
discussion or not) and who may moderate it are rules, so they come from the policy
(`policy.placement`). Items (challenge/failure/asset), organisations, users, ideas and
engagement content (questions, answers, comments, asset requests) are registered here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from flask import current_app, has_request_context, url_for
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from .. import policy
from ..extensions import db
from ..models import (
    Answer,
    AssetRequest,
    AuthorStatus,
    Comment,
    Idea,
    IdeaStatus,
    Item,
    ItemKind,
    Membership,
    Organisation,
    OrgRole,
    Question,
    User,
    utcnow,
)

Placement = policy.Placement


@dataclass
class Reportable:
    type: str
    model: type
    label: str
    load: Callable[[int], Any | None]
    context_item: Callable[[Any], Item | None]
    author_ids: Callable[[Any], list[int]]
    describe: Callable[[Any], dict]
    can_hide: bool = False
    matches: Callable[[Any], bool] | None = None
    # Ideas: the status a disqualification sets, and its previous status for undoing it.
    disqualify_status: str | None = None
    extra: dict = field(default_factory=dict)

    def placement(self, obj: Any) -> Placement:
        return policy.placement(obj)

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
    """Add (or replace) a reportable type (its moderation rules are the policy's)."""
    REGISTRY[entry.type] = entry
    return entry


def get(type_name: str) -> Reportable | None:
    return REGISTRY.get(type_name)


def entry_for(obj: Any) -> Reportable | None:
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
    if not -2**63 <= obj_id < 2**63:
        return entry, None
    return entry, entry.load(obj_id)


class LoadedPage(dict):
    """(type, id) -> (entry, target), holding the rows loaded with them (see load_many)."""

    held: list


def load_many(pairs: Any) -> LoadedPage:
    """`load` for many (type, id) pairs at once (a page of the moderation queue): one IN
    query per model, and one for the items the content targets live under, so describing
    them reads no row again while the answer is kept. Same answers as `load`, pair by pair."""
    held: list[Any] = []  # the session's identity map holds rows weakly: keep them for the page
    wanted: dict[type, set[int]] = {}
    keys: list[tuple[str, int, Reportable | None, int | None]] = []
    for type_name, raw_id in pairs:
        entry = get(type_name)
        try:
            obj_id = int(raw_id)
        except (TypeError, ValueError):
            obj_id = None
        if obj_id is not None and not -2**63 <= obj_id < 2**63:
            obj_id = None
        keys.append((type_name, raw_id, entry, obj_id))
        if entry is not None and obj_id is not None:
            wanted.setdefault(entry.model, set()).add(obj_id)
    for model, ids in wanted.items():
        opts = (selectinload(Item.organisation),) if model is Item else ()
        rows = list(db.session.execute(select(model).where(model.id.in_(sorted(ids))).options(*opts)).scalars())
        held += rows
        # The items content lives under (ideas: their challenge), for describe's _item_of.
        parents = {getattr(r, "challenge_id", None) if isinstance(r, Idea) else getattr(r, "item_id", None)
                   for r in rows} - {None}
        if parents:
            held += db.session.execute(select(Item).where(Item.id.in_(sorted(parents)))
                               .options(selectinload(Item.organisation))).scalars().all()
    out = LoadedPage()
    out.held = held
    for type_name, raw_id, entry, obj_id in keys:
        if entry is None:
            out[(type_name, raw_id)] = (None, None)
        elif obj_id is None:
            out[(type_name, raw_id)] = (entry, None)
        else:
            # Rows are in the session's identity map now: entry.load reads none again
            # (db.session.get), and keeps each entry's own checks (an item's kind).
            out[(type_name, raw_id)] = (entry, entry.load(obj_id))
    return out


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
    if anchor and anchor.startswith(("question-", "answer-", "comment-")):
        # A permalink: the item page opens its thread at the page holding the post.
        return path_for("items.detail", kind=item.kind, item_id=item.id, post=anchor, _anchor=anchor)
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


def _item_of(obj: Any) -> Item | None:
    """The item a piece of content lives under (ideas: their challenge)."""
    return db.session.get(Item, obj.challenge_id if isinstance(obj, Idea) else obj.item_id)


def _content_describer(type_name: str, label: str) -> Callable[[Any], dict]:
    """Describe ideas and engagement content: their sanitised HTML, in their item's context."""
    def describe(obj: Any) -> dict:
        item = _item_of(obj)
        html = getattr(obj, "body_html", None) or getattr(obj, "message_html", None) or ""
        anchor = f"{type_name.replace('_', '-')}-{obj.id}"
        return {"title": getattr(obj, "title", None) or f"{label} #{obj.id}", "kind_label": label,
                "html": Markup(html),  # *_html fields are written by marketplace.sanitize
                "url": _item_url(item, anchor) if item is not None else None,
                "org_name": item.organisation.name if item is not None and item.organisation else "",
                "context_title": item.title if item is not None else None,
                "context_item": item, "hidden": obj.hidden_at is not None,
                "created_at": obj.created_at}
    return describe


def describe_for(user: Any, entry: Reportable, target: Any, under_nda: set[int] | None = None) -> dict:
    """`entry.describe(target)` as far as this viewer may see it (moderation pages show
    nothing more of a target than the policy lets their reader see): a target they may not
    see is named by its kind and number only; the title of a context item they may not see
    is left out; a challenge's brief under an NDA they need to accept shows its summary only.
    `under_nda`: the policy's briefs_under_nda for a page of targets, asked once (else
    brief_under_nda is asked for this target)."""
    def may(action: str, obj: Any) -> bool:
        try:
            return policy.can(user, action, obj)
        except policy.PolicyError:
            return False

    desc = dict(entry.describe(target))
    if not may("view", target):
        desc.update(title=f"{entry.label} #{target.id}", html=Markup(""), url=None, context_title=None,
                    context_item=None)
        return desc
    item = entry.context_item(target)
    if item is not None and item is not target and not may("view", item):
        desc.update(context_title=None, context_item=None, url=None)
    nda = target.id in under_nda if under_nda is not None and isinstance(target, Item) else None
    if nda is None and isinstance(target, Item):
        nda = policy.brief_under_nda(target)
    if isinstance(target, Item) and nda and not may("view_brief", target):
        lead = Markup("<p class=\"lead\">") + escape(target.summary) + Markup("</p>") if target.summary else Markup("")
        desc["html"] = lead + Markup("<p class=\"meta\">The full brief is under an NDA you have not accepted.</p>")
    return desc


def _idea_authors(idea: Idea) -> list[int]:
    """The lead and the co-authors who accepted; pending or declined invitees are not authors."""
    counting = {AuthorStatus.LEAD.value, AuthorStatus.ACCEPTED.value}
    ids = {a.user_id for a in idea.authors if a.status in counting}
    ids.add(idea.author_id)
    return sorted(ids)


def _content(type_name: str, model: type, label: str, **kw: Any) -> Reportable:
    return Reportable(
        type=type_name, model=model, label=label, load=lambda i: db.session.get(model, i),
        context_item=_item_of, describe=_content_describer(type_name, label), can_hide=True,
        author_ids=kw.pop("author_ids", lambda o: [o.author_id] if o.author_id is not None else []), **kw)


def _register_all() -> None:
    for kind in ItemKind.values():
        register_reportable(Reportable(
            type=kind, model=Item, label=ItemKind(kind).label, load=_item_loader(kind),
            context_item=lambda i: i, author_ids=_item_authors, describe=_describe_item, can_hide=True,
            matches=(lambda k: (lambda i: i.kind == k))(kind),
        ))
    register_reportable(Reportable(
        type="organisation", model=Organisation, label="Organisation profile",
        load=lambda i: db.session.get(Organisation, i), context_item=lambda o: None,
        author_ids=lambda o: _org_managers(o.id), describe=_describe_org,
    ))
    register_reportable(Reportable(
        type="user", model=User, label="User profile", load=lambda i: db.session.get(User, i),
        context_item=lambda u: None, author_ids=lambda u: [u.id], describe=_describe_user,
    ))
    register_reportable(_content("idea", Idea, "Idea", author_ids=_idea_authors,
                                 disqualify_status=IdeaStatus.DISQUALIFIED.value))
    register_reportable(_content("question", Question, "Question"))
    register_reportable(_content("answer", Answer, "Answer"))
    register_reportable(_content("comment", Comment, "Comment"))
    register_reportable(_content("asset_request", AssetRequest, "Asset request"))


_register_all()
