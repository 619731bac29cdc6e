"""Views: the item's invitations (managers), the token link (invitees), "My invitations"."""
from __future__ import annotations

from flask import abort, flash, make_response, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from .. import policy
from ..extensions import db, limiter
from ..formtools import attach_service_error
from ..models import (
    AccessGrant,
    Invitation,
    InvitationList,
    InvitationState,
    Item,
    ItemList,
    utcnow,
)
from ..policy import get_visible_or_404, require
from ..ratelimit import account_or_address, limit_for
from ..services import invitations as svc
from ..services import lists as lists_svc
from ..services.common import ServiceError
from . import bp
from .forms import ConfirmForm, InviteForm
from ..formtools import zone_meta


def _ideas_svc():
    from ..services import ideas as ideas_svc  # imported late, as everywhere in this module

    return ideas_svc


class _MailedLink:
    """A mailed single-use link (item, list or reviewer invitation): its page and its accept and
    decline answers. `find(token)`, `refuse(inv, user)`, `accept(user, token)` and
    `decline(user, token)` are the service's; `context(viewer, inv, live)` gives the page's own
    variables (`live`: an invitation that this person may still answer)."""

    def __init__(self, endpoint: str, template: str, find, refuse, accept, decline, context):
        self.endpoint, self.template, self.context = endpoint, template, context
        self.find, self.refuse, self.accept, self.decline = find, refuse, accept, decline

    def page(self, token: str, inv, problem: str | None = None, status: int = 200):
        """The page behind the link. Never cached, never sent on as a referrer."""
        v = policy.viewer_for(current_user)
        resp = make_response(render_template(
            self.template, token=token, inv=inv, problem=problem, form=ConfirmForm(),
            here=url_for(self.endpoint, token=token), **self.context(v, inv, inv is not None and problem is None)),
            status)
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["Referrer-Policy"] = "no-referrer"
        return resp

    def open(self, token: str):
        inv = self.find(token)
        problem = self.refuse(inv, current_user)
        return self.page(token, inv, *problem) if problem else self.page(token, inv)

    def answer(self, token: str, accepting: bool):
        """Accept or decline from the link's page: the service's result, or the page again with
        why it failed (or, to accept signed out, the way to sign in) as a response."""
        if not ConfirmForm().validate_on_submit():
            abort(400, "Your form expired. Open the invitation link again.")
        if accepting and not current_user.is_authenticated:
            flash("Sign in (or register) with the invited e-mail address to accept the invitation.", "info")
            return None, redirect(url_for("auth.login", next=url_for(self.endpoint, token=token)))
        try:
            return (self.accept if accepting else self.decline)(current_user, token), None
        except ServiceError as e:
            return None, self.page(token, self.find(token), e.message, e.status)

    def route(self, path: str, names: tuple[str, str, str], accepted) -> None:
        """Route the link at `path` (its page, GET) and `path`/accept, `path`/decline (POST),
        as the endpoints `names`; `accepted(result)` answers a successful accept."""
        def page(token: str):
            return self.open(token)

        def accept(token: str):
            result, failed = self.answer(token, accepting=True)
            return failed if failed is not None else accepted(result)

        def decline(token: str):
            return self.declined(token)

        answers = limiter.limit(limit_for("invitation_links"), key_func=account_or_address)
        for view, name, rule, limit, methods in ((page, names[0], path, limiter.limit("120/minute"), ["GET"]),
                                                 (accept, names[1], path + "/accept", answers, ["POST"]),
                                                 (decline, names[2], path + "/decline", answers, ["POST"])):
            # The name the rate limiter keys its limits by stays the endpoint's own.
            view.__name__ = view.__qualname__ = name
            bp.add_url_rule(rule, name, limit(view), methods=methods)

    def declined(self, token: str):
        _, failed = self.answer(token, accepting=False)
        if failed is not None:
            return failed
        flash("Invitation declined. The link no longer works.", "info")
        return redirect(url_for("invitations.mine") if current_user.is_authenticated else url_for("main.index"))


ITEM_LINK = _MailedLink(
    "invitations.open_link", "invitations/open.html",
    find=svc.find_by_token, refuse=svc.refusal, accept=svc.accept, decline=svc.decline,
    context=lambda v, inv, live: {"invitee": live and policy.is_invitee(v, inv),
                                  "preview": live and policy.can(v, "preview_item", inv)})


def _item_accepted(inv):
    item = inv.item
    if policy.can(current_user, "view", item):
        flash(f"Invitation accepted: you can now see “{item.title}”.", "success")
        return redirect(url_for("items.detail", kind=item.kind, item_id=item.id))
    # A draft, or an item that is no longer `invited`: the grant waits until it applies.
    flash("Invitation accepted. You will see the item when it opens to you.", "success")
    return redirect(url_for("invitations.mine"))


ITEM_LINK.route("/t/<token>", ("open_link", "accept", "decline"), _item_accepted)


@bp.route("/item/<int:item_id>", methods=["GET", "POST"])
@login_required
@limiter.limit(limit_for("invitations_per_account"), key_func=account_or_address, methods=["POST"])
def for_item(item_id: int):
    """The item's invitations: list, send (the link is shown here once), revoke."""
    item = get_visible_or_404(Item, item_id)
    require("manage_invitations", item)
    form = InviteForm(meta=zone_meta(item.organisation))
    created = link = None
    if form.validate_on_submit():
        try:
            created, token = svc.create_invitation(current_user, item, form.email.data, days=form.days.data,
                                                   access_until=form.access_until.data)
        except ServiceError as e:
            attach_service_error(form, e)
        else:
            link = svc.accept_url(token)
            form = InviteForm(formdata=None, meta=zone_meta(item.organisation))
    rows = svc.invitations_for_item(item)
    now = utcnow()
    resp = make_response(render_template(
        "invitations/item.html", item=item, kind=item.kind, form=form, rows=rows, created=created, link=link,
        states={i.id: policy.invitation_state(i, now) for i in rows}, confirm=ConfirmForm()),
        400 if form.errors else (201 if created else 200))
    if link:
        resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.route("/<int:inv_id>/revoke", methods=["POST"])
