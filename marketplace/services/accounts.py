"""Account writes."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from .. import audit, email_address, timezones
from ..extensions import db
from ..models import SiteRole, User
from ..security import hash_password, needs_rehash, verify_password
from . import sessions
from .common import ServiceError


PASSWORD_MIN, PASSWORD_MAX = 10, 200


def normalise_email(email: str) -> str:
    return email_address.normalise(email)


def check_password_rules(password: str | None) -> None:
    if not PASSWORD_MIN <= len(password or "") <= PASSWORD_MAX:
        raise ServiceError(f"The password needs {PASSWORD_MIN} to {PASSWORD_MAX} characters.", field="password")


def find_user(email: str) -> User | None:
    return db.session.execute(
        select(User).where(func.lower(User.email) == normalise_email(email))
    ).scalar_one_or_none()


def _checked_new_account(email: str, display_name: str, password: str,
                         timezone: str | None) -> tuple[str, str]:
    """What a new account's creator typed, checked (ServiceError naming the field): the
    normalised e-mail address and the stripped display name. The forms check these too; the
    services check again for the CLI and other callers."""
    display_name = (display_name or "").strip()
    if timezone is not None and not timezones.is_valid_zone(timezone):
        raise ServiceError(f"Unknown time zone {str(timezone)[:64]!r}; use an IANA name such as Europe/Paris.",
                           field="timezone")
    try:
        email = email_address.check(email)
    except email_address.InvalidEmail as e:
        raise ServiceError(str(e), field="email") from None
    if not 2 <= len(display_name) <= 80:
        raise ServiceError("The display name needs 2 to 80 characters.", field="display_name")
    check_password_rules(password)
    return email, display_name


def create_user(email: str, display_name: str, password: str, site_role: str = SiteRole.USER.value,
                actor_id: int | None = None, timezone: str | None = None) -> User:
    """A new account; `timezone` (an IANA name) defaults to the site's."""
    if site_role not in SiteRole.values():
        raise ServiceError(f"Unknown role {site_role!r}.", field="role")
    email, display_name = _checked_new_account(email, display_name, password, timezone)
    if find_user(email) is not None:
        raise ServiceError("An account with this e-mail address already exists.", 409, field="email")
    user = User(email=email, display_name=display_name, password_hash=hash_password(password),
                site_role=site_role, timezone=timezone or timezones.site_default())
    db.session.add(user)
    try:
        db.session.flush()
        if site_role != SiteRole.USER.value:
            audit.record("role.granted", "user", user.id, actor_id=actor_id, data={"role": site_role})
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ServiceError("An account with this e-mail address already exists.", 409, field="email")
    return user


def authenticate(email: str, password: str) -> User | None:
    user = find_user(email)
    if not verify_password(user.password_hash if user else None, password):
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        db.session.commit()
    return user


def change_password(user: User, current: str, new: str) -> None:
    if not verify_password(user.password_hash, current):
        raise ServiceError("Your current password is not correct.", field="current")
    user.password_hash = hash_password(new)
    sessions.end_all(user, "password changed")  # the caller begins a new one for this browser
    db.session.commit()


def end_other_sessions(user: User, password: str, current) -> int:
    """"Sign out other sessions" from the account page: only with the current password typed
    again. Ends every session of `user` but `current`; returns how many ended. Commits."""
    if not verify_password(user.password_hash, password):
        raise ServiceError("Your current password is not correct.", field="password")
    return sessions.end_others(user, current)


def end_sessions(user: User | None, actor_id: int | None = None) -> int:
    """An operator ends every session of one account (`user`) or, with `user=None`, of every
    account (`flask users end-sessions`, ASVS 7.4.5). Leaves a governance event with the
    count; returns how many live sessions ended. Commits."""
    if user is None:
        n = sessions.end_every_account("ended by an operator")
        audit.record("sessions.ended_all", "site", None, actor_id=actor_id, data={"count": n})
    else:
        n = sessions.end_all(user, "ended by an operator")
        audit.record("sessions.ended", "user", user.id, actor_id=actor_id, data={"count": n})
    db.session.commit()
    return n


def set_password(user: User, new: str, actor_id: int | None = None) -> None:
    """Set a password without knowing the old one (an operator's reset, `flask users
    set-password`): ends every session of the account and leaves a governance event."""
    check_password_rules(new)
    user.password_hash = hash_password(new)
    sessions.end_all(user, "password reset")
    audit.record("password.reset", "user", user.id, actor_id=actor_id)
    db.session.commit()


def list_users(role: str | None = None) -> list[User]:
    q = select(User).order_by(User.id)
    if role is not None:
        q = q.where(User.site_role == role)
    return list(db.session.execute(q).scalars())


def change_display_name(user: User, name: str) -> None:
    name = (name or "").strip()
    if not 2 <= len(name) <= 80:
        raise ServiceError("The display name needs 2 to 80 characters.", field="display_name")
    user.display_name = name
    db.session.commit()


