"""Sign-up, sign-in, sign-out and account pages.

Sign-ins are logged (logger `marketplace.auth`): successes with the user id, failures with
the user id when the address belongs to an account. The typed address is never logged
(people paste their password into it), nor, of course, the password.

Sessions are server-side (marketplace/auth_loader.py): signing in begins a new one, signing
out revokes it, changing the password ends every other one, and the account page lists the
live ones with a button to end all but this one.
"""
from __future__ import annotations

import logging

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..auth_loader import current_session, end_session, start_session
from ..extensions import limiter
from ..params import safe_next
from ..ratelimit import client_address, limit_for, signin_account
from ..services import accounts
from ..services import sessions as sessions_svc
from ..services.common import ServiceError
from . import bp
from .forms import LoginForm, OtherSessionsForm, PasswordForm, ProfileForm, RegisterForm

log = logging.getLogger("marketplace.auth")


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit(limit_for("register_per_address"), key_func=client_address, methods=["POST"])
def register():
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            user = accounts.create_user(form.email.data, form.display_name.data, form.password.data)
        except ServiceError as e:
            getattr(form, e.field or "email", form.email).errors.append(e.message)
        else:
            start_session(user)
            log.info("account created and signed in: user=%s", user.id)
            flash("Welcome! Your account is ready.", "success")
            return redirect(safe_next(request.args.get("next")))
    return render_template("auth/register.html", form=form), (200 if not form.errors else 400)


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
                f"This account is suspended until {user.suspended_until:%Y-%m-%d %H:%M} UTC."
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
            n = sessions_svc.end_others(current_user._get_current_object(), current_session())
            log.info("other sessions ended: user=%s count=%s", current_user.id, n)
            flash("Signed out of every other session." if n else "There was no other session.", "success")
            return redirect(url_for("auth.account"))
        status = 400
    live = sessions_svc.live_sessions(current_user._get_current_object())
    return render_template("auth/account.html", profile=profile, pw=pw, others=others, sessions=live,
                           this_session=current_session()), status
