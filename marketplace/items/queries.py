"""The item list query shared by pages, the JSON API and feeds: it always starts from
policy.visible(), so no surface can list more than the viewer may see."""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select

from .. import policy
from ..extensions import db
from ..models import MODEL_BY_KIND, Item, ItemTag, Status
from ..params import parse_int
from ..services.orgs import find_org

SORTS = ("newest", "deadline", "oldest", "title")
MAX_PAGE = 10_000


class BadListArgs(ValueError):
    """A list argument the viewer must correct (answered with a 400 and this message)."""


@dataclass
class ListArgs:
    kind: str | None = None
    tag: str = ""
    org: str = ""
    status: str = ""
    sort: str = "newest"
    page: int = 1
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_request(cls, args, kind: str | None = None) -> "ListArgs":
        kind = kind or (args.get("kind") or "").strip() or None
        if kind is not None and kind not in MODEL_BY_KIND:
            raise BadListArgs(f"Unknown kind; use one of {', '.join(MODEL_BY_KIND)}.")
        status = (args.get("status") or "").strip()
        if status and status not in Status.values():
            raise BadListArgs(f"Unknown status {status[:40]!r}; use one of {', '.join(Status.values())}.")
        sort = (args.get("sort") or "newest").strip() or "newest"
        if sort not in SORTS:
            raise BadListArgs(f"Unknown ordering; use one of {', '.join(sorted(SORTS))}.")
        for name in ("tag", "org"):
            if "\x00" in (args.get(name) or ""):
                raise BadListArgs("Filters may not contain NUL characters.")
        page = parse_int(args.get("page", 1))
        if page is None:
            raise BadListArgs("The page number must be a whole number.")
        if page < 1 or page > MAX_PAGE:
            raise BadListArgs("The page number is out of range.")
        return cls(kind=kind, tag=(args.get("tag") or "").strip().lower()[:40],
                   org=(args.get("org") or "").strip()[:140], status=status, sort=sort, page=page)


def item_list(user, a: ListArgs, page_size: int, *, hide_archived: bool = False):
    """(rows, total, org) for one page of the items `user` may see, filtered and ordered.
    `hide_archived` (the list pages): without a status filter, archived items are left out."""
    model = MODEL_BY_KIND[a.kind] if a.kind else Item
    q = policy.visible(user, model)
    org = None
    if a.tag:
        q = q.where(model.id.in_(select(ItemTag.item_id).where(ItemTag.tag == a.tag)))
    if a.org:
        org = find_org(a.org)  # its name, or its short name from an address
        q = q.where(model.org_id == (org.id if org else -1))
    if a.status:
        q = q.where(model.status == a.status)
    elif hide_archived:
        # Archived items are kept for the record, not offered: only a status filter shows them.
        q = q.where(model.status != Status.ARCHIVED.value)
    if a.sort == "deadline":
        q = q.order_by(model.deadline.is_(None), model.deadline.asc(), model.id.desc())
    elif a.sort == "oldest":
        q = q.order_by(model.created_at.asc(), model.id.asc())
    elif a.sort == "title":
        q = q.order_by(func.lower(model.title), model.id)
    else:
        q = q.order_by(model.created_at.desc(), model.id.desc())
    total = db.session.execute(select(func.count()).select_from(q.order_by(None).subquery())).scalar_one()
    rows = db.session.execute(q.limit(page_size).offset((a.page - 1) * page_size)).scalars().all()
    return rows, total, org
