"""Sign-up, sign-in and account pages.

Sign-ins are logged (logger `marketplace.auth`): successes with the user id, failures with
the user id when the address belongs to an account. The typed address is never logged
(people paste their password into it), nor, of course, the password.
"""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

import hashlib

from flask import abort, current_app, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.exceptions import HTTPException

from ..extensions import limiter
from ..services import accounts
from ..services.common import ServiceError
from .. import timezones
from ..timezones import format_dt
from . import bp
from .forms import (
    ConfirmForm,
    EmailChangeForm,
    ForgotPasswordForm,
    LoginForm,
    PasswordForm,
    ProfileForm,
    RegisterForm,
    ResetPasswordForm,
    TimezoneForm,
)

log = logging.getLogger("marketplace.auth")


def _safe_next(target: str | None) -> str:
    if not target:
        return url_for("main.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("main.index")
    return target


# Address proofs: pages a mailed invitation link leads to. Registering from one with the
# invited address needs no verification mail (the link was mailed there). Features add
# (endpoint, function(view_args) -> the invited address or None).
ADDRESS_PROOFS: dict[str, object] = {}


def _address_proof(target: str | None) -> str | None:
    """The address a `next` link proves, when it is a valid invitation link."""
    if not target or _safe_next(target) != target:
        return None
    try:
        endpoint, args = current_app.url_map.bind("localhost").match(target.split("?", 1)[0])
    except HTTPException:
        return None
    fn = ADDRESS_PROOFS.get(endpoint)
    return fn(args) if fn else None


def _address_key() -> str:
    """Rate-limit key: the address typed into the form (hashed; per address, not per visitor),
    so nobody can flood one mailbox with our mails from many places."""
    typed = (request.form.get("email") or "").strip().lower()
    return "addr:" + hashlib.sha256(typed.encode()).hexdigest()[:32]


def _no_mail_possible() -> bool:
    """A typed value that is no address gets no mail, so the per-address limit leaves it out
    (the per-visitor limit still counts it)."""
    from ..email_address import InvalidEmail, check

    try:
        check(request.form.get("email") or "")
    except InvalidEmail:
        return True
    return False


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit("20/hour", methods=["POST"])
@limiter.limit("5/hour", methods=["POST"], key_func=_address_key, exempt_when=_no_mail_possible)
def register():
    """Sign-up. The answer is the same whether or not the address has an account ("check
    your inbox"); the mail tells its owner which. From an invitation link (`next`) with the
    invited address the account is verified and signed in at once."""
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    target = request.args.get("next")
    proof = _address_proof(target)
    form = RegisterForm(email=proof) if request.method == "GET" and proof else RegisterForm()
    if form.validate_on_submit():
        try:
            user = accounts.register(form.email.data, form.display_name.data, form.password.data,
                                     proven_email=proof, timezone=timezones.clean_zone(form.timezone.data))
        except ServiceError as e:
            getattr(form, e.field or "email", form.email).errors.append(e.message)
        else:
            proven = proof is not None and accounts.normalise_email(form.email.data) == proof
            if proven and user is not None:
                login_user(user)
                log.info("account created from an invitation and signed in: user=%s", user.id)
                flash("Welcome! Your account is ready and your address is confirmed.", "success")
                return redirect(_safe_next(target))
            if proven:  # the link proves the mailbox, so saying this tells its owner only
                flash("This address already has an account: sign in to continue.", "info")
                return redirect(url_for("auth.login", next=_safe_next(target)))
            if user is not None:
                log.info("account created: user=%s", user.id)
            return render_template("auth/check_inbox.html", address=accounts.normalise_email(form.email.data),
                                   next=target if _safe_next(target) == target else None)
    return render_template("auth/register.html", form=form, proof=proof), (200 if not form.errors else 400)


def _token_page(template: str, status: int = 200, **ctx):
    """Pages behind mailed links: never cached, never sent on as a referrer."""
    resp = make_response(render_template(template, **ctx), status)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


@bp.route("/verify/<token>")
@limiter.limit("60/minute")
def verify_email(token: str):
    try:
        user = accounts.verify_email(token, current_user)
    except accounts.TokenProblem as e:
        return _token_page("auth/link_problem.html", e.status, message=e.message, what="verify")
    log.info("address verified: user=%s", user.id)
    flash("Your e-mail address is confirmed. You can take part in challenges.", "success")
    return redirect(url_for("auth.account") if current_user.is_authenticated else url_for("auth.login"))


@bp.route("/verify/resend", methods=["POST"])
@login_required
@limiter.limit("5/hour")
def resend_verification():
    if not ConfirmForm().validate_on_submit():
        abort(400, "Your form expired. Reload the page and try again.")
    if current_user.email_verified_at is not None:
        flash("Your address is already confirmed.", "info")
    else:
        accounts.queue_verification(current_user)
        from ..extensions import db
        db.session.commit()
        flash(f"We sent a new confirmation link to {current_user.email}.", "success")
    return redirect(_safe_next(request.args.get("next")) if request.args.get("next") else url_for("auth.account"))


@bp.route("/reset", methods=["GET", "POST"])
@limiter.limit("10/hour", methods=["POST"])
@limiter.limit("3/hour", methods=["POST"], key_func=_address_key, exempt_when=_no_mail_possible)
def forgot_password():
    """Ask for a reset link; the answer never tells whether the address has an account."""
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        try:
            accounts.request_password_reset(form.email.data)
        except ServiceError as e:
            form.email.errors.append(e.message)
        else:
            return render_template("auth/check_inbox.html", address=accounts.normalise_email(form.email.data),
                                   reset=True)
    return render_template("auth/forgot.html", form=form), (200 if not form.errors else 400)


@bp.route("/reset/<token>", methods=["GET", "POST"])
@limiter.limit("30/hour", methods=["POST"])
def reset_password(token: str):
    try:
        user = accounts.check_reset_token(token, current_user)
    except accounts.TokenProblem as e:
        return _token_page("auth/link_problem.html", e.status, message=e.message, what="reset")
    form = ResetPasswordForm()
    if form.validate_on_submit():
        try:
            user = accounts.reset_password(token, form.password.data, current_user)
        except accounts.TokenProblem as e:
            return _token_page("auth/link_problem.html", e.status, message=e.message, what="reset")
        except ServiceError as e:
            form.password.errors.append(e.message)
        else:
            log.info("password reset by mailed link: user=%s", user.id)
            logout_user()
            flash("Your password is changed and every session was signed out. Sign in with the new password.",
                  "success")
            return redirect(url_for("auth.login"))
    return _token_page("auth/reset.html", 200 if not form.errors else 400, form=form, user=user)


@bp.route("/email", methods=["POST"])
@login_required
@limiter.limit("5/hour")
def change_email():
    """Ask to move the account to a new address: confirmed by a link mailed there."""
    form = EmailChangeForm(prefix="e")
    if form.validate_on_submit():
        try:
            accounts.request_email_change(current_user, form.email.data, form.password.data)
        except ServiceError as e:
            getattr(form, e.field or "email", form.email).errors.append(e.message)
        else:
            flash(f"We sent a link to {accounts.normalise_email(form.email.data)}: follow it to confirm the new "
                  "address. Until then your address stays as it is.", "success")
            return redirect(url_for("auth.account"))
    return render_template("auth/account.html", profile=ProfileForm(prefix="p", display_name=current_user.display_name),
                           pw=PasswordForm(prefix="pw"), email_form=form, resend=ConfirmForm()), 400


@bp.route("/email/<token>", methods=["GET", "POST"])
@limiter.limit("30/hour", methods=["POST"])
def confirm_email_change(token: str):
    try:
        user, new = accounts.check_change_token(token, current_user)
    except accounts.TokenProblem as e:
        return _token_page("auth/link_problem.html", e.status, message=e.message, what="change")
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            user = accounts.confirm_email_change(token, current_user)
        except accounts.TokenProblem as e:
            return _token_page("auth/link_problem.html", e.status, message=e.message, what="change")
        log.info("address changed by mailed link: user=%s", user.id)
        flash(f"Your account now uses {user.email}.", "success")
        return redirect(url_for("auth.account") if current_user.is_authenticated else url_for("auth.login"))
    return _token_page("auth/confirm_email.html", form=form, new=new)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("30/minute", methods=["POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = accounts.authenticate(form.email.data, form.password.data)
        if user is None:
            known = accounts.find_user(form.email.data)
            log.info("sign-in failed: %s", f"wrong password for user={known.id}" if known else "unknown account")
            form.password.errors.append("Wrong e-mail address or password.")
        elif user.is_blocked:
            log.info("sign-in refused: user=%s is %s", user.id, "banned" if user.banned else "suspended")
            form.email.errors.append(
                "This account is banned." if user.banned else
                f"This account is suspended until {format_dt(user.suspended_until, user.timezone)}."
            )
        else:
            login_user(user)
            log.info("sign-in ok: user=%s", user.id)
            flash(f"Signed in as {user.display_name}.", "success")
            return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form), (200 if not form.errors else 400)


@bp.route("/logout", methods=["POST"])
def logout():
    if current_user.is_authenticated:
        log.info("sign-out: user=%s", current_user.id)
    logout_user()
    flash("Signed out.", "info")
    return redirect(url_for("main.index"))


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    profile = ProfileForm(prefix="p", display_name=current_user.display_name)
    pw = PasswordForm(prefix="pw")
    status = 200
    if request.method == "POST":
        if "p-submit" in request.form and profile.validate_on_submit():
            try:
                accounts.change_display_name(current_user, profile.display_name.data)
            except ServiceError as e:
                profile.display_name.errors.append(e.message)
            else:
                flash("Display name saved.", "success")
                return redirect(url_for("auth.account"))
        if "pw-submit" in request.form and pw.validate_on_submit():
            try:
                accounts.change_password(current_user, pw.current.data, pw.password.data)
            except ServiceError as e:
                pw.current.errors.append(e.message)
            else:
                log.info("password changed: user=%s", current_user.id)
                # Keep this session (the others have ended). Pass the real User, not the
                # current_user proxy: Flask-Login would store the proxy as the request's user
                # and resolving it would recurse until the process crashes.
                login_user(current_user._get_current_object())
                flash("Password changed. Other sessions were signed out.", "success")
                return redirect(url_for("auth.account"))
        status = 400
    return render_template("auth/account.html", profile=profile, pw=pw, email_form=EmailChangeForm(prefix="e"),
                           resend=ConfirmForm()), status


@bp.app_template_global("timezone_form")
def timezone_form() -> TimezoneForm:
    """The account page's time zone form (a template global, like the feature panels)."""
    return TimezoneForm(formdata=None, current=current_user.timezone)


@bp.route("/account/timezone", methods=["GET", "POST"])
@login_required
def account_timezone():
    form = TimezoneForm(current=current_user.timezone)
    if form.validate_on_submit():
        try:
            accounts.set_timezone(current_user, form.timezone.data)
        except ServiceError as e:
            form.timezone.errors.append(e.message)
        else:
            flash(f"Time zone saved: times are now shown in {form.timezone.data}.", "success")
            return redirect(url_for("auth.account"))
    return render_template("auth/timezone.html", form=form), (400 if form.errors else 200)
