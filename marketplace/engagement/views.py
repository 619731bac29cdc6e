"""Views: load with the policy (404 hides existence), check the action (403 with the rule's
message), validate the form, call the service, redirect back to the item."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from .. import policy
from ..formtools import attach_service_error, zone_meta
from ..extensions import db, limiter
from ..models import Item, Organisation
from ..models.engagement import (
    OPEN_REQUEST_STATUSES,
    Answer,
    AssetRequest,
    AssetTerms,
    Comment,
    Question,
    RequestStatus,
)
from ..policy import get_visible_or_404
from ..ratelimit import account_or_address, limit_for
from ..services import engagement as svc
from ..services.common import ServiceError
from . import bp
from .forms import (
    RULES_FORM_BY_KIND,
    AnswerForm,
    AskForm,
    CommentForm,
    DecisionForm,
    EditForm,
    RequestForm,
    RespondForm,
    TermsForm,
    WithdrawForm,
)
from ..pagination import page_arg
from .threads import configure_request_form, panel_context, post_page



@bp.app_template_global("engagement_context")
def engagement_context(item: Item) -> dict:
    """The item page's engagement panel, at the thread page its query string asks for
    (``page``, ``waiting_page``) or at the page holding the post a permalink names (``post``)."""
    args = {"page": page_arg("page"), "waiting_page": page_arg("waiting_page")}
    post = request.args.get("post", "")
    if post:
        args.update(post_page(current_user, item, post[:40]))
    return panel_context(current_user, item, **args)


def _item(item_id: int, kind: str | None = None, refusal_of=None) -> Item:
    """The item (404 when unseen or of another kind); with ``refusal_of``, 403 with the
    policy's reason when ``refusal_of(viewer, item)`` gives one."""
    item = get_visible_or_404(Item, item_id)
    if kind is not None and item.kind != kind:
        abort(404)
    if refusal_of is not None:
        _unless_refused(refusal_of, item)
    return item


def _back(item: Item, anchor: str = ""):
    return redirect(svc.item_url(item, anchor))



def _refused(e: ServiceError):
    """Refusals that are not about a form field: 404 stays 404, the rest show their message."""
    db.session.rollback()
    if e.status == 404:
        abort(404)
    abort(e.status, e.message)


def _unless_refused(refusal_of, obj) -> None:
    """403 with the policy's reason when ``refusal_of(viewer, obj)`` gives one."""
    refusal = refusal_of(policy.viewer_for(current_user), obj)
    if refusal:
        abort(403, refusal)


def _submitted(form, call) -> tuple[bool, object]:
    """A posted form's service call, once the form validates: (True, what it returned); else
    (False, None), with a refusal about a field shown on the form (any other refusal ends
    the request, as in _refused)."""
    if not form.validate_on_submit():
        return False, None
    try:
        return True, call()
    except ServiceError as e:
        if e.field is None:
            _refused(e)
        attach_service_error(form, e)
        return False, None


# --------------------------------------------------------------------------- rules


@bp.route("/items/<int:item_id>/rules", methods=["GET", "POST"])
@login_required
def rules(item_id: int):
    item = _item(item_id)
    if not policy.can(current_user, "manage_engagement", item):
        abort(403, "Only the organisation's owners and admins set participation rules.")
    current = policy.engagement_rules(item)
    form = RULES_FORM_BY_KIND[item.kind](obj=current, meta=zone_meta(item.organisation))
    if form.validate_on_submit():
        try:
            svc.set_rules(current_user, item, form.data_for_service())
        except ServiceError as e:
            if e.status == 404:
                abort(404)
            attach_service_error(form, e)
        else:
            flash("Participation rules saved.", "success")
            return _back(item, "engagement")
    return render_template("engagement/rules.html", item=item, form=form, rules=current), \
        (400 if form.errors or form.form_errors else 200)


# --------------------------------------------------------------------------- Q&A


