"""Views: load with the policy (404 hides existence), check the action (403), validate the
form, call a service, redirect. Services check the policy again."""
from __future__ import annotations

import secrets

from flask import (
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy import func, select

from .. import policy, receipt_keys
from ..downloads import private_download
from ..formtools import attach_error, attach_service_error, field_named, unconfirmed, zone_meta
from ..ratelimit import account_or_address, limit_for
from ..extensions import db, limiter
from ..models import (
    AuthorStatus,
    Challenge,
    ChallengeTerms,
    Idea,
    IdeaAttachment,
    IdeaAuthor,
    IdeaRevision,
    IdeaStatus,
    InvitationState,
    Item,
    ItemKind,
    ReviewCriterion,
    ReviewerAppointment,
    ReviewerInvitation,
    TermsAcceptance,
)
from ..pagination import page_arg, paginate
from ..policy import get_child_or_404, get_visible_or_404, require
from ..services import attachments as files_svc
from ..models.moderation import ActionKind
from ..services import ideas as svc
from ..services import moderation as moderation_svc
from ..services import terms as terms_svc
from ..services.common import ServiceError
from ..models import utcnow
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


EXPIRED = "Your form expired; reload the page and try again."

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
    form = TermsForm(meta=zone_meta(challenge.organisation))
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
    elif form.is_submitted():
        # The sheet's own rules (incentive rows, reveal date...) alongside the form's: every
        # error at once, not one more on each attempt.
        for name, message in terms_svc.terms_problems(form.data_for_service()):
            target = field_named(form, name)
            if target is not None and any(isinstance(e, str) for e in target.errors):
                continue  # the form already said what is wrong there
            attach_error(form, name, message)
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
    ideas, pg = paginate(q, (Idea.submitted_at.desc(), Idea.id.desc()), current_app.config["PAGE_SIZE"])
    return render_template("ideas/list.html", item=challenge, ideas=ideas, status=status,
                           statuses=IdeaStatus.values(), pg=pg)


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
           "revisions": svc.revisions_of(idea), "team": svc.team_lines(idea)}
    if ctx["is_author"]:
        ctx["view_log"] = svc.view_log(idea)
        ctx["my_acceptances"] = [a for a in svc.acceptances_of(idea) if a.user_id == v.user_id]
    if policy.can(current_user, "view_review", idea):
        ctx["summary"] = svc.score_summary(idea)
        ctx["is_reviewer"] = policy.is_active_reviewer(v, idea.challenge)
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


@bp.route("/ideas/<int:idea_id>/team")
def team(idea_id: int):
    """Who is on the idea (lead, co-authors, invitations and their answers) and each one's
    acceptance of the terms: version, digest, date. Never a receipt's signature or a
    conflict-of-interest note: those stay their owner's."""
    idea = _idea(idea_id)
    require("view_team", idea)
    v = policy.viewer_for(current_user)
    members = [a for a in svc.team_of(idea) if policy.team_member_shown(v, idea, a)]
    shown = {a.user_id for a in members}
    accepted: dict[int, list[TermsAcceptance]] = {}
    for acc in svc.acceptances_of(idea):
        if acc.user_id in shown:
            accepted.setdefault(acc.user_id, []).append(acc)
    # Co-authors named by address read the same whether or not the address has an account
    # (a pending author row with its invitation, or an invitation alone): the address to the
    # idea's authors, "invited co-author (pending)" to others.
    invites = svc.coauthor_invitations(idea)
    show_address = policy.sees_invited_coauthor_address(v, idea)
    now = utcnow()
    open_invites = [(i, "declined" if i.declined_at else ("expired" if i.expires_at <= now else "pending"))
                    for i in invites if i.user_id is None and (show_address or i.declined_at is None)]
    return render_template("ideas/team.html", idea=idea, item=idea.challenge, members=members, accepted=accepted,
                           current=policy.current_terms(idea.challenge_id), show_address=show_address,
                           invited_by_user={i.user_id: i for i in invites if i.user_id is not None},
                           open_invites=open_invites)


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
        abort(400, EXPIRED)
    svc.withdraw_idea(current_user, idea)
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
        abort(400, EXPIRED)
    svc.decline_coauthorship(current_user, idea)
    flash("You declined to be a co-author.", "info")
    return redirect(url_for("ideas.mine"))


