from __future__ import annotations

from flask import abort, make_response, render_template, request
from flask_login import current_user

from .. import policy
from ..items.queries import BadListArgs, ListArgs, item_list
from ..models import utcnow
from . import bp

TITLES = {None: "Everything", "challenge": "Challenges", "failure": "Failures", "asset": "Assets"}


@bp.route("/<any(items, challenges, failures, assets):name>.atom")
def feed(name: str):
    kind = None if name == "items" else name[:-1]
    try:
        a = ListArgs.from_request(request.args, kind=kind)
    except BadListArgs as e:
        abort(400, str(e))
    rows, _total, _org = item_list(current_user, a, 50)
    updated = max((i.updated_at or i.created_at for i in rows), default=utcnow())
    # Whose full brief goes in, asked for the whole page at once (per entry it is an N+1).
    briefs = policy.viewable_briefs(current_user, rows)
    body = render_template("feeds/feed.xml", items=rows, briefs=briefs, title=TITLES[kind], updated=updated, name=name)
    resp = make_response(body)
    resp.headers["Content-Type"] = "application/atom+xml; charset=utf-8"
    # A signed-in reader's feed may include non-public items: never share it via caches.
    resp.headers["Cache-Control"] = "private, no-store" if current_user.is_authenticated else "public, max-age=300"
    resp.headers["Vary"] = "Cookie"
    return resp