@bp.route("/challenges/<int:item_id>/ask", methods=["GET", "POST"])
@login_required
@limiter.limit(limit_for("posts_per_account"), key_func=account_or_address, methods=["POST"])
def ask(item_id: int):
    item = _item(item_id, "challenge", policy.ask_refusal)
    form = AskForm()
    done, q = _submitted(form, lambda: svc.ask_question(current_user, item, form.body.data, form.show_name.data))
    if done:
        flash("Question sent. Only you and the organisation see it until it is answered; the answer is "
              "then published to everyone who can see the challenge.", "success")
        return _back(item, f"question-{q.id}")
    return render_template("engagement/ask.html", item=item, form=form,
                           ctx=panel_context(current_user, item)), (400 if form.errors else 200)


@bp.route("/questions/<int:question_id>/answer", methods=["GET", "POST"])
@login_required
@limiter.limit(limit_for("posts_per_account"), key_func=account_or_address, methods=["POST"])
def answer(question_id: int):
    q = get_visible_or_404(Question, question_id)
    refusal = policy.question_answer_refusal(policy.viewer_for(current_user), q)
    if refusal:
        abort(409 if q.is_answered else 403, refusal)
    form = AnswerForm()
    if _submitted(form, lambda: svc.answer_question(current_user, q, form.body.data))[0]:
        flash("Answered: the question and its answer are now published.", "success")
        return _back(q.item, f"question-{q.id}")
    return render_template("engagement/answer.html", item=q.item, q=q, form=form), (400 if form.errors else 200)


# --------------------------------------------------------------------------- edits and deletions

EDITABLE = {"questions": Question, "answers": Answer, "comments": Comment}
DELETABLE = {"questions": Question, "comments": Comment}


def _anchor(obj) -> str:
    if isinstance(obj, Answer):
        return f"question-{obj.question_id}"
    return f"{'question' if isinstance(obj, Question) else 'comment'}-{obj.id}"


@bp.route("/<any(questions, answers, comments):what>/<int:obj_id>/edit", methods=["GET", "POST"])
@login_required
@limiter.limit(limit_for("posts_per_account"), key_func=account_or_address, methods=["POST"])
def edit(what: str, obj_id: int):
    obj = get_visible_or_404(EDITABLE[what], obj_id)
    _unless_refused(policy.post_edit_refusal, obj)
    form = EditForm(obj=obj)
    if _submitted(form, lambda: svc.edit_post(current_user, obj, form.body.data))[0]:
        flash("Saved; it is marked as edited.", "success")
        return _back(obj.item, _anchor(obj))
    return render_template("engagement/edit.html", item=obj.item, obj=obj, what=what, form=form), \
        (400 if form.errors else 200)


@bp.route("/<any(questions, comments):what>/<int:obj_id>/delete", methods=["POST"])
@login_required
def delete(what: str, obj_id: int):
    obj = get_visible_or_404(DELETABLE[what], obj_id)
    try:
        svc.delete_post(current_user, obj)
    except ServiceError as e:
        _refused(e)
    flash("Deleted.", "success")
    return _back(obj.item, "engagement")


# --------------------------------------------------------------------------- discussion


@bp.route("/failures/<int:item_id>/comment", methods=["GET", "POST"])
@login_required
@limiter.limit(limit_for("posts_per_account"), key_func=account_or_address, methods=["POST"])
def comment(item_id: int):
    item = _item(item_id, "failure")
    form = CommentForm()
    if request.method == "GET" and request.args.get("reply_to"):
        form.parent_id.data = request.args.get("reply_to", "")[:12]
    parent = None
    parent_id = form.parent_value()
    if parent_id is not None:
        parent = db.session.get(Comment, parent_id) if parent_id > 0 else None
        if parent is None or parent.item_id != item.id or not policy.can(current_user, "view", parent):
            abort(400, "The comment you are replying to does not exist in this discussion.")
    v = policy.viewer_for(current_user)
    refusal = policy.discussion_reply_refusal(v, parent) if parent else policy.discussion_refusal(v, item)
    if refusal:
        abort(403, refusal)
    done, c = _submitted(form, lambda: svc.add_comment(current_user, item, form.body.data, parent=parent))
    if done:
        flash("Posted.", "success")
        return _back(item, f"comment-{c.id}")
    return render_template("engagement/comment.html", item=item, form=form, parent=parent), \
        (400 if form.errors else 200)