@bp.route("/ideas/<int:idea_id>/files/<int:att_id>")
def download(idea_id: int, att_id: int):
    idea = _idea(idea_id)
    att = get_child_or_404(IdeaAttachment, att_id, idea_id=idea.id)
    try:
        fh = files_svc.open_stored(att.stored_name)
    except (ServiceError, FileNotFoundError):
        abort(404)
    svc.log_sealed_view(current_user, idea, f"file {att.filename}")
    return private_download(fh, att.content_type, att.filename)


# --------------------------------------------------------------------------- review actions


def _checked_post(idea_id: int, action: str, form=None, invalid: str | None = None):
    """The shape of every review action on an idea: load it (404 if unseen), check the
    action with the policy (403), validate the form (400 naming what is wrong). The service
    call that follows raises ServiceError on a refusal, which the app-wide handler rolls
    back and answers with its status and message."""
    idea = _idea(idea_id)
    require(action, idea)
    form = form if form is not None else ActionForm()
    if not form.validate_on_submit():
        abort(400, invalid or "; ".join(e for errs in form.errors.values() for e in errs
                                        if isinstance(e, str) and "CSRF" not in e) or EXPIRED)
    return idea, form


def _done(idea: Idea, message: str):
    flash(message, "success")
    return redirect(url_for("ideas.detail", idea_id=idea.id))


@bp.route("/ideas/<int:idea_id>/score", methods=["POST"])
@login_required
def score(idea_id: int):
    idea, _ = _checked_post(idea_id, "score")
    scores = {k.split("-", 1)[1]: v for k, v in request.form.items() if k.startswith("score-") and v.strip()}
    svc.score_idea(current_user, idea, scores)
    return _done(idea, "Scores saved.")


@bp.route("/ideas/<int:idea_id>/notes", methods=["POST"])
@login_required
def note(idea_id: int):
    idea, form = _checked_post(idea_id, "score", NoteForm())
    svc.add_note(current_user, idea, form.body.data)
    return _done(idea, "Note saved (only you can see it).")


@bp.route("/ideas/<int:idea_id>/shortlist", methods=["POST"])
@login_required
def shortlist(idea_id: int):
    idea, _ = _checked_post(idea_id, "shortlist")
    svc.shortlist_idea(current_user, idea)
    return _done(idea, "Idea shortlisted.")


@bp.route("/ideas/<int:idea_id>/decline", methods=["POST"])
@login_required
def decline(idea_id: int):
    idea, form = _checked_post(idea_id, "decline", ReasonForm(), "Give the authors a reason for declining.")
    page = unconfirmed(f"Decline “{idea.title}”? The authors are told, with your reason; this cannot be undone.",
                       "Decline the idea", url_for("ideas.detail", idea_id=idea.id), danger=True)
    if page is not None:
        return page
    svc.decline_idea(current_user, idea, form.reason.data)
    return _done(idea, "Idea declined; the authors were told why.")


@bp.route("/ideas/<int:idea_id>/award", methods=["POST"])
@login_required
def award(idea_id: int):
    idea = _idea(idea_id)
    form = AwardForm()
    form.incentive.choices = [(i, terms_svc.describe_incentive(inc)) for i, inc in enumerate(idea.terms.incentives)]
    idea, form = _checked_post(idea_id, "award", form, "Choose one of the incentives in the terms the authors accepted.")
    page = unconfirmed(f"Award “{idea.title}” {terms_svc.describe_incentive(idea.terms.incentives[form.incentive.data])}? "
                       "The authors are told; an award cannot be undone.",
                       "Award the idea", url_for("ideas.detail", idea_id=idea.id))
    if page is not None:
        return page
    svc.award_idea(current_user, idea, form.incentive.data, form.note.data or "")
    return _done(idea, "Idea awarded.")


@bp.route("/ideas/<int:idea_id>/paid", methods=["POST"])
@login_required
def paid(idea_id: int):
    idea, _ = _checked_post(idea_id, "confirm_payment")
    svc.confirm_payment(current_user, idea)
    return _done(idea, "Payment confirmed.")


