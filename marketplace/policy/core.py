"""The machinery of the rule book: the viewer, rule objects, and the two faces of `can`.

A *rule object* (a subclass of `Rule`) holds everything the site knows about one model:

* ``check(v, obj)``      may this viewer see this row? (per object)
* ``clause(v)``          the same rule as a SQL WHERE clause over the model (lists, feeds,
                         exports and the starting point of search)
* ``doc_principals(obj, now)``  the same rule once more as search terms (searchable models),
                         with ``valid_until(obj, now)`` naming when that answer expires by
                         the clock alone
* ``actions``            every other action (edit, decide, ...), name -> check

Declared, not patched:

* ``parent``             the model whose visibility this one inherits (a question is seen only
                         by those who see its challenge); the rule calls ``parent_ok`` /
                         ``parent_clause`` where its prose says so
* ``exceptions``         cross-cutting grants (moderators see what they moderate, the review
                         panel reads sealed ideas): objects with a ``grants(v, obj)`` and a
                         ``clause(v, model)`` the rule ORs in. They are data on the rule, read
                         by `Rule.can_view` / `Rule.visible_clause`; nothing is wrapped or
                         replaced at run time, so `can()` answers the same whether or not an
                         app was created.

Fail closed: an unknown model, action, visibility, status or mode raises `PolicyError`;
nothing grants by default. Per request, the viewer (roles), their e-mail and moderator
scopes are memoised in ``flask.g``; `forget_viewer()` drops them after a change of roles,
grants or lists in the same request.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, ClassVar, Iterator, Mapping

from flask import g, has_request_context
from sqlalchemy import event, or_, select
from sqlalchemy.engine import Engine

from ..extensions import db
from ..models import Membership, Organisation, OrgRole, SiteRole, User, utcnow


class PolicyError(RuntimeError):
    """An action, model or state the policy does not know: never granted."""


# --------------------------------------------------------------------------- the viewer


@dataclass(frozen=True)
class Viewer:
    """What the policy needs to know about the person asking, loaded once per request."""

    user_id: int | None = None
    site_role: str = SiteRole.USER.value
    org_roles: dict[int, str] = field(default_factory=dict)
    blocked: bool = False

    @property
    def is_authenticated(self) -> bool:
        return self.user_id is not None and not self.blocked

    @property
    def is_site_admin(self) -> bool:
        return self.is_authenticated and self.site_role == SiteRole.ADMIN.value

    @property
    def is_moderator(self) -> bool:
        """Site-wide moderators (site admins moderate too)."""
        return self.is_authenticated and self.site_role in (
            SiteRole.MODERATOR.value,
            SiteRole.ADMIN.value,
        )

    @property
    def member_org_ids(self) -> frozenset[int]:
        return frozenset(self.org_roles) if self.is_authenticated else frozenset()

    @property
    def admin_org_ids(self) -> frozenset[int]:
        if not self.is_authenticated:
            return frozenset()
        return frozenset(
            o for o, r in self.org_roles.items() if r in (OrgRole.OWNER.value, OrgRole.ADMIN.value)
        )

    def is_member(self, org_id: int | None) -> bool:
        return org_id is not None and org_id in self.member_org_ids

    def is_org_admin(self, org_id: int | None) -> bool:
        return org_id is not None and org_id in self.admin_org_ids

    def is_org_owner(self, org_id: int | None) -> bool:
        return self.is_authenticated and self.org_roles.get(org_id) == OrgRole.OWNER.value

    def is_user(self, user_id: int | None) -> bool:
        """The viewer is this (signed-in, not blocked) account."""
        return self.is_authenticated and user_id is not None and user_id == self.user_id


ANONYMOUS = Viewer()

# Every per-request memo lives under one of these keys of flask.g; forget_viewer() clears them.
# Each memo is a dict keyed by user id (None: anonymous), so forgetting one viewer is a pop.
# (_policy_locks, by item id, holds what reads of a GET learn of discussion locks.)
_MEMO_KEYS = ("_policy_viewers", "_policy_mod_scopes", "_policy_emails", "_policy_verified",
              "_policy_clauses", "_policy_principals", "_policy_grants", "_policy_locks")


def request_memo(key: str) -> dict:
    """A dict memoised for the current request (a throwaway one outside a request, so CLI
    commands and tests without a request always read fresh rows)."""
    if not has_request_context():
        return {}
    return g.setdefault(key, {})


def read_memo(key: str) -> dict:
    """request_memo for answers read from rows others may change meanwhile (grants, locks):
    kept only in GET and HEAD requests. A write re-reads them, after its row locks, so a
    check made again under a lock never gets the answer from before it."""
    from flask import request

    if not has_request_context() or request.method not in ("GET", "HEAD"):
        return {}
    return request_memo(key)


def viewer_for(user: Any) -> Viewer:
    """The Viewer for a user (or None / AnonymousUserMixin), memoised per request."""
    if isinstance(user, Viewer):
        return user
    if user is None or not getattr(user, "is_authenticated", False):
        return ANONYMOUS
    cache = request_memo("_policy_viewers")
    uid = user.id
    if uid not in cache:
        roles = dict(db.session.execute(
            select(Membership.org_id, Membership.role).where(Membership.user_id == uid)).all())
        cache[uid] = Viewer(user_id=uid, site_role=user.site_role or SiteRole.USER.value,
                            org_roles=roles, blocked=bool(getattr(user, "is_blocked", False)))
    return cache[uid]


def reset_request_memos() -> None:
    """Start a request with nothing memoised (an outer app context, as in the CLI or tests,
    may be reused across requests, and with it flask.g)."""
    for key in _MEMO_KEYS:
        g.pop(key, None)


# Statements that change no rows; anything else sent in a request drops the request's memos.
_READ_VERBS = frozenset({"SELECT", "PRAGMA", "SHOW", "SAVEPOINT", "RELEASE", "BEGIN", "COMMIT"})


@event.listens_for(Engine, "after_cursor_execute")
def _forget_after_writes(_conn, _cursor, statement, _params, _context, _many) -> None:
    """Any write sent during a request (an accepted invitation, a revoked grant, a membership
    changed by a service or by hand) drops every memo of this request: a memo made before it
    could grant what the write took away. forget_viewer() calls in the services say why a
    memo must go; this makes sure none is missed. A rolled-back write costs a recomputation."""
    if not has_request_context():
        return
    verb = statement.lstrip()[:9].split(None, 1)[0].upper() if statement.strip() else ""
    if verb in _READ_VERBS:
        return
    for key in _MEMO_KEYS:
        memo = g.get(key)
        if memo:
            memo.clear()


def forget_viewer(user_id: int | None = None) -> None:
    """Drop what was memoised about a viewer (everyone's, with no id) after a change of
    memberships, roles, grants, lists or moderator scopes inside one request."""
    if not has_request_context():
        return
    for key in _MEMO_KEYS:
        memo = g.get(key)
        if memo is None:
            continue
        if user_id is None:
            memo.clear()
        else:
            memo.pop(user_id, None)


def viewer_email(v: Viewer) -> str | None:
    """The signed-in viewer's e-mail, lower-case (None when anonymous or blocked)."""
    if not v.is_authenticated:
        return None
    cache = request_memo("_policy_emails")
    if v.user_id not in cache:
        user = db.session.get(User, v.user_id)
        cache[v.user_id] = user.email.strip().lower() if user is not None else None
    return cache[v.user_id]


# --------------------------------------------------------------------------- rule objects

Check = Callable[[Viewer, Any], bool]


@dataclass(frozen=True)
class Parent:
    """A declared parent: the row's visibility is inherited from ``attr`` (a relationship),
    whose id is in ``column``, of type ``model``."""

    attr: str
    column: str
    model: type


class Rule:
    """One model's rules. Subclasses set ``model`` and define ``check`` and ``clause``
    (and, when searchable, ``doc_principals``); `can_view` / `visible_clause` add the
    declared exceptions."""

    model: ClassVar[type]
    parent: ClassVar[Parent | None] = None
    exceptions: ClassVar[tuple] = ()
    has_view: ClassVar[bool] = True

    def __init__(self) -> None:  # pragma: no mutate block (runs at import: declarations)
        # action name -> check(v, obj); "view" is not in here (it is can_view). Feature
        # modules declare their actions on a model with `action(RULE, name)`.
        self.actions: dict[str, Check] = {}

    def action(self, name: str) -> Callable[[Check], Check]:  # pragma: no mutate block (runs at import)
        """Declare the check of another action on this model (decorator)."""
        def deco(fn: Check) -> Check:
            if name == "view" or name in self.actions:
                raise PolicyError(f"two rules for {name!r} on {self.model.__name__}")
            self.actions[name] = fn
            return fn
        return deco

    # -- the three forms, defined by each rule

    def check(self, v: Viewer, obj: Any) -> bool:
        raise PolicyError(f"no view rule for {self.model.__name__}")

    def clause(self, v: Viewer):
        raise PolicyError(f"no visibility rule for {self.model.__name__}")

    def doc_principals(self, obj: Any, now: datetime) -> list[str]:
        raise PolicyError(f"no search principals rule for {self.model.__name__}")

    def valid_until(self, obj: Any, now: datetime) -> datetime | None:
        return None

    # -- parents, declared

    def parent_of(self, obj: Any) -> Any:
        return getattr(obj, self.parent.attr)

    # A row inherits its parent's own rule, not the exceptions granted on the parent: a case
    # on a challenge lets a scoped moderator see the challenge, not everything under it.

    def parent_ok(self, v: Viewer, obj: Any) -> bool:
        return RULE_BOOK.rule(self.parent.model).check(v, self.parent_of(obj))

    def parent_clause(self, v: Viewer):
        """SQL twin of parent_ok: the row's parent is visible to the viewer."""
        pm = self.parent.model
        return getattr(self.model, self.parent.column).in_(
            select(pm.id).where(RULE_BOOK.rule(pm).clause(v)))

    # -- the faces every surface uses

    def can_view(self, v: Viewer, obj: Any) -> bool:
        if self.check(v, obj):
            return True
        return any(exc.grants(v, obj) for exc in self.exceptions)

    def visible_clause(self, v: Viewer):
        own = self.clause(v)
        extra = [exc.clause(v, self.model) for exc in self.exceptions]
        return or_(own, *extra) if extra else own

    def ids_granted_by_exceptions(self, v: Viewer, ids) -> set:
        """Of these row ids, those a declared exception lets the viewer see: the batch form
        of ``any(exc.grants(v, row))`` for a page of rows that failed ``check`` (one query
        instead of the exceptions' queries per row)."""
        ids = list(ids)
        if not ids or not self.exceptions:
            return set()
        pk = self.model.__mapper__.primary_key[0]
        return set(db.session.execute(select(pk).where(
            pk.in_(ids), or_(*[exc.clause(v, self.model) for exc in self.exceptions]))).scalars())

    def can(self, v: Viewer, action: str, obj: Any) -> bool:
        if action == "view":
            if not self.has_view:
                raise PolicyError(f"no rule for 'view' on {type(obj).__name__}")
            return self.can_view(v, obj)
        check = self.actions.get(action)
        if check is None:
            raise PolicyError(f"no rule for {action!r} on {type(obj).__name__}")
        # Viewing comes first: nothing may be done to what one may not see.
        if self.has_view and not self.can_view(v, obj):
            return False
        return bool(check(v, obj))


class ParentRule(Rule):
    """A model whose rows are seen by exactly those who see their declared parent."""

    def check(self, v: Viewer, obj: Any) -> bool:
        return self.parent_ok(v, obj)

    def clause(self, v: Viewer):
        return self.parent_clause(v)


class RuleBook:
    """Model -> rule object, filled when the policy modules are imported (declarations,
    not run-time patches) and looked up along the class's MRO."""

    def __init__(self) -> None:  # pragma: no mutate block (runs at import: declarations)
        self._rules: dict[type, Rule] = {}
        self.site: dict[str, Callable[[Viewer], bool]] = {}

    def add(self, r: Rule) -> Rule:  # pragma: no mutate block (runs at import)
        if r.model in self._rules:
            raise PolicyError(f"two rules for {r.model.__name__}")
        self._rules[r.model] = r
        return r

    def site_action(self, name: str) -> Callable:  # pragma: no mutate block (runs at import)
        def deco(fn):
            self.site[name] = fn
            return fn
        return deco

    def rule(self, model: type) -> Rule:
        for cls in model.__mro__:
            r = self._rules.get(cls)
            if r is not None:
                return r
        raise PolicyError(f"no rule for {model.__name__}")

    def find(self, model: type) -> Rule | None:
        try:
            return self.rule(model)
        except PolicyError:
            return None

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._rules.values())


