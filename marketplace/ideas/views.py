"""Views: load with the policy (404 hides existence), check the action (403), validate the
form, call a service, redirect. Services check the policy again."""
from __future__ import annotations

import json
import secrets

from flask import (
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy import func, select

from .. import policy
from ..formtools import attach_service_error
from ..ratelimit import account_or_address, limit_for
from ..extensions import db, limiter
from ..models import (
    Challenge,
    ChallengeTerms,
    Idea,
    IdeaAttachment,
    IdeaAuthor,
    IdeaRevision,
    IdeaStatus,
    Item,
    ItemKind,
    ReviewCriterion,
    ReviewerAppointment,
    TermsAcceptance,
)
from ..policy import get_visible_or_404, require
from ..services import attachments as files_svc
from ..models.moderation import ActionKind
from ..services import ideas as svc
from ..services import moderation as moderation_svc
from ..services import terms as terms_svc
from ..services.common import ServiceError
from . import bp
from .forms import (
    ActionForm,
    AwardForm,
    CoauthorForm,
    CriterionForm,
    IdeaForm,
    NDAForm,
    NoteForm,
    ReasonForm,
    DisqualifyForm,
    ReviewerForm,
    ReviewerNDAForm,
    ReviseForm,
    RulesForm,
    TermsForm,
    VerifyForm,
)

# --------------------------------------------------------------------------- helpers


def _challenge(challenge_id: int) -> Item:
    item = get_visible_or_404(Challenge, challenge_id)
    if item.kind != ItemKind.CHALLENGE.value:
        abort(404)
    return item


def _idea(idea_id: int) -> Idea:
    return get_visible_or_404(Idea, idea_id)


def _attach_error(form, e: ServiceError) -> None:
    db.session.rollback()
    attach_service_error(form, e)


def _fail(e: ServiceError):
    db.session.rollback()
    abort(e.status, e.message)


def _status_for(form, error: ServiceError | None = None) -> int:
    if error is not None:
        return error.status
    return 400 if form.errors else 200


def _terms_context(challenge: Item) -> dict:
    terms = policy.current_terms(challenge.id)
    return {"terms": terms, "rules": policy.challenge_rules(challenge.id),
            "incentives": [terms_svc.describe_incentive(i) for i in terms.incentives] if terms else []}


def has_reviewer_appointment(user) -> bool:
    return db.session.execute(select(ReviewerAppointment.id).where(
        ReviewerAppointment.user_id == user.id, ReviewerAppointment.revoked_at.is_(None)).limit(1)).first() is not None


@bp.app_template_global("ideas_panel")
def ideas_panel(item: Item) -> dict:
    """Data for the panel on a challenge page (terms sheet, rules, who may submit)."""
    ctx = _terms_context(item)
    v = policy.viewer_for(current_user)
    ctx["refusal"] = policy.participation_refusal(current_user, item)
    ctx["idea_count"] = db.session.execute(
        select(func.count()).select_from(policy.visible(current_user, Idea)
                                          .where(Idea.challenge_id == item.id).subquery())).scalar_one()
    ctx["my_ideas"] = []
    if v.is_authenticated:
        ctx["my_ideas"] = db.session.execute(
            select(Idea).join(IdeaAuthor, IdeaAuthor.idea_id == Idea.id).where(
                Idea.challenge_id == item.id, IdeaAuthor.user_id == v.user_id,
                IdeaAuthor.status.in_(policy.IDEA_VISIBLE_AUTHOR_STATES)).order_by(Idea.id)).scalars().all()
    ctx["count_of_mine"] = policy.counted_ideas(v.user_id, item.id) if v.is_authenticated else 0
    ctx["describe_incentive"] = terms_svc.describe_incentive
    return ctx


@bp.app_template_filter("incentive")
def incentive_filter(inc: dict) -> str:
    return terms_svc.describe_incentive(inc)


# --------------------------------------------------------------------------- terms sheet


@bp.route("/challenges/<int:challenge_id>/terms")
def terms_sheet(challenge_id: int):
    challenge = _challenge(challenge_id)
    versions = terms_svc.terms_versions(challenge.id)
    return render_template("ideas/terms.html", item=challenge, versions=versions, shown=versions[0] if versions
                           else None, **_terms_context(challenge))


@bp.route("/challenges/<int:challenge_id>/terms/v<int:version>")
def terms_version(challenge_id: int, version: int):
    challenge = _challenge(challenge_id)
    versions = terms_svc.terms_versions(challenge.id)
    shown = next((t for t in versions if t.version == version), None)
    if shown is None:
        abort(404)
    return render_template("ideas/terms.html", item=challenge, versions=versions, shown=shown,
                           **_terms_context(challenge))


@bp.route("/challenges/<int:challenge_id>/terms/v<int:version>.json")
def terms_json(challenge_id: int, version: int):
    challenge = _challenge(challenge_id)
    terms = db.session.execute(select(ChallengeTerms).where(
        ChallengeTerms.challenge_id == challenge.id, ChallengeTerms.version == version)).scalar()
    if terms is None:
        abort(404)
    # The exact canonical bytes: `sha256sum` of this download equals the digest.
    return Response(terms.canonical, mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="terms-{challenge.id}-v{version}.json"',
                             "X-Terms-Digest": terms.digest})