@bp.route("/comments/<int:comment_id>/<any(pin, unpin):action>", methods=["POST"])
@login_required
def pin(comment_id: int, action: str):
    c = get_visible_or_404(Comment, comment_id)
    try:
        if action == "pin":
            svc.pin_comment(current_user, c)
        else:
            svc.unpin_comment(current_user, c)
    except ServiceError as e:
        _refused(e)
    flash("Pinned as the most useful lesson." if action == "pin" else "Unpinned.", "success")
    return _back(c.item, f"comment-{c.id}")


@bp.route("/failures/<int:item_id>/discussion/<any(close, reopen):action>", methods=["POST"])
@login_required
def discussion(item_id: int, action: str):
    item = _item(item_id, "failure")
    try:
        svc.set_discussion_closed(current_user, item, action == "close")
    except ServiceError as e:
        _refused(e)
    flash("Discussion closed." if action == "close" else "Discussion reopened.", "success")
    return _back(item, "engagement")


# --------------------------------------------------------------------------- asset terms


@bp.route("/assets/<int:item_id>/terms", methods=["GET", "POST"])
def terms(item_id: int):
    """Every version of the asset's licence terms; its owners publish a new version here."""
    item = _item(item_id, "asset")
    manage = policy.can(current_user, "manage_engagement", item)
    versions = svc.terms_versions(item)
    form = None
    status = 200
    if manage:
        form = TermsForm(obj=versions[0] if versions else None)
        if form.validate_on_submit():
            try:
                t = svc.publish_terms(current_user, item, {f: getattr(form, f).data for f in svc.TERMS_FIELDS})
            except ServiceError as e:
                if e.status == 404:
                    abort(404)
                attach_service_error(form, e)
                status = e.status
            else:
                flash(f"Terms version {t.version} published (digest {t.digest[:12]}…).", "success")
                return _back(item, "engagement")
        elif form.errors:
            status = 400
    elif request.method == "POST":
        abort(403, "Only the organisation's owners and admins declare licence terms.")
    return render_template("engagement/terms.html", item=item, versions=versions, form=form), status


@bp.route("/assets/<int:item_id>/terms/<int:version>")
def terms_version(item_id: int, version: int):
    item = _item(item_id, "asset")
    t = db.session.execute(
        select(AssetTerms).where(AssetTerms.item_id == item.id, AssetTerms.version == version)).scalar()
    if t is None:
        abort(404)
    if request.args.get("format") == "json":
        return t.canonical, 200, {"Content-Type": "application/json; charset=utf-8",
                                  "X-Terms-Digest": t.digest}
    return render_template("engagement/terms_version.html", item=item, t=t)


# --------------------------------------------------------------------------- requests


@bp.route("/assets/<int:item_id>/request", methods=["GET", "POST"])
@login_required
@limiter.limit(limit_for("posts_per_account"), key_func=account_or_address, methods=["POST"])
def send_request(item_id: int):
    item = _item(item_id, "asset", policy.asset_request_refusal)
    current = svc.current_terms(item)
    form = RequestForm()
    configure_request_form(form, current_user, item, current)
    status = 200
    if form.validate_on_submit():
        org = None
        if form.on_behalf_of.data:
            org = db.session.get(Organisation, int(form.on_behalf_of.data))
        try:
            r = svc.send_request(current_user, item, form.kind.data, form.message.data or "",
                                 terms_version=form.version_value(), terms_digest=form.terms_digest.data,
                                 on_behalf_of=org)
        except ServiceError as e:
            if e.status == 404:
                abort(404)
            attach_service_error(form, e)
            status = e.status
            if current is not None:  # show the current terms, ready to send against them
                form.terms_version.data, form.terms_digest.data = str(current.version), current.digest
        else:
            flash("Request sent. Only you and the organisation can see it.", "success")
            return redirect(url_for("engagement.request_detail", request_id=r.id))
    elif form.errors:
        status = 400
    return render_template("engagement/request_form.html", item=item, form=form, terms=current), status