@bp.route("/ideas/<int:idea_id>/disqualify", methods=["POST"])
@login_required
def disqualify(idea_id: int):
    """A moderation decision like any other: it names the rule broken and can be appealed."""
    idea, form = _checked_post(idea_id, "disqualify", DisqualifyForm())
    moderation_svc.take_action(current_user, "idea", idea.id, ActionKind.DISQUALIFY.value,
                               form.reason.data, rule=form.rule.data)
    return _done(idea, "Idea disqualified; the authors were told the reason and the rule, and may appeal.")


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
            if isinstance(appt, ReviewerInvitation):
                # The same words whether or not the address has an account.
                flash(f"Invitation mailed to {appt.email}; they become an outside judge when they accept "
                      "it and then the reviewer NDA.", "success")
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
                           invitations=svc.pending_reviewer_invitations(challenge),
                           action_form=ActionForm()), status


def _managed_row(challenge_id: int, model, row_id: int):
    """For the reviewers page's one-button actions: the challenge (whose reviewers and criteria
    the viewer manages) and one of its rows (404 for another challenge's), form checked."""
    challenge = _challenge(challenge_id)
    require("manage_terms", challenge)
    row = get_child_or_404(model, row_id, check_view=False, challenge_id=challenge.id)
    if not ActionForm().validate_on_submit():
        abort(400, EXPIRED)
    return challenge, row


@bp.route("/challenges/<int:challenge_id>/reviewers/<int:appt_id>/revoke", methods=["POST"])
@login_required
def revoke_reviewer(challenge_id: int, appt_id: int):
    challenge, appt = _managed_row(challenge_id, ReviewerAppointment, appt_id)
    svc.revoke_reviewer(current_user, appt)
    flash("Reviewer removed.", "success")
    return redirect(url_for("ideas.reviewers", challenge_id=challenge.id))


@bp.route("/challenges/<int:challenge_id>/reviewer-invitations/<int:inv_id>/revoke", methods=["POST"])
@login_required
def revoke_reviewer_invitation(challenge_id: int, inv_id: int):
    challenge, inv = _managed_row(challenge_id, ReviewerInvitation, inv_id)
    svc.revoke_reviewer_invitation(current_user, inv)  # a refusal: the app-wide ServiceError handler
    flash("Invitation revoked; the link no longer works.", "success")
    return redirect(url_for("ideas.reviewers", challenge_id=challenge.id))


@bp.route("/challenges/<int:challenge_id>/criteria/<int:crit_id>/remove", methods=["POST"])
@login_required
def remove_criterion(challenge_id: int, crit_id: int):
    challenge, crit = _managed_row(challenge_id, ReviewCriterion, crit_id)
    svc.remove_criterion(current_user, crit)
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
    if not policy.can(current_user, "review_ideas", challenge):
        # An appointed judge who has not accepted the reviewer NDA yet: show them the NDA,
        # not a bare refusal.
        appt = policy.reviewer_appointment(policy.viewer_for(current_user), challenge.id)
        if appt is not None and policy.can(current_user, "accept_reviewer_nda", appt):
            flash("Accept the reviewer NDA to open the review dashboard.", "info")
            return redirect(url_for("ideas.reviewer_nda", challenge_id=challenge.id))
        abort(403, "Only the challenge's reviewers and its organisation's owners and admins review its ideas.")
    ideas, pg = paginate(policy.visible(current_user, Idea).where(Idea.challenge_id == challenge.id),
                         (Idea.submitted_at.asc(), Idea.id), current_app.config["PAGE_SIZE"])
    summaries = svc.score_summaries(challenge.id, ideas)
    rows = [(i, summaries[i.id]) for i in ideas]
    return render_template("ideas/review.html", item=challenge, rows=rows, criteria=svc.criteria_of(challenge.id),
                           is_reviewer=policy.is_active_reviewer(policy.viewer_for(current_user), challenge), pg=pg)


@bp.route("/ideas/reviewing")
@login_required
def reviewing():
    appts = db.session.execute(select(ReviewerAppointment).where(
        ReviewerAppointment.user_id == current_user.id).order_by(ReviewerAppointment.id.desc())).scalars().all()
    invs = [(i, svc.reviewer_invitation_names_challenge(current_user, i), policy.can(current_user, "accept_on_site", i))
            for i in svc.reviewer_invitations_for_user(current_user)
            if policy.invitation_state(i) == InvitationState.PENDING.value]
    return render_template("ideas/reviewing.html", appts=[a for a in appts if policy.can(current_user, "view", a)],
                           invitations=invs, form=ActionForm())