@bp.route("/challenges/<int:challenge_id>/terms/edit", methods=["GET", "POST"])
@login_required
def edit_terms(challenge_id: int):
    challenge = _challenge(challenge_id)
    require("manage_terms", challenge)
    current = policy.current_terms(challenge.id)
    form = TermsForm()
    if request.method == "GET" and current is not None:
        for f in ("ip_model", "open_licence", "field_of_use", "territory", "licence_duration",
                  "post_termination_rights", "background_ip", "foreground_ip", "confidentiality", "reveal_at",
                  "nda_text", "dispute_resolution", "governing_law"):
            getattr(form, f).data = getattr(current, f)
        for entry, inc in zip(form.incentives.entries, current.incentives):
            for k, val in inc.items():
                if k in entry.form._fields:
                    entry.form[k].data = val
    elif request.method == "GET":
        form.background_ip.data = "Each party keeps all rights in the intellectual property it brings to the challenge."
        form.dispute_resolution.data = "Good-faith negotiation, then mediation, then the courts of the governing law."
    error = None
    if form.validate_on_submit():
        try:
            terms, created = terms_svc.save_terms(current_user, challenge, form.data_for_service())
        except ServiceError as e:
            error = e
            _attach_error(form, e)
        else:
            flash(f"Terms version {terms.version} saved (digest {terms.digest[:12]}…)." if created
                  else "Nothing changed: the current terms version stands.", "success" if created else "info")
            return redirect(url_for("ideas.terms_sheet", challenge_id=challenge.id))
    accepted = current is not None and db.session.execute(select(TermsAcceptance.id).where(
        TermsAcceptance.terms_id == current.id).limit(1)).first() is not None
    return render_template("ideas/terms_form.html", item=challenge, form=form, current=current,
                           accepted=accepted), _status_for(form, error)


@bp.route("/challenges/<int:challenge_id>/rules/edit", methods=["GET", "POST"])
@login_required
def edit_rules(challenge_id: int):
    challenge = _challenge(challenge_id)
    require("manage_terms", challenge)
    rules = policy.challenge_rules(challenge.id)
    form = RulesForm(obj=rules) if rules is not None else RulesForm(data=terms_svc.default_rules_for(challenge))
    error = None
    if form.validate_on_submit():
        try:
            terms_svc.save_rules(current_user, challenge, form.data)
        except ServiceError as e:
            error = e
            _attach_error(form, e)
        else:
            flash("Participation rules saved.", "success")
            return redirect(url_for("items.detail", kind="challenge", item_id=challenge.id))
    return render_template("ideas/rules_form.html", item=challenge, form=form), _status_for(form, error)


@bp.route("/challenges/<int:challenge_id>/nda", methods=["GET", "POST"])
@login_required
def nda(challenge_id: int):
    challenge = _challenge(challenge_id)
    terms = policy.current_terms(challenge.id)
    if terms is None or not terms.nda_text:
        abort(404)
    form = NDAForm()
    error = None
    if form.validate_on_submit():
        if not form.accept.data:
            form.accept.errors.append("Tick the box to accept the NDA.")
        else:
            try:
                terms_svc.accept_nda(current_user, challenge, form.terms_version.data, form.terms_digest.data)
            except ServiceError as e:
                error = e
                _attach_error(form, e)
            else:
                flash("NDA accepted: the full brief is open to you.", "success")
                return redirect(url_for("items.detail", kind="challenge", item_id=challenge.id))
    form.terms_version.data, form.terms_digest.data = str(terms.version), terms.digest
    accepted = policy.has_accepted_nda(policy.viewer_for(current_user), terms)
    return render_template("ideas/nda.html", item=challenge, terms=terms, form=form, accepted=accepted), \
        _status_for(form, error)