def set_timezone(user: User, name: str) -> None:
    """The zone every time is shown to this person in (an IANA name zoneinfo knows)."""
    name = (name or "").strip()
    if not timezones.is_valid_zone(name):
        raise ServiceError("Choose a time zone from the list (an IANA name such as Europe/Paris).",
                           field="timezone")
    user.timezone = name
    db.session.commit()


def set_site_role(user: User, role: str, actor_id: int | None = None) -> None:
    if role not in SiteRole.values():
        raise ServiceError(f"Unknown role {role!r}; use one of {', '.join(SiteRole.values())}.")
    old = user.site_role
    user.site_role = role
    audit.record("role.changed", "user", user.id, actor_id=actor_id, data={"from": old, "to": role})
    db.session.commit()


# --------------------------------------------------------------------------- addresses and tokens
#
# Links mailed for the account are signed (itsdangerous, one salt per purpose) and carry
# what makes them single-use: a verification link names the address it verifies (a changed
# address voids it; using it twice changes nothing), a reset link a fingerprint of the
# current password hash (a new password voids it), a change link the old address. None is
# stored. Every message says the same to the person asking, whether or not the address has
# an account: the mail to the address carries the difference to its owner.

VERIFY_MAX_AGE = 7 * 24 * 3600
RESET_MAX_AGE = 3600
CHANGE_MAX_AGE = 24 * 3600


class TokenProblem(ServiceError):
    """A mailed link that cannot be used (invalid, expired, used, or for another account)."""


def _serializer(purpose: str):
    from flask import current_app
    from itsdangerous import URLSafeTimedSerializer

    cfg = current_app.config
    keys = [*(cfg.get("SECRET_KEY_FALLBACKS") or []), cfg["SECRET_KEY"]]  # the newest signs
    return URLSafeTimedSerializer(keys, salt=f"accounts.{purpose}")


def _load(purpose: str, token: str, max_age: int) -> dict:
    from itsdangerous import BadSignature, SignatureExpired

    if not token or len(token) > 1000:
        raise TokenProblem("This link is not valid. Check that you copied the whole link.", 404)
    try:
        data = _serializer(purpose).loads(token, max_age=max_age)
    except SignatureExpired:
        raise TokenProblem("This link has expired.", 410) from None
    except BadSignature:
        raise TokenProblem("This link is not valid. Check that you copied the whole link.", 404) from None
    if not isinstance(data, dict) or not isinstance(data.get("u"), int):
        raise TokenProblem("This link is not valid. Check that you copied the whole link.", 404)
    return data


def _mask(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}•••@{domain}"


def _password_fingerprint(user: User) -> str:
    import hashlib

    return hashlib.sha256(f"{user.id}:{user.password_hash}".encode()).hexdigest()[:24]


def _another_account(user: User, current) -> bool:
    return bool(getattr(current, "is_authenticated", False)) and current.id != user.id