RULE_BOOK = RuleBook()
rule = RULE_BOOK.add
site_action = RULE_BOOK.site_action


class _RulesView(Mapping):
    """Read-only (model, action) -> check view of the rule book, for introspection."""

    def _pairs(self):
        for r in RULE_BOOK:
            if r.has_view:
                yield (r.model, "view"), (lambda v, o, _r=r: _r.can_view(v, o))
            for name, fn in r.actions.items():
                yield (r.model, name), fn

    def __getitem__(self, key):
        for k, fn in self._pairs():
            if k == key:
                return fn
        raise KeyError(key)

    def __iter__(self):
        return (k for k, _ in self._pairs())

    def __len__(self):
        return sum(1 for _ in self._pairs())


RULES = _RulesView()


# --------------------------------------------------------------------------- the public faces


def can(user: Any, action: str, obj: Any = None) -> bool:
    """May `user` do `action` to `obj` (a site-wide action when obj is None)?
    Raises PolicyError for anything unknown."""
    v = viewer_for(user)
    if obj is None:
        fn = RULE_BOOK.site.get(action)
        if fn is None:
            raise PolicyError(f"unknown site action {action!r}")
        return bool(fn(v))
    return RULE_BOOK.rule(type(obj)).can(v, action, obj)


def _viewer_key(v: Viewer) -> tuple:
    """Everything a Viewer holds, as a key: a memo made for one Viewer is never served to
    another that differs in any role (a hand-made Viewer, or the same user before and after
    a change of roles that forget_viewer was not told about)."""
    return (v.user_id, v.site_role, tuple(sorted(v.org_roles.items())), v.blocked)