# --------------------------------------------------------------------------- submitting


@bp.route("/challenges/<int:challenge_id>/ideas")
def challenge_ideas(challenge_id: int):
    challenge = _challenge(challenge_id)
    status = request.args.get("status", "").strip()
    if status and status not in IdeaStatus.values():
        abort(400, f"Unknown status; use one of {', '.join(IdeaStatus.values())}.")
    q = policy.visible(current_user, Idea).where(Idea.challenge_id == challenge.id)
    if status:
        q = q.where(Idea.status == status)
    ideas = db.session.execute(q.order_by(Idea.submitted_at.desc(), Idea.id.desc()).limit(500)).scalars().all()
    return render_template("ideas/list.html", item=challenge, ideas=ideas, status=status,
                           statuses=IdeaStatus.values())


@bp.route("/challenges/<int:challenge_id>/ideas/new", methods=["GET", "POST"])
@login_required
@limiter.limit(limit_for("ideas_per_account"), key_func=account_or_address, methods=["POST"])
def submit(challenge_id: int):
    challenge = _challenge(challenge_id)
    ctx = _terms_context(challenge)
    form = IdeaForm()
    error = None
    if request.method == "GET":
        form.challenge_id.data = str(challenge.id)
        form.submission_key.data = secrets.token_urlsafe(24)
        if ctx["terms"] is not None:
            form.terms_version.data = str(ctx["terms"].version)
            form.terms_digest.data = ctx["terms"].digest
    if form.validate_on_submit():
        try:
            idea, created = svc.submit_idea(current_user, challenge, form.data_for_service(),
                                            request.files.getlist(form.attachments.name))
        except ServiceError as e:
            error = e
            _attach_error(form, e)
        else:
            if not created:
                flash("This idea was already submitted (the form was sent twice); here it is.", "info")
            elif idea.status == IdeaStatus.AWAITING_COAUTHORS.value:
                flash("Idea saved. It counts as submitted once every co-author has accepted the terms.", "success")
            else:
                flash("Idea submitted under the terms you accepted. Your receipt is below.", "success")
            return redirect(url_for("ideas.detail", idea_id=idea.id))
    # After an error, show the terms as they are now (a stale version must be read again).
    if ctx["terms"] is not None and error is not None and error.field == "accept_terms":
        form.terms_version.data = str(ctx["terms"].version)
        form.terms_digest.data = ctx["terms"].digest
        form.accept_terms.data = False
    refusal = policy.participation_refusal(current_user, challenge)
    return render_template("ideas/submit.html", item=challenge, form=form, refusal=refusal, **ctx), \
        _status_for(form, error)


# --------------------------------------------------------------------------- one idea


@bp.route("/ideas/<int:idea_id>")
def detail(idea_id: int):
    idea = _idea(idea_id)
    svc.log_sealed_view(current_user, idea, "idea")
    v = policy.viewer_for(current_user)
    ctx = {"idea": idea, "item": idea.challenge, "is_author": policy.is_idea_author(v, idea),
           "sealed": policy.idea_is_sealed(idea), "award": svc.award_of(idea),
           "revisions": svc.revisions_of(idea)}
    if ctx["is_author"]:
        ctx["view_log"] = svc.view_log(idea)
        ctx["my_acceptances"] = [a for a in svc.acceptances_of(idea) if a.user_id == v.user_id]
    if policy.can(current_user, "view_review", idea):
        ctx["summary"] = svc.score_summary(idea)
    if policy.can(current_user, "score", idea):
        ctx["criteria"] = svc.criteria_of(idea.challenge_id)
        ctx["my_scores"] = svc.my_scores(current_user, idea)
        ctx["notes"] = svc.my_notes(current_user, idea)
        ctx["note_form"] = NoteForm()
    if policy.can(current_user, "award", idea):
        form = AwardForm()
        form.incentive.choices = [(i, terms_svc.describe_incentive(inc)) for i, inc in enumerate(idea.terms.incentives)]
        ctx["award_form"] = form
    ctx["reason_form"] = ReasonForm()
    ctx["disqualify_form"] = DisqualifyForm()
    ctx["action_form"] = ActionForm()
    return render_template("ideas/detail.html", **ctx)


