"""Judging pages: rounds set-up and assignment (admins), the judge's queue, comparison,
bulk decisions, results with normalised scores, the panel's progress, an idea's judging
page (scores, panel discussion, conflict of interest), and the challenge's exports.

Views load with the policy (404 hides existence), check the action (403), validate the form
and call a service, which asks the policy again. Round ids travel as form or query fields
(``round``), so every route is keyed by the challenge or the idea alone.
"""
from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, request, send_file, url_for
from flask_login import current_user, login_required

from .. import policy
from ..extensions import db
from ..formtools import attach_service_error, unconfirmed, zone_meta
from ..ideas.forms import ActionForm
from ..models import Challenge, Idea, ItemKind
from ..policy import get_visible_or_404, require
from ..policy.judging import current_round, rounds_of
from ..services import ideas as ideas_svc
from ..services import judging as svc
from ..services.common import ServiceError
from ..exports import challenge as exports
from . import bp
from .forms import AssignForm, AutoAssignForm, BulkForm, CommentForm, ConflictForm, RoundForm

EXPIRED = "Your form expired; reload the page and try again."


def _challenge(challenge_id: int):
    item = get_visible_or_404(Challenge, challenge_id)
    if item.kind != ItemKind.CHALLENGE.value:
        abort(404)
    return item


def _round_arg(challenge, raw):
    try:
        return svc.round_of_challenge(challenge, raw)
    except ServiceError:
        abort(404)


def _int_list(values) -> list[int]:
    out = []
    for v in values:
        try:
            n = int(v)
        except (TypeError, ValueError):
            abort(400, "Choose ideas by their numbers.")
        if not 0 < n < 2**63:
            abort(400, "Choose ideas by their numbers.")
        out.append(n)
    return out


# --------------------------------------------------------------------------- rounds (admins)


def _rounds_page(challenge, form=None, assign_form=None, auto_form=None, status=200):
    rounds = rounds_of(challenge.id)
    panel_choices = [(a.user_id, a.user.display_name) for a in svc.eligible_panel(challenge)]
    form = form or RoundForm(prefix="r", meta=zone_meta(challenge.organisation))
    form.panel.choices = panel_choices
    round_choices = [(r.id, f"{r.position}. {r.name}") for r in rounds]
    assign_form = assign_form or AssignForm(prefix="a")
    assign_form.round_id.choices = round_choices
    assign_form.judge_id.choices = panel_choices
    auto_form = auto_form or AutoAssignForm(prefix="x")
    auto_form.round_id.choices = round_choices
    # The titles of the ideas the viewer may see, once (assignments name the rest by number).
    titles = dict(db.session.execute(policy.visible(current_user, Idea).with_only_columns(Idea.id, Idea.title)
                                     .where(Idea.challenge_id == challenge.id)).all())
    info = []
    for r in rounds:
        ideas = svc.ideas_in_round(r, current_user)
        info.append({"round": r, "ideas": ideas, "assignments": svc.assignments_of(r),
                     "advanced": svc.advanced_from(r)})
    return render_template("judging/rounds.html", item=challenge, rounds=info, form=form, assign_form=assign_form,
                           auto_form=auto_form, conflicts=svc.conflicts_of(challenge), action_form=ActionForm(), titles=titles,
                           has_reviewers=bool(panel_choices)), status


@bp.route("/challenges/<int:challenge_id>/rounds", methods=["GET", "POST"])
@login_required
def rounds(challenge_id: int):
    challenge = _challenge(challenge_id)
    require("manage_rounds", challenge)
    form = RoundForm(prefix="r", meta=zone_meta(challenge.organisation))
    form.panel.choices = [(a.user_id, a.user.display_name) for a in svc.eligible_panel(challenge)]
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                rnd = svc.create_round(current_user, challenge, {
                    "name": form.name.data, "starts_at": form.starts_at.data, "ends_at": form.ends_at.data,
                    "advance_count": form.advance_count.data, "criteria": form.criteria.data,
                    "panel": form.panel.data or []})
            except ServiceError as e:
                db.session.rollback()
                attach_service_error(form, e)
                return _rounds_page(challenge, form=form, status=e.status)
            flash(f"Round “{rnd.name}” added.", "success")
            return redirect(url_for("judging.rounds", challenge_id=challenge.id))
        return _rounds_page(challenge, form=form, status=400)
    return _rounds_page(challenge, form=form)