@login_required
def revoke(inv_id: int):
    inv = get_visible_or_404(Invitation, inv_id)
    require("manage_invitations", inv.item)
    if not ConfirmForm().validate_on_submit():
        abort(400, "Your form expired. Reload the page and try again.")
    was = policy.invitation_state(inv)
    try:
        svc.revoke(current_user, inv)
    except ServiceError as e:
        abort(e.status, e.message)
    flash("Invitation revoked and the access it gave ended." if was == InvitationState.ACCEPTED.value
          else "Invitation revoked; the link no longer works.", "success")
    return redirect(url_for("invitations.for_item", item_id=inv.item_id))


@bp.route("/")
@login_required
def mine():
    """What the user was invited to: pending links, and what they see through grants and lists."""
    v = policy.viewer_for(current_user)
    now = utcnow()
    invs = svc.invitations_for_user(current_user)
    pending = [i for i in invs if policy.invitation_state(i, now) == InvitationState.PENDING.value]
    past = [i for i in invs if i not in pending][:50]
    past_visible = {i.id for i in past if policy.can(current_user, "view", i.item)}

    newest = (Item.created_at.desc(), Item.id.desc())
    via_grants = db.session.execute(
        policy.visible(current_user, Item).where(policy.items_via_grants_clause(v, now)).order_by(*newest).limit(200)
    ).scalars().all()
    grants = {}
    if via_grants:
        for gr in db.session.execute(
            policy.active_grants_for_viewer(v, now).where(AccessGrant.item_id.in_([i.id for i in via_grants]))
        ).scalars():
            grants.setdefault(gr.item_id, []).append(gr)

    via_lists = db.session.execute(
        policy.visible(current_user, Item).where(policy.items_via_lists_clause(v, now)).order_by(*newest).limit(200)
    ).scalars().all()
    memberships = db.session.execute(policy.active_list_memberships(v, now)).scalars().all()
    my_list_ids = {m.list_id for m in memberships}
    lists_by_item: dict[int, list[InvitationList]] = {}
    if via_lists and my_list_ids:
        for a in db.session.execute(
            select(ItemList).where(ItemList.item_id.in_([i.id for i in via_lists]),
                                   ItemList.list_id.in_(my_list_ids))
        ).scalars():
            lists_by_item.setdefault(a.item_id, []).append(a.list)
    list_invs = [i for i in lists_svc.list_invitations_for_user(current_user)
                 if policy.invitation_state(i, now) == InvitationState.PENDING.value]
    from ..services import ideas as ideas_svc

    reviewer_invs = [(i, ideas_svc.reviewer_invitation_names_challenge(current_user, i))
                     for i in ideas_svc.reviewer_invitations_for_user(current_user)
                     if policy.invitation_state(i, now) == InvitationState.PENDING.value]
    return render_template("invitations/mine.html", list_invitations=list_invs, reviewer_invitations=reviewer_invs,
                           pending=pending, past=past, past_visible=past_visible,
                           via_grants=via_grants, grants=grants, via_lists=via_lists,
                           lists_by_item=lists_by_item, memberships=memberships, at=now,
                           states={i.id: policy.invitation_state(i, now) for i in invs})


# --------------------------------------------------------------------------- invitation lists by e-mail


LIST_LINK = _MailedLink(
    "invitations.list_link", "invitations/list_link.html",
    find=lists_svc.find_list_invitation, refuse=lists_svc.list_link_refusal,
    accept=lists_svc.accept_list_invitation, decline=lists_svc.decline_list_invitation,
    context=lambda v, inv, live: {"invitee": live and policy.is_list_invitee(v, inv)})


def _reviewer_context(v, inv, live):
    invitee = live and policy.is_reviewer_invitee(v, inv)
    named = invitee and _ideas_svc().reviewer_invitation_names_challenge(current_user, inv)
    return {"invitee": invitee, "named": named}


REVIEWER_LINK = _MailedLink(
    "invitations.reviewer_link", "invitations/reviewer_link.html",
    find=lambda token: _ideas_svc().find_reviewer_invitation(token),
    refuse=lambda inv, user: _ideas_svc().reviewer_link_refusal(inv, user),
    accept=lambda user, token: _ideas_svc().accept_reviewer_invitation(user, token),
    decline=lambda user, token: _ideas_svc().decline_reviewer_invitation(user, token),
    context=_reviewer_context)



def _list_accepted(inv):
    flash(f"You are on the list “{inv.list.name}”: what it opens is listed below.", "success")
    return redirect(url_for("invitations.mine"))


LIST_LINK.route("/l/<token>", ("list_link", "list_accept", "list_decline"), _list_accepted)

# --------------------------------------------------------------------------- outside judges by e-mail



def _reviewer_accepted(appt):
    flash("You are a reviewer of this challenge. Read and accept the reviewer NDA to start.", "success")
    return redirect(url_for("ideas.reviewer_nda", challenge_id=appt.challenge_id))


REVIEWER_LINK.route("/r/<token>", ("reviewer_link", "reviewer_accept", "reviewer_decline"), _reviewer_accepted)