def queue_verification(user: User) -> None:
    """Mail a link that verifies the account's current address (the caller commits)."""
    from ..mail.outbox import link, queue

    token = _serializer("verify").dumps({"u": user.id, "e": user.email})
    queue(user, "verify", "Confirm your e-mail address", kind="account.verify", secret=True,
          context={"user": user, "url": link("auth.verify_email", token=token), "days": VERIFY_MAX_AGE // 86400})


def register(email: str, display_name: str, password: str, *, proven_email: str | None = None,
             timezone: str | None = None) -> User | None:
    """Sign-up that answers the same whether or not the address has an account.

    A new address: the account is created (unverified, unless `proven_email` is this
    address, i.e. it came from a link mailed there) and a verification link is mailed. An
    address with an account: nothing is created; its owner is mailed that someone tried to
    register with it. Returns the new user, or None. Refusals (ServiceError) concern only
    what was typed, never whether the address is known. `timezone`: an IANA name (the site's
    default when None).
    """
    from ..mail.outbox import link, queue

    email, display_name = _checked_new_account(email, display_name, password, timezone)
    # Hashed either way: the time taken does not tell whether the address is known.
    password_hash = hash_password(password)
    existing = find_user(email)
    if existing is None:
        user = User(email=email, display_name=display_name, password_hash=password_hash,
                    site_role=SiteRole.USER.value)
        if timezone is not None:
            user.timezone = timezone
        if proven_email is not None and normalise_email(proven_email) == email:
            from ..models import utcnow
            user.email_verified_at = utcnow()
        db.session.add(user)
        try:
            db.session.flush()
        except IntegrityError:  # registered in a parallel request: treat as known
            db.session.rollback()
            existing = find_user(email)
        else:
            if user.email_verified_at is None:
                queue_verification(user)
            db.session.commit()
            return user
    if existing is not None:
        queue(existing, "register_existing", "Someone tried to register with your address", kind="account.exists",
              context={"user": existing, "login_url": link("auth.login"), "reset_url": link("auth.forgot_password")})
        db.session.commit()
    return None


def verify_email(token: str, current=None) -> User:
    """Mark the address in the link verified. Idempotent; refuses a link for another account
    (while signed in as someone else) or for an address the account no longer has."""
    from ..models import utcnow

    data = _load("verify", token, VERIFY_MAX_AGE)
    user = db.session.get(User, data["u"])
    if user is None:
        raise TokenProblem("This link is not valid. Check that you copied the whole link.", 404)
    if _another_account(user, current):
        raise TokenProblem("This link confirms the address of another account. Sign out first, or open it "
                           "in the browser where you use that account.", 403)
    if normalise_email(str(data.get("e", ""))) != normalise_email(user.email):
        raise TokenProblem("This link was for an address the account no longer uses.", 410)
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
        db.session.commit()
    return user


def request_password_reset(email: str) -> None:
    """Mail a reset link to the address's account, or, to an address without one, a note
    saying so; the person asking is told the same either way."""
    from ..mail.outbox import link, queue

    try:
        email = email_address.check(email)
    except email_address.InvalidEmail as e:
        raise ServiceError(str(e), field="email") from None
    user = find_user(email)
    if user is None:
        queue(email, "reset_unknown", "Password reset requested", kind="account.reset_unknown",
              context={"register_url": link("auth.register")})
    else:
        token = _serializer("reset").dumps({"u": user.id, "p": _password_fingerprint(user)})
        queue(user, "reset", "Reset your password", kind="account.reset", secret=True,
              context={"user": user, "url": link("auth.reset_password", token=token),
                       "minutes": RESET_MAX_AGE // 60})
    db.session.commit()


def check_reset_token(token: str, current=None) -> User:
    data = _load("reset", token, RESET_MAX_AGE)
    user = db.session.get(User, data["u"])
    if user is None or data.get("p") != _password_fingerprint(user):
        raise TokenProblem("This link was already used, or the password changed since it was sent. "
                           "Ask for a new one.", 410)
    if _another_account(user, current):
        raise TokenProblem("This link resets the password of another account. Sign out first.", 403)
    return user


def reset_password(token: str, new: str, current=None) -> User:
    """Set a new password from a reset link: single use (the link names the old password),
    ends every session of the account, and proves the address (so verifies it)."""
    from ..models import utcnow

    user = check_reset_token(token, current)
    check_password_rules(new)
    user.password_hash = hash_password(new)
    sessions.end_all(user, "password reset by link")  # every session, the caller's too
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
    audit.record("password.reset", "user", user.id, actor_id=user.id, data={"by": "mailed link"})
    db.session.commit()
    return user


def request_email_change(user: User, new_email: str, password: str) -> None:
    """Mail a confirmation link to the new address (or, if it has an account, a note to it
    that nothing changed); the account holder is told the same either way."""
    from ..mail.outbox import link, queue

    if not verify_password(user.password_hash, password or ""):
        raise ServiceError("Your current password is not correct.", field="password")
    try:
        new_email = email_address.check(new_email)
    except email_address.InvalidEmail as e:
        raise ServiceError(str(e), field="email") from None
    if new_email == normalise_email(user.email):
        raise ServiceError("That is already your address.", field="email")
    if find_user(new_email) is not None:
        queue(new_email, "email_taken", "Request to move an account to this address", kind="account.email_taken",
              context={"login_url": link("auth.login")})
    else:
        token = _serializer("change").dumps({"u": user.id, "o": user.email, "n": new_email})
        queue(new_email, "change_email", "Confirm your new e-mail address", kind="account.change_email", secret=True,
              context={"user": user, "url": link("auth.confirm_email_change", token=token),
                       "hours": CHANGE_MAX_AGE // 3600})
    db.session.commit()


def check_change_token(token: str, current=None) -> tuple[User, str]:
    data = _load("change", token, CHANGE_MAX_AGE)
    user = db.session.get(User, data["u"])
    if user is None or normalise_email(str(data.get("o", ""))) != normalise_email(user.email):
        raise TokenProblem("This link was already used, or the account's address changed since it was sent.", 410)
    if _another_account(user, current):
        raise TokenProblem("This link changes the address of another account. Sign out first.", 403)
    return user, normalise_email(str(data.get("n", "")))


def confirm_email_change(token: str, current=None) -> User:
    """Move the account to the new address (verified by this very link); the old address is
    told, with no link in the note."""
    from ..mail.outbox import link, queue
    from ..models import utcnow

    user, new = check_change_token(token, current)
    old = user.email
    if find_user(new) is not None:
        raise TokenProblem("Another account uses this address now, so it cannot be moved here.", 409)
    user.email = new
    user.email_verified_at = utcnow()
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise TokenProblem("Another account uses this address now, so it cannot be moved here.", 409) from None
    audit.record("email.changed", "user", user.id, actor_id=user.id,
                 data={"from_domain": old.rsplit("@", 1)[-1], "to_domain": new.rsplit("@", 1)[-1]})
    queue(old, "email_changed", "Your e-mail address was changed", kind="account.email_changed",
          context={"new_masked": _mask(new), "reset_url": link("auth.forgot_password")})
    db.session.commit()
    return user
