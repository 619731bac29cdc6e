"""Sign-up, sign-in and account pages.

Sign-ins are logged (logger `marketplace.auth`): successes with the user id, failures with
the user id when the address belongs to an account. The typed address is never logged
(people paste their password into it), nor, of course, the password.
"""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from ..extensions import limiter
from ..services import accounts
from ..services.common import ServiceError
from .. import timezones
from ..timezones import format_dt
from . import bp
from .forms import LoginForm, PasswordForm, ProfileForm, RegisterForm, TimezoneForm

log = logging.getLogger("marketplace.auth")


def _safe_next(target: str | None) -> str:
    if not target:
        return url_for("main.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("main.index")
    return target


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit("20/hour", methods=["POST"])
def register():
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            user = accounts.create_user(form.email.data, form.display_name.data, form.password.data,
                                        timezone=timezones.clean_zone(form.timezone.data))
        except ServiceError as e:
            getattr(form, e.field or "email", form.email).errors.append(e.message)
        else:
            login_user(user)
            log.info("account created and signed in: user=%s", user.id)
            flash("Welcome! Your account is ready.", "success")
            return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/register.html", form=form), (200 if not form.errors else 400)


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
    return render_template("auth/account.html", profile=profile, pw=pw), status


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
