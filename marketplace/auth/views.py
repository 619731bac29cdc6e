"""Sign-up, sign-in, sign-out and account pages.

Sign-ins are logged (logger `marketplace.auth`): successes with the user id, failures with
the user id when the address belongs to an account. The typed address is never logged
(people paste their password into it), nor, of course, the password.

Sessions are server-side (marketplace/auth_loader.py): signing in begins a new one, signing
out revokes it, changing the password ends every other one, resetting it by a mailed link
ends every one, and the account page lists the live ones with a button to end all but this
one. Rate limits are named in marketplace/ratelimit.py (DEFAULTS); `next=` targets go
through params.safe_next.
"""
from __future__ import annotations

import logging

from flask import abort, current_app, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.exceptions import HTTPException

from ..auth_loader import current_session, end_session, start_session
from ..extensions import limiter
from ..params import is_safe_next, safe_next
from ..ratelimit import (
    account_or_address,
    client_address,
    limit_for,
    no_mail_possible,
    signin_account,
    typed_mailbox,
)
from ..services import accounts
from ..services import sessions as sessions_svc
from ..services.common import ServiceError
from .. import timezones
from ..timezones import format_dt
from . import bp
from .forms import (
    ConfirmForm,
    EmailChangeForm,
    ForgotPasswordForm,
    LoginForm,
    OtherSessionsForm,
    PasswordForm,
    ProfileForm,
    RegisterForm,
    ResetPasswordForm,
    TimezoneForm,
)

log = logging.getLogger("marketplace.auth")


# Address proofs: pages a mailed invitation link leads to. Registering from one with the
# invited address needs no verification mail (the link was mailed there). Features add
# (endpoint, function(view_args) -> the invited address or None).
ADDRESS_PROOFS: dict[str, object] = {}


def _address_proof(target: str | None) -> str | None:
    """The address a `next` link proves, when it is a valid invitation link."""
    if not is_safe_next(target):
        return None
    try:
        endpoint, args = current_app.url_map.bind("localhost").match(target.split("?", 1)[0])
    except HTTPException:
        return None
    fn = ADDRESS_PROOFS.get(endpoint)
    return fn(args) if fn else None


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit(limit_for("register_per_address"), key_func=client_address, methods=["POST"])
@limiter.limit(limit_for("register_per_mailbox"), methods=["POST"], key_func=typed_mailbox,
               exempt_when=no_mail_possible)
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
                start_session(user)
                log.info("account created from an invitation and signed in: user=%s", user.id)
                flash("Welcome! Your account is ready and your address is confirmed.", "success")
                return redirect(safe_next(target))
            if proven:  # the link proves the mailbox, so saying this tells its owner only
                flash("This address already has an account: sign in to continue.", "info")
                return redirect(url_for("auth.login", next=safe_next(target)))
            if user is not None:
                log.info("account created: user=%s", user.id)
            return render_template("auth/check_inbox.html", address=accounts.normalise_email(form.email.data),
                                   next=target if is_safe_next(target) else None)
    return render_template("auth/register.html", form=form, proof=proof), (200 if not form.errors else 400)


def _token_page(template: str, status: int = 200, **ctx):
    """Pages behind mailed links: never cached, never sent on as a referrer."""
    resp = make_response(render_template(template, **ctx), status)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


@bp.route("/verify/<token>")
@limiter.limit(limit_for("account_links"), key_func=client_address)
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
@limiter.limit(limit_for("verification_resends"), key_func=account_or_address)
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
    return redirect(safe_next(request.args.get("next"), url_for("auth.account")))


@bp.route("/reset", methods=["GET", "POST"])
@limiter.limit(limit_for("reset_per_address"), key_func=client_address, methods=["POST"])
@limiter.limit(limit_for("reset_per_mailbox"), methods=["POST"], key_func=typed_mailbox,
               exempt_when=no_mail_possible)
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
@limiter.limit(limit_for("account_link_posts"), key_func=client_address, methods=["POST"])
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
            # The service ended every session of the account (server-side); this browser's
            # too, if it was signed in to it: sign it out here as well.
            end_session("password reset")
            flash("Your password is changed and every session was signed out. Sign in with the new password.",
                  "success")
            return redirect(url_for("auth.login"))
    return _token_page("auth/reset.html", 200 if not form.errors else 400, form=form, user=user)


@bp.route("/email", methods=["POST"])
@login_required
@limiter.limit(limit_for("email_changes"), key_func=account_or_address)
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
    return _account_page(400, email_form=form)


@bp.route("/email/<token>", methods=["GET", "POST"])
@limiter.limit(limit_for("account_link_posts"), key_func=client_address, methods=["POST"])
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
@limiter.limit(limit_for("signin_per_address"), key_func=client_address, methods=["POST"])
@limiter.limit(limit_for("signin_per_account"), key_func=signin_account, methods=["POST"],
               error_message="Too many sign-in attempts for this account; please wait before trying again.")
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
            start_session(user, remember=bool(form.remember.data))
            log.info("sign-in ok: user=%s", user.id)
            flash(f"Signed in as {user.display_name}.", "success")
            return redirect(safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form), (200 if not form.errors else 400)


@bp.route("/logout", methods=["POST"])
def logout():
    if current_user.is_authenticated:
        log.info("sign-out: user=%s", current_user.id)
    end_session("signed out")
    flash("Signed out.", "info")
    return redirect(url_for("main.index"))


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    profile = ProfileForm(prefix="p", display_name=current_user.display_name)
    pw = PasswordForm(prefix="pw")
    others = OtherSessionsForm(prefix="s")
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
            user = current_user._get_current_object()
            remember = bool(getattr(current_session(), "remember", False))
            try:
                accounts.change_password(user, pw.current.data, pw.password.data)
            except ServiceError as e:
                pw.current.errors.append(e.message)
            else:
                log.info("password changed: user=%s", user.id)
                # Every session ended, this one included; go on under a new session id.
                # Pass the real User, not the current_user proxy: Flask-Login would store the
                # proxy as the request's user and resolving it would recurse until the
                # process crashes.
                start_session(user, remember=remember)
                flash("Password changed. Other sessions were signed out.", "success")
                return redirect(url_for("auth.account"))
        if "s-submit" in request.form and others.validate_on_submit():
            try:
                n = accounts.end_other_sessions(current_user._get_current_object(), others.password.data,
                                                current_session())
            except ServiceError as e:
                log.info("other sessions not ended (wrong password): user=%s", current_user.id)
                others.password.errors.append(e.message)
            else:
                log.info("other sessions ended: user=%s count=%s", current_user.id, n)
                flash("Signed out of every other session." if n else "There was no other session.", "success")
                return redirect(url_for("auth.account"))
        status = 400
    return _account_page(status, profile=profile, pw=pw, others=others)


def _account_page(status: int, **forms):
    """The account page: profile, password, address, time zone and the live sessions."""
    forms.setdefault("profile", ProfileForm(prefix="p", display_name=current_user.display_name))
    forms.setdefault("pw", PasswordForm(prefix="pw"))
    forms.setdefault("others", OtherSessionsForm(prefix="s"))
    forms.setdefault("email_form", EmailChangeForm(prefix="e"))
    live = sessions_svc.live_sessions(current_user._get_current_object())
    return render_template("auth/account.html", resend=ConfirmForm(), sessions=live,
                           this_session=current_session(), **forms), status


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
