"""Ideas under declared terms: terms sheets, participation rules, submission, receipts,
attachments, review and award (issue 3, ideas half).

Importing the package plugs it into the shared extension points: the challenge page panel,
the open check (no terms, no opening), header/footer links, the `flask terms` commands and
the demo data.
"""
from flask import Blueprint

bp = Blueprint("ideas", __name__)

from . import views  # noqa: E402,F401
from .cli import terms_cli  # noqa: E402
from .demo import demo_hook  # noqa: E402
from .. import cli as _cli, demo_hooks as _demo_hooks, templating as _templating  # noqa: E402
from ..items import views as _item_views  # noqa: E402
from ..services import items as _items_svc  # noqa: E402
from ..services.terms import open_check  # noqa: E402


def _once(seq: list, entry) -> None:
    if entry not in seq:
        seq.append(entry)


def _reviews_something(user) -> bool:
    from .views import has_reviewer_appointment

    return bool(getattr(user, "is_authenticated", False)) and has_reviewer_appointment(user)


_once(_item_views.ITEM_PANELS, ("ideas/_challenge_panel.html", lambda item: item.kind == "challenge"))
_once(_items_svc.OPEN_CHECKS, open_check)
_once(_templating.NAV_LINKS, ("My ideas", "ideas.mine", lambda u: u.is_authenticated))
_once(_templating.NAV_LINKS, ("Reviewing", "ideas.reviewing", _reviews_something))
_once(_templating.FOOTER_LINKS, ("Verify a terms receipt", "ideas.verify"))
_once(_cli.EXTRA_COMMANDS, terms_cli)
_once(_demo_hooks.HOOKS, demo_hook)


def _coauthor_address(args: dict) -> str | None:
    from ..services.ideas import coauthor_link_address
    return coauthor_link_address(args.get("token", ""))


from ..auth.views import ADDRESS_PROOFS as _PROOFS  # noqa: E402
_PROOFS["ideas.coauthor_link"] = _coauthor_address