def _my_side_query(side: str):
    v = policy.viewer_for(current_user)
    q = policy.visible(current_user, AssetRequest)
    if side == "mine":
        conds = [AssetRequest.author_id == v.user_id]
        if v.admin_org_ids:
            conds.append(AssetRequest.requester_org_id.in_(list(v.admin_org_ids)))
        from sqlalchemy import or_
        return q.where(or_(*conds))
    if not v.admin_org_ids:
        return q.where(AssetRequest.id == -1)
    return q.where(AssetRequest.item_id.in_(select(Item.id).where(Item.org_id.in_(list(v.admin_org_ids)))))


def _status_filter(q):
    state = request.args.get("state", "open")
    if state not in ("open", "closed", "all"):
        abort(400, "Unknown filter; use open, closed or all.")
    if state == "open":
        q = q.where(AssetRequest.status.in_(OPEN_REQUEST_STATUSES))
    elif state == "closed":
        q = q.where(AssetRequest.status.not_in(OPEN_REQUEST_STATUSES))
    return q, state


@bp.route("/requests/mine")
@login_required
def my_requests():
    q, state = _status_filter(_my_side_query("mine"))
    rows = db.session.execute(q.order_by(AssetRequest.updated_at.desc(), AssetRequest.id.desc()).limit(200)).scalars().all()
    return render_template("engagement/requests.html", rows=rows, state=state, side="mine")


@bp.route("/requests/incoming")
@login_required
def incoming():
    if not policy.viewer_for(current_user).admin_org_ids:
        abort(403, "Incoming requests are for the owners and admins of organisations.")
    q, state = _status_filter(_my_side_query("incoming"))
    rows = db.session.execute(q.order_by(AssetRequest.updated_at.desc(), AssetRequest.id.desc()).limit(200)).scalars().all()
    return render_template("engagement/requests.html", rows=rows, state=state, side="incoming")


@bp.route("/requests/<int:request_id>")
@login_required
def request_detail(request_id: int):
    r = get_visible_or_404(AssetRequest, request_id)
    v = policy.viewer_for(current_user)
    return render_template(
        "engagement/request_detail.html", r=r, item_visible=policy.can(current_user, "view", r.item),
        owner_side=policy.is_request_owner_side(v, r), requester_side=policy.is_request_sender_side(v, r),
        decision_form=DecisionForm(formdata=None) if policy.can(current_user, "decide", r) else None,
        respond_form=RespondForm(formdata=None) if policy.can(current_user, "respond", r) else None,
        withdraw_form=WithdrawForm(formdata=None) if policy.can(current_user, "withdraw", r) else None,
        statuses=RequestStatus)


@bp.route("/requests/<int:request_id>/<any(decide, respond, withdraw):action>", methods=["POST"])
@login_required
@limiter.limit(limit_for("posts_per_account"), key_func=account_or_address)
def request_action(request_id: int, action: str):
    r = get_visible_or_404(AssetRequest, request_id)
    form = {"decide": DecisionForm, "respond": RespondForm, "withdraw": WithdrawForm}[action]()
    if not form.validate_on_submit():
        first = next(iter(form.errors.values()))[0] if form.errors else "The form is incomplete."
        abort(400, first)
    try:
        if action == "decide":
            svc.decide_request(current_user, r, form.decision.data, form.message.data or "")
        elif action == "respond":
            svc.respond_to_request(current_user, r, form.message.data)
        else:
            svc.withdraw_request(current_user, r, form.message.data or "")
    except ServiceError as e:
        _refused(e)
    flash({"decide": "Decision sent.", "respond": "Message sent.", "withdraw": "Request withdrawn."}[action],
          "success")
    return redirect(url_for("engagement.request_detail", request_id=r.id))