@bp.route("/challenges/<int:challenge_id>/rounds/remove", methods=["POST"])
@login_required
def remove_round(challenge_id: int):
    challenge = _challenge(challenge_id)
    require("manage_rounds", challenge)
    if not ActionForm().validate_on_submit():
        abort(400, EXPIRED)
    rnd = _round_arg(challenge, request.form.get("round"))
    svc.remove_round(current_user, rnd)
    flash("Round removed.", "success")
    return redirect(url_for("judging.rounds", challenge_id=challenge.id))


@bp.route("/challenges/<int:challenge_id>/rounds/assign", methods=["POST"])
@login_required
def assign(challenge_id: int):
    challenge = _challenge(challenge_id)
    require("manage_rounds", challenge)
    form = AssignForm(prefix="a")
    if not form.validate_on_submit():
        return _rounds_page(challenge, assign_form=form, status=400)
    rnd = _round_arg(challenge, form.round_id.data)
    idea = db.session.get(Idea, form.idea_id.data) if 0 < (form.idea_id.data or 0) < 2**63 else None
    try:
        svc.assign(current_user, rnd, idea, form.judge_id.data)
    except ServiceError as e:
        db.session.rollback()
        attach_service_error(form, e)
        return _rounds_page(challenge, assign_form=form, status=e.status)
    flash("Judge assigned.", "success")
    return redirect(url_for("judging.rounds", challenge_id=challenge.id))


@bp.route("/challenges/<int:challenge_id>/rounds/auto-assign", methods=["POST"])
@login_required
def auto_assign(challenge_id: int):
    challenge = _challenge(challenge_id)
    require("manage_rounds", challenge)
    form = AutoAssignForm(prefix="x")
    if not form.validate_on_submit():
        return _rounds_page(challenge, auto_form=form, status=400)
    rnd = _round_arg(challenge, form.round_id.data)
    try:
        n = svc.auto_assign(current_user, rnd, form.per_idea.data)
    except ServiceError as e:
        db.session.rollback()
        attach_service_error(form, e)
        return _rounds_page(challenge, auto_form=form, status=e.status)
    flash(f"{n} assignment(s) made; every idea in “{rnd.name}” has {form.per_idea.data} judge(s).", "success")
    return redirect(url_for("judging.rounds", challenge_id=challenge.id))


@bp.route("/challenges/<int:challenge_id>/rounds/unassign", methods=["POST"])
@login_required
def unassign(challenge_id: int):
    challenge = _challenge(challenge_id)
    require("manage_rounds", challenge)
    if not ActionForm().validate_on_submit():
        abort(400, EXPIRED)
    rnd = _round_arg(challenge, request.form.get("round"))
    (idea_id,) = _int_list([request.form.get("idea")])
    idea = db.session.get(Idea, idea_id)
    svc.unassign(current_user, rnd, idea, request.form.get("judge"))
    flash("Assignment removed.", "success")
    return redirect(url_for("judging.rounds", challenge_id=challenge.id))


# --------------------------------------------------------------------------- the panel's pages


@bp.route("/challenges/<int:challenge_id>/judging")
@login_required
def queue(challenge_id: int):
    challenge = _challenge(challenge_id)
    require("judge_queue", challenge)
    rounds = rounds_of(challenge.id)
    per_round = [{"round": r, "ideas": svc.ideas_in_round(r, current_user),
                  "results": policy.can(current_user, "view_results", r)} for r in rounds]
    if not rounds:  # the flat review: one implicit step, whose "put through" shortlists
        per_round = [{"round": None, "ideas": svc.ideas_under_review(challenge, current_user), "results": False}]
    form = BulkForm()
    return render_template("judging/queue.html", item=challenge, queue=svc.judge_queue(current_user, challenge),
                           per_round=per_round, form=form, now=svc.utcnow())