@bp.route("/ideas/reviewing/invitations/<int:inv_id>/accept", methods=["POST"])
@login_required
def accept_reviewer_invitation(inv_id: int):
    """An invited judge signed in with the invited (confirmed) address accepts on the site."""
    inv = get_visible_or_404(ReviewerInvitation, inv_id)
    if not ActionForm().validate_on_submit():
        abort(400, "Your form expired. Reload the page and try again.")
    if not policy.can(current_user, "accept_on_site", inv):
        abort(403, "Confirm your e-mail address first, or open the link in the invitation e-mail.")
    appt = svc.accept_reviewer_invitation(current_user, inv=inv)
    flash("You are a reviewer of this challenge.", "success")
    if appt.nda_text and appt.nda_accepted_at is None:
        return redirect(url_for("ideas.reviewer_nda", challenge_id=appt.challenge_id))
    return redirect(url_for("ideas.review_dashboard", challenge_id=appt.challenge_id))


# --------------------------------------------------------------------------- mine, receipts, verify


@bp.route("/ideas/mine")
@login_required
def mine():
    size = current_app.config["PAGE_SIZE"]
    authored = select(Idea).join(IdeaAuthor, IdeaAuthor.idea_id == Idea.id).where(IdeaAuthor.user_id == current_user.id)
    ideas, pg = paginate(authored.where(IdeaAuthor.status.in_(policy.IDEA_VISIBLE_AUTHOR_STATES)),
                         (Idea.created_at.desc(), Idea.id.desc()), size)
    accs, acc_pg = paginate(select(TermsAcceptance).where(TermsAcceptance.user_id == current_user.id),
                            (TermsAcceptance.id.desc(),), size, page_arg("acc_page"))
    # Invitations to co-author wait on every page, whichever page of ideas is shown.
    pending = db.session.execute(authored.where(IdeaAuthor.status == AuthorStatus.PENDING.value)
                                 .order_by(Idea.id).limit(size)).scalars().all()
    return render_template("ideas/mine.html", ideas=ideas, pending=pending, acceptances=accs, pg=pg, acc_pg=acc_pg)


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
                           receipt_text=receipt_keys.receipt_text(data))


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


# --------------------------------------------------------------------------- co-author links


def _coauthor_link_page(token: str, inv, problem: str | None = None, status: int = 200):
    """The page behind a mailed co-author link. Never cached, never sent on as a referrer."""
    from flask import make_response

    challenge = inv.idea.challenge if inv is not None and inv.idea is not None else None
    resp = make_response(render_template(
        "ideas/coauthor_link.html", token=token, inv=inv, problem=problem, action_form=ActionForm(),
        challenge_title=challenge.title if challenge is not None and policy.invitation_reveals_item(challenge)
        else None, org=challenge.organisation.name if challenge is not None else None,
        here=url_for("ideas.coauthor_link", token=token)), status)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


@bp.route("/ideas/coauthor/t/<token>")
def coauthor_link(token: str):
    """A co-author named by address: signed in with it, take it up and answer; otherwise
    sign in or register with that address (registering from here confirms it)."""
    inv = svc.find_coauthor_invitation(token)
    problem = svc.coauthor_link_refusal(inv, current_user)
    if problem:
        return _coauthor_link_page(token, inv, *problem)
    if not current_user.is_authenticated:
        return _coauthor_link_page(token, inv)
    try:
        idea = svc.claim_coauthor_invitation(current_user, token)
    except ServiceError as e:
        return _coauthor_link_page(token, svc.find_coauthor_invitation(token), e.message, e.status)
    return redirect(url_for("ideas.coauthor", idea_id=idea.id))


@bp.route("/ideas/coauthor/t/<token>/decline", methods=["POST"])
def coauthor_link_decline(token: str):
    if not ActionForm().validate_on_submit():
        abort(400, "Your form expired. Open the link again.")
    try:
        svc.decline_coauthor_invitation(current_user, token)
    except ServiceError as e:
        return _coauthor_link_page(token, svc.find_coauthor_invitation(token), e.message, e.status)
    flash("You declined to be a co-author. The link no longer works.", "info")
    return redirect(url_for("ideas.mine") if current_user.is_authenticated else url_for("main.index"))