@bp.route("/ideas/<int:idea_id>/revisions/<int:number>")
def revision(idea_id: int, number: int):
    idea = _idea(idea_id)
    rev = db.session.execute(select(IdeaRevision).where(IdeaRevision.idea_id == idea.id,
                                                        IdeaRevision.number == number)).scalar()
    if rev is None:
        abort(404)
    svc.log_sealed_view(current_user, idea, f"revision {number}")
    files = {a.id: a for a in idea.attachments}
    return render_template("ideas/revision.html", idea=idea, item=idea.challenge, rev=rev, files=files)


@bp.route("/ideas/<int:idea_id>/revise", methods=["GET", "POST"])
@login_required
@limiter.limit(limit_for("ideas_per_account"), key_func=account_or_address, methods=["POST"])
def revise(idea_id: int):
    idea = _idea(idea_id)
    if not policy.is_idea_author(policy.viewer_for(current_user), idea, include_pending=False):
        abort(403, "Only the idea's authors can revise it.")
    if not policy.can(current_user, "revise", idea):
        abort(403, svc._refusal_for_author_action(idea, "revised"))
    ctx = _terms_context(idea.challenge)
    form = ReviseForm(obj=idea) if request.method == "GET" else ReviseForm()
    error = None
    if request.method == "GET" and ctx["terms"] is not None:
        form.terms_version.data = str(ctx["terms"].version)
        form.terms_digest.data = ctx["terms"].digest
    if form.validate_on_submit():
        try:
            svc.revise_idea(current_user, idea, form.data_for_service(),
                            request.files.getlist(form.attachments.name), request.form.getlist("remove"))
        except ServiceError as e:
            error = e
            _attach_error(form, e)
        else:
            flash(f"Revision {idea.revision} saved under terms version {idea.terms.version}.", "success")
            return redirect(url_for("ideas.detail", idea_id=idea.id))
    if ctx["terms"] is not None and error is not None and error.field == "accept_terms":
        form.terms_version.data = str(ctx["terms"].version)
        form.terms_digest.data = ctx["terms"].digest
        form.accept_terms.data = False
    return render_template("ideas/revise.html", idea=idea, item=idea.challenge, form=form, **ctx), \
        _status_for(form, error)


@bp.route("/ideas/<int:idea_id>/withdraw", methods=["POST"])
@login_required
def withdraw(idea_id: int):
    idea = _idea(idea_id)
    if not ActionForm().validate_on_submit():
        abort(400, "Your form expired; reload the page and try again.")
    try:
        svc.withdraw_idea(current_user, idea)
    except ServiceError as e:
        _fail(e)
    flash("Idea withdrawn.", "success")
    return redirect(url_for("ideas.detail", idea_id=idea.id))


@bp.route("/ideas/<int:idea_id>/coauthor", methods=["GET", "POST"])
@login_required
def coauthor(idea_id: int):
    idea = _idea(idea_id)
    status = policy.idea_author_status(policy.viewer_for(current_user), idea)
    if status not in ("pending", "accepted"):
        abort(403, "You are not a named co-author of this idea.")
    ctx = _terms_context(idea.challenge)
    form = CoauthorForm()
    error = None
    if request.method == "GET" and ctx["terms"] is not None:
        form.terms_version.data = str(ctx["terms"].version)
        form.terms_digest.data = ctx["terms"].digest
    if form.validate_on_submit():
        try:
            svc.accept_coauthorship(current_user, idea, form.accept_data())
        except ServiceError as e:
            error = e
            _attach_error(form, e)
        else:
            flash("You accepted the terms as a co-author.", "success")
            return redirect(url_for("ideas.detail", idea_id=idea.id))
    refusal = policy.participation_refusal(current_user, idea.challenge) if status == "pending" else None
    return render_template("ideas/coauthor.html", idea=idea, item=idea.challenge, form=form, status=status,
                           refusal=refusal, action_form=ActionForm(), **ctx), _status_for(form, error)