@bp.route("/challenges/<int:challenge_id>/judging/compare")
@login_required
def compare(challenge_id: int):
    challenge = _challenge(challenge_id)
    require("judge_queue", challenge)
    ids = _int_list(request.args.getlist("ideas"))[:6]
    # Only what the viewer may open: the idea rule, sealed ideas included, decides.
    ideas = db.session.execute(policy.visible(current_user, Idea).where(
        Idea.id.in_(ids or [0]), Idea.challenge_id == challenge.id).order_by(Idea.id)).scalars().all()
    ideas = [i for i in ideas if policy.can(current_user, "view_review", i)]
    if len(ideas) < 2:
        abort(400, "Choose two or more ideas of this challenge that you may open to compare them.")
    cols = []
    for idea in ideas:
        ideas_svc.log_sealed_view(current_user, idea, "comparison")
        rnd = current_round(idea)
        result = None
        if rnd is not None and policy.can(current_user, "view_results", rnd):
            result = svc.round_results(rnd, [idea])[0]
        cols.append({"idea": idea, "round": rnd, "result": result,
                     "mine": svc.my_round_scores(current_user, rnd, idea) if rnd is not None else {}})
    return render_template("judging/compare.html", item=challenge, cols=cols)


@bp.route("/challenges/<int:challenge_id>/judging/decide", methods=["POST"])
@login_required
def decide(challenge_id: int):
    challenge = _challenge(challenge_id)
    require("judge_queue", challenge)
    form = BulkForm()
    if not form.validate_on_submit():
        abort(400, "; ".join(e for errs in form.errors.values() for e in errs
                             if isinstance(e, str) and "CSRF" not in e) or EXPIRED)
    ids = _int_list(request.form.getlist("ideas"))
    if form.decision.data == "decline":
        page = unconfirmed(f"Decline {len(ids)} idea(s)? Each author is told, with your reason; this cannot be undone.",
                           "Decline the ideas", url_for("judging.queue", challenge_id=challenge.id), danger=True)
        if page is not None:
            return page
        n = svc.decline_ideas(current_user, challenge, ids, form.reason.data)
        flash(f"{n} idea(s) declined; the authors were told why.", "success")
    else:
        n = svc.advance_ideas(current_user, challenge, ids, form.reason.data or "")
        flash(f"{n} idea(s) put through.", "success")
    return redirect(url_for("judging.queue", challenge_id=challenge.id))


@bp.route("/challenges/<int:challenge_id>/judging/results")
@login_required
def results(challenge_id: int):
    challenge = _challenge(challenge_id)
    rounds = rounds_of(challenge.id)
    if not rounds:
        abort(404)
    rnd = _round_arg(challenge, request.args.get("round")) if request.args.get("round") else rounds[0]
    if not policy.can(current_user, "view", rnd) or not policy.can(current_user, "view_results", rnd):
        abort(403, "A round's results are for its panel and the challenge's admins.")
    ideas = db.session.execute(policy.visible(current_user, Idea).where(Idea.challenge_id == challenge.id)
                               .order_by(Idea.id)).scalars().all()
    ideas = [i for i in ideas if policy.can(current_user, "view_review", i)]
    res = [r for r in svc.round_results(rnd, ideas) if r.per_judge]
    judges = sorted({j for r in res for j in r.per_judge})
    names = exports._judge_names(current_user, challenge, set(judges))
    return render_template("judging/results.html", item=challenge, rnd=rnd, rounds=rounds, results=res,
                           judges=judges, names=names, method=svc.NORMALISATION_METHOD)


@bp.route("/challenges/<int:challenge_id>/judging/progress")
@login_required
def progress(challenge_id: int):
    challenge = _challenge(challenge_id)
    require("view_panel_progress", challenge)
    return render_template("judging/progress.html", item=challenge, progress=svc.panel_progress(challenge),
                           now=svc.utcnow())


# --------------------------------------------------------------------------- one idea


def _idea(idea_id: int) -> Idea:
    return get_visible_or_404(Idea, idea_id)


