"""Judging rounds and exports with proof (issue 11, the challenge side): rounds with their
criteria, panels and dates; assignment of ideas to judges (by hand or balanced); conflicts
of interest; the judge's queue, comparison, bulk decisions, the private panel discussion,
normalised scores; the panel's progress; the challenge's CSV/JSON exports and evidence bundle.

Importing the package plugs it into the shared extension points: a panel on the challenge
page, and the decision log's formatters for round decisions.
"""
from flask import Blueprint

bp = Blueprint("judging", __name__)

from . import views  # noqa: E402,F401
from .. import policy  # noqa: E402
from ..items import views as _item_views  # noqa: E402
from ..moderation.decisions import _d, register_decision, subject_label  # noqa: E402


def _once(seq: list, entry) -> None:
    if entry not in seq:
        seq.append(entry)


def _shows_panel(item) -> bool:
    if item.kind != "challenge":
        return False
    from flask_login import current_user

    return any(policy.can(current_user, a, item) for a in ("judge_queue", "manage_rounds", "export_ideas"))


_once(_item_views.ITEM_PANELS, ("judging/_challenge_panel.html", _shows_panel))


# The decision log (moderation/decisions.py): round set-ups and ideas put through are
# decisions on the challenge. Assignments and conflict declarations are recorded in the
# audit chain but not shown there: they name judges.

def _round_created(ev, data, user):
    crit = ", ".join(f"{n} (×{w})" for n, w in data.get("criteria") or [])
    return _d(ev, "judging", f"Judging round “{data.get('name')}” set up",
              None, f"{data.get('advance_count')} idea(s) go through; criteria: {crit or 'none'}")


def _round_removed(ev, data, user):
    return _d(ev, "judging", f"Judging round “{data.get('name')}” removed")


def _advanced(ev, data, user):
    return _d(ev, "judging", f"Put through from “{data.get('from_round')}” to “{data.get('to_round')}”: "
                             f"{subject_label('idea', ev.subject_id, user)}", data.get("reason"))


register_decision("judging.round_created", _round_created)
register_decision("judging.round_removed", _round_removed)
register_decision("judging.advanced", _advanced)