@bp.route("/ideas/<int:idea_id>/coauthor/decline", methods=["POST"])
@login_required
def coauthor_decline(idea_id: int):
    idea = _idea(idea_id)
    if not ActionForm().validate_on_submit():
        abort(400, "Your form expired; reload the page and try again.")
    try:
        svc.decline_coauthorship(current_user, idea)
    except ServiceError as e:
        _fail(e)
    flash("You declined to be a co-author.", "info")
    return redirect(url_for("ideas.mine"))


@bp.route("/ideas/<int:idea_id>/files/<int:att_id>")
def download(idea_id: int, att_id: int):
    idea = _idea(idea_id)
    att = db.session.get(IdeaAttachment, att_id)
    if att is None or att.idea_id != idea.id or not policy.can(current_user, "view", att):
        abort(404)
    try:
        path = files_svc.path_for(att.stored_name)
    except ServiceError:
        abort(404)
    if not path.is_file():
        abort(404)
    svc.log_sealed_view(current_user, idea, f"file {att.filename}")
    resp = send_file(path, mimetype=att.content_type, as_attachment=True, download_name=att.filename,
                     max_age=0, conditional=False, etag=False)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Cache-Control"] = "private, no-store"
    resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return resp


# --------------------------------------------------------------------------- review actions


def _post_action(idea_id: int, action: str):
    idea = _idea(idea_id)
    require(action, idea)
    return idea


@bp.route("/ideas/<int:idea_id>/score", methods=["POST"])
@login_required
def score(idea_id: int):
    idea = _post_action(idea_id, "score")
    if not ActionForm().validate_on_submit():
        abort(400, "Your form expired; reload the page and try again.")
    scores = {k.split("-", 1)[1]: v for k, v in request.form.items() if k.startswith("score-") and v.strip()}
    try:
        svc.score_idea(current_user, idea, scores)
    except ServiceError as e:
        _fail(e)
    flash("Scores saved.", "success")
    return redirect(url_for("ideas.detail", idea_id=idea.id))


@bp.route("/ideas/<int:idea_id>/notes", methods=["POST"])
@login_required
def note(idea_id: int):
    idea = _post_action(idea_id, "score")
    form = NoteForm()
    if not form.validate_on_submit():
        abort(400, "; ".join(e for errs in form.errors.values() for e in errs) or "Write the note.")
    try:
        svc.add_note(current_user, idea, form.body.data)
    except ServiceError as e:
        _fail(e)
    flash("Note saved (only you can see it).", "success")
    return redirect(url_for("ideas.detail", idea_id=idea.id))


@bp.route("/ideas/<int:idea_id>/shortlist", methods=["POST"])
@login_required
def shortlist(idea_id: int):
    idea = _post_action(idea_id, "shortlist")
    if not ActionForm().validate_on_submit():
        abort(400, "Your form expired; reload the page and try again.")
    try:
        svc.shortlist_idea(current_user, idea)
    except ServiceError as e:
        _fail(e)
    flash("Idea shortlisted.", "success")
    return redirect(url_for("ideas.detail", idea_id=idea.id))


@bp.route("/ideas/<int:idea_id>/decline", methods=["POST"])
@login_required
def decline(idea_id: int):
    idea = _post_action(idea_id, "decline")
    form = ReasonForm()
    if not form.validate_on_submit():
        abort(400, "Give the authors a reason for declining.")
    try:
        svc.decline_idea(current_user, idea, form.reason.data)
    except ServiceError as e:
        _fail(e)
    flash("Idea declined; the authors were told why.", "success")
    return redirect(url_for("ideas.detail", idea_id=idea.id))


@bp.route("/ideas/<int:idea_id>/award", methods=["POST"])
@login_required
def award(idea_id: int):
    idea = _post_action(idea_id, "award")
    form = AwardForm()
    form.incentive.choices = [(i, terms_svc.describe_incentive(inc)) for i, inc in enumerate(idea.terms.incentives)]
    if not form.validate_on_submit():
        abort(400, "Choose one of the incentives in the terms the authors accepted.")
    try:
        svc.award_idea(current_user, idea, form.incentive.data, form.note.data or "")
    except ServiceError as e:
        _fail(e)
    flash("Idea awarded.", "success")
    return redirect(url_for("ideas.detail", idea_id=idea.id))