def visible_clause(user: Any, model: type):
    """The SQL WHERE clause of the rows of `model` the user may see.

    Built once per request, viewer and model (pages ask for the same clause several times,
    and building it is most of a small page's time). The clause reads grants, lists and
    cases in SQL when it runs, so a memoised clause sees their changes; what it holds
    (roles, moderator scopes) is dropped with the viewer's other memos by forget_viewer()."""
    r = RULE_BOOK.rule(model)
    if not r.has_view:
        raise PolicyError(f"no visibility rule for {model.__name__}")
    v = viewer_for(user)
    if not has_request_context():
        return r.visible_clause(v)
    per_user = request_memo("_policy_clauses").setdefault(v.user_id, {})
    key = (_viewer_key(v), r)
    if key not in per_user:
        per_user[key] = r.visible_clause(v)
    return per_user[key]


def visible(user: Any, model: type):
    """SELECT of the rows of `model` the user may see; add filters and ordering to it."""
    clause = visible_clause(user, model)  # first: an unknown model raises PolicyError
    return select(model).where(clause)


def seen_by_exception(user: Any, model: type, ids) -> set:
    """The ids among `ids` (rows of `model` that failed the rule's own check) the viewer sees
    through a declared exception (a case they moderate...): one query for a page of rows."""
    return RULE_BOOK.rule(model).ids_granted_by_exceptions(viewer_for(user), ids)