def _idea_page(idea: Idea, comment_form=None, conflict_form=None, status: int = 200):
    rnd = current_round(idea)
    ctx = {"idea": idea, "item": idea.challenge, "rnd": rnd,
           "can_judge": policy.can(current_user, "judge", idea),
           "can_discuss": policy.can(current_user, "discuss", idea),
           "can_conflict": policy.can(current_user, "declare_conflict", idea)}
    if not (ctx["can_judge"] or ctx["can_discuss"] or ctx["can_conflict"]):
        abort(403, "This page is for the judges of the idea's round and the challenge's admins.")
    if ctx["can_judge"]:
        ctx["mine"] = svc.my_round_scores(current_user, rnd, idea)
    if ctx["can_discuss"]:
        ctx["comments"] = svc.discussion(current_user, idea)
        ctx["comment_form"] = comment_form or CommentForm()
    if ctx["can_conflict"]:
        ctx["conflict_form"] = conflict_form or ConflictForm()
    ctx["action_form"] = ActionForm()
    ideas_svc.log_sealed_view(current_user, idea, "idea")
    return render_template("judging/idea.html", **ctx), status


@bp.route("/ideas/<int:idea_id>/judging")
@login_required
def idea_page(idea_id: int):
    return _idea_page(_idea(idea_id))


@bp.route("/ideas/<int:idea_id>/judging/score", methods=["POST"])
@login_required
def score(idea_id: int):
    idea = _idea(idea_id)
    require("judge", idea)
    if not ActionForm().validate_on_submit():
        abort(400, EXPIRED)
    scores = {k.split("-", 1)[1]: v for k, v in request.form.items() if k.startswith("score-")}
    rnd = svc.score_in_round(current_user, idea, scores)
    flash(f"Scores saved for round “{rnd.name}”.", "success")
    return redirect(url_for("judging.idea_page", idea_id=idea.id))


@bp.route("/ideas/<int:idea_id>/judging/discuss", methods=["POST"])
@login_required
def discuss(idea_id: int):
    idea = _idea(idea_id)
    require("discuss", idea)
    form = CommentForm()
    if not form.validate_on_submit():
        return _idea_page(idea, comment_form=form, status=400)
    svc.add_comment(current_user, idea, form.body.data)
    flash("Posted to the panel.", "success")
    return redirect(url_for("judging.idea_page", idea_id=idea.id))


@bp.route("/ideas/<int:idea_id>/judging/conflict", methods=["POST"])
@login_required
def conflict(idea_id: int):
    idea = _idea(idea_id)
    require("declare_conflict", idea)
    form = ConflictForm()
    if not form.validate_on_submit():
        return _idea_page(idea, conflict_form=form, status=400)
    svc.declare_conflict(current_user, idea, form.scope.data, form.reason.data or "")
    flash("Conflict of interest declared; you were unassigned from the ideas it covers.", "success")
    return redirect(url_for("judging.queue", challenge_id=idea.challenge_id))


# --------------------------------------------------------------------------- exports


def _exportable(challenge_id: int):
    challenge = _challenge(challenge_id)  # a challenge one may not see: 404
    require("export_ideas", challenge)
    return challenge


_NO_STORE = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}


@bp.route("/challenges/<int:challenge_id>/export.csv")
@login_required
def export_csv(challenge_id: int):
    challenge = _exportable(challenge_id)
    body = exports.export_csv(exports.export_data(current_user, challenge))
    return Response(body, mimetype="text/csv", headers={
        **_NO_STORE, "Content-Disposition": f'attachment; filename="challenge-{challenge.id}-ideas.csv"'})


@bp.route("/challenges/<int:challenge_id>/export.json")
@login_required
def export_json(challenge_id: int):
    challenge = _exportable(challenge_id)
    body = exports.export_json(exports.export_data(current_user, challenge))
    return Response(body, mimetype="application/json", headers={
        **_NO_STORE, "Content-Disposition": f'attachment; filename="challenge-{challenge.id}-ideas.json"'})


@bp.route("/challenges/<int:challenge_id>/evidence.zip")
@login_required
def evidence(challenge_id: int):
    challenge = _exportable(challenge_id)
    tmp = exports.build_bundle(current_user, challenge)
    resp = send_file(tmp, mimetype="application/zip", as_attachment=True,
                     download_name=f"challenge-{challenge.id}-evidence.zip", max_age=0, conditional=False, etag=False)
    resp.headers.update(_NO_STORE)
    return resp