@bp.route("/ideas/<int:idea_id>/paid", methods=["POST"])
@login_required
def paid(idea_id: int):
    idea = _post_action(idea_id, "confirm_payment")
    if not ActionForm().validate_on_submit():
        abort(400, "Your form expired; reload the page and try again.")
    try:
        svc.confirm_payment(current_user, idea)
    except ServiceError as e:
        _fail(e)
    flash("Payment confirmed.", "success")
    return redirect(url_for("ideas.detail", idea_id=idea.id))


@bp.route("/ideas/<int:idea_id>/disqualify", methods=["POST"])
@login_required
def disqualify(idea_id: int):
    """A moderation decision like any other: it names the rule broken and can be appealed."""
    idea = _post_action(idea_id, "disqualify")
    form = DisqualifyForm()
    if not form.validate_on_submit():
        abort(400, "; ".join(e for errs in form.errors.values() for e in errs))
    try:
        moderation_svc.take_action(current_user, "idea", idea.id, ActionKind.DISQUALIFY.value,
                                   form.reason.data, rule=form.rule.data)
    except ServiceError as e:
        _fail(e)
    flash("Idea disqualified; the authors were told the reason and the rule, and may appeal.", "success")
    return redirect(url_for("ideas.detail", idea_id=idea.id))


# --------------------------------------------------------------------------- reviewers and criteria


@bp.route("/challenges/<int:challenge_id>/reviewers", methods=["GET", "POST"])
@login_required
def reviewers(challenge_id: int):
    challenge = _challenge(challenge_id)
    require("manage_terms", challenge)
    form = ReviewerForm(prefix="r")
    crit_form = CriterionForm(prefix="c")
    error = None
    if "r-submit" in request.form and form.validate_on_submit():
        try:
            appt = svc.appoint_reviewer(current_user, challenge, form.email.data, form.nda_text.data or "")
        except ServiceError as e:
            error = e
            _attach_error(form, e)
        else:
            flash(f"{appt.user.display_name} appointed as {appt.kind} reviewer.", "success")
            return redirect(url_for("ideas.reviewers", challenge_id=challenge.id))
    elif "c-submit" in request.form and crit_form.validate_on_submit():
        try:
            svc.add_criterion(current_user, challenge, crit_form.name.data, crit_form.weight.data,
                              crit_form.description.data or "")
        except ServiceError as e:
            error = e
            _attach_error(crit_form, e)
        else:
            flash("Criterion added.", "success")
            return redirect(url_for("ideas.reviewers", challenge_id=challenge.id))
    status = error.status if error else (400 if form.errors or crit_form.errors else 200)
    return render_template("ideas/reviewers.html", item=challenge, form=form, crit_form=crit_form,
                           appointments=svc.reviewers_of(challenge), criteria=svc.criteria_of(challenge.id),
                           action_form=ActionForm()), status


@bp.route("/challenges/<int:challenge_id>/reviewers/<int:appt_id>/revoke", methods=["POST"])
@login_required
def revoke_reviewer(challenge_id: int, appt_id: int):
    challenge = _challenge(challenge_id)
    require("manage_terms", challenge)
    appt = db.session.get(ReviewerAppointment, appt_id)
    if appt is None or appt.challenge_id != challenge.id:
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400, "Your form expired; reload the page and try again.")
    try:
        svc.revoke_reviewer(current_user, appt)
    except ServiceError as e:
        _fail(e)
    flash("Reviewer removed.", "success")
    return redirect(url_for("ideas.reviewers", challenge_id=challenge.id))


@bp.route("/challenges/<int:challenge_id>/criteria/<int:crit_id>/remove", methods=["POST"])
@login_required
def remove_criterion(challenge_id: int, crit_id: int):
    challenge = _challenge(challenge_id)
    require("manage_terms", challenge)
    crit = db.session.get(ReviewCriterion, crit_id)
    if crit is None or crit.challenge_id != challenge.id:
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400, "Your form expired; reload the page and try again.")
    try:
        svc.remove_criterion(current_user, crit)
    except ServiceError as e:
        _fail(e)
    flash("Criterion removed.", "success")
    return redirect(url_for("ideas.reviewers", challenge_id=challenge.id))