def doc_principals(obj: Any, now: datetime | None = None) -> list[str]:
    """Who may find `obj` in search, as principal terms (twin of can(_, "view", obj))."""
    return list(RULE_BOOK.rule(type(obj)).doc_principals(obj, now or utcnow()))


def doc_principals_valid_until(obj: Any, now: datetime | None = None) -> datetime | None:
    """The next moment doc_principals(obj) changes by the clock alone, if any."""
    return RULE_BOOK.rule(type(obj)).valid_until(obj, now or utcnow())


def get_visible_or_404(model: type, obj_id: Any, user: Any = None):
    """Load a row and check the viewer may see it; 404 either way, so hidden things
    are indistinguishable from missing ones."""
    from flask import abort
    from flask_login import current_user

    try:
        obj_id = int(obj_id)
    except (TypeError, ValueError):
        abort(404)
    if not -2**63 <= obj_id < 2**63:  # no database stores such an id (SQLite would raise)
        abort(404)
    obj = db.session.get(model, obj_id)
    if obj is None or not can(current_user if user is None else user, "view", obj):
        abort(404)
    return obj


def get_child_or_404(model: type, obj_id: Any, user: Any = None, *, check_view: bool = True, **parent: Any):
    """A row reached under its parent in the address (a list's member, an organisation's
    membership): 404 when it is missing or belongs to another parent (``parent`` names the
    columns it must hold, e.g. ``list_id=lst.id``) and, with ``check_view``, as
    ``get_visible_or_404`` when the viewer may not see it. Without ``check_view`` the caller
    checks the action on the parent or the row itself."""
    from flask import abort

    if check_view:
        obj = get_visible_or_404(model, obj_id, user)
    else:
        obj = db.session.get(model, obj_id)
    if obj is None or any(getattr(obj, k) != v for k, v in parent.items()):
        abort(404)
    return obj


def get_visible_org_or_404(slug: str, user: Any = None) -> Organisation:
    """``get_visible_or_404`` for an organisation named by the slug in its address."""
    from flask import abort
    from flask_login import current_user

    org = db.session.execute(select(Organisation).where(Organisation.slug == slug[:140])).scalar()
    if org is None or not can(current_user if user is None else user, "view", org):
        abort(404)
    return org


def require(action: str, obj: Any = None, user: Any = None) -> None:
    """Abort 403 unless the action is allowed (for things the viewer may already see)."""
    from flask import abort
    from flask_login import current_user

    if not can(current_user if user is None else user, action, obj):
        abort(403)