@bp.route("/challenges/<int:challenge_id>/reviewer-nda", methods=["GET", "POST"])
@login_required
def reviewer_nda(challenge_id: int):
    challenge = _challenge(challenge_id)
    appt = policy.reviewer_appointment(policy.viewer_for(current_user), challenge.id)
    if appt is None or appt.revoked_at is not None or not appt.nda_text:
        abort(404)
    form = ReviewerNDAForm()
    error = None
    if form.validate_on_submit():
        if not form.accept.data:
            form.accept.errors.append("Tick the box to accept the NDA.")
        else:
            try:
                svc.accept_reviewer_nda(current_user, appt, form.nda_digest.data)
            except ServiceError as e:
                error = e
                _attach_error(form, e)
            else:
                flash("Reviewer NDA accepted.", "success")
                return redirect(url_for("ideas.review_dashboard", challenge_id=challenge.id))
    form.nda_digest.data = appt.nda_digest
    return render_template("ideas/reviewer_nda.html", item=challenge, appt=appt, form=form), \
        _status_for(form, error)


@bp.route("/challenges/<int:challenge_id>/review")
@login_required
def review_dashboard(challenge_id: int):
    challenge = _challenge(challenge_id)
    require("review_ideas", challenge)
    ideas = db.session.execute(
        policy.visible(current_user, Idea).where(Idea.challenge_id == challenge.id)
        .order_by(Idea.submitted_at.asc(), Idea.id)).scalars().all()
    rows = [(i, svc.score_summary(i)) for i in ideas]
    return render_template("ideas/review.html", item=challenge, rows=rows, criteria=svc.criteria_of(challenge.id))


@bp.route("/ideas/reviewing")
@login_required
def reviewing():
    appts = db.session.execute(select(ReviewerAppointment).where(
        ReviewerAppointment.user_id == current_user.id).order_by(ReviewerAppointment.id.desc())).scalars().all()
    return render_template("ideas/reviewing.html", appts=[a for a in appts if policy.can(current_user, "view", a)])


# --------------------------------------------------------------------------- mine, receipts, verify


@bp.route("/ideas/mine")
@login_required
def mine():
    ideas = db.session.execute(
        select(Idea).join(IdeaAuthor, IdeaAuthor.idea_id == Idea.id).where(
            IdeaAuthor.user_id == current_user.id, IdeaAuthor.status.in_(policy.IDEA_VISIBLE_AUTHOR_STATES))
        .order_by(Idea.created_at.desc(), Idea.id.desc())).scalars().all()
    accs = db.session.execute(select(TermsAcceptance).where(TermsAcceptance.user_id == current_user.id)
                              .order_by(TermsAcceptance.id.desc())).scalars().all()
    v = policy.viewer_for(current_user)
    pending = [i for i in ideas if policy.idea_author_status(v, i) == "pending"]
    return render_template("ideas/mine.html", ideas=ideas, pending=pending, acceptances=accs)


def _acceptance(acc_id: int) -> TermsAcceptance:
    acc = db.session.get(TermsAcceptance, acc_id)
    if acc is None or not policy.can(current_user, "view", acc):
        abort(404)
    return acc


@bp.route("/ideas/receipts/<int:acc_id>")
@login_required
def receipt(acc_id: int):
    acc = _acceptance(acc_id)
    data = terms_svc.build_receipt(acc)
    return render_template("ideas/receipt.html", acc=acc, receipt=data,
                           receipt_text=json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))


@bp.route("/ideas/receipts/<int:acc_id>.json")
@login_required
def receipt_json(acc_id: int):
    acc = _acceptance(acc_id)
    return Response(terms_svc.receipt_json(acc) + "\n", mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="receipt-{acc.id}.json"',
                             "Cache-Control": "private, no-store"})


@bp.route("/terms/verify", methods=["GET", "POST"])
def verify():
    form = VerifyForm()
    result = None
    status = 200
    if form.validate_on_submit():
        raw = form.receipt.data or ""
        upload = request.files.get(form.file.name)
        if upload is not None and upload.filename:
            raw = upload.read(100_001)
            if len(raw) > 100_000:
                abort(413, "A receipt is a small JSON file; this one is too large.")
        if not (raw.strip() if isinstance(raw, (str, bytes)) else raw):
            form.receipt.errors = list(form.receipt.errors) + ["Paste a receipt or upload its file."]
            status = 400
        else:
            result = terms_svc.verify_receipt(raw)
            status = 200 if result.ok else 422
    elif request.method == "POST":
        status = 400
    return render_template("ideas/verify.html", form=form, result=result), status
