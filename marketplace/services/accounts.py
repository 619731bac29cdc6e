"""Account writes."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from .. import audit, email_address
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


def create_user(email: str, display_name: str, password: str, site_role: str = SiteRole.USER.value,
                actor_id: int | None = None) -> User:
    display_name = (display_name or "").strip()
    if site_role not in SiteRole.values():
        raise ServiceError(f"Unknown role {site_role!r}.", field="role")
    # The forms check these too; the service checks again for the CLI and other callers.
    try:
        email = email_address.check(email)
    except email_address.InvalidEmail as e:
        raise ServiceError(str(e), field="email") from None
    if not 2 <= len(display_name) <= 80:
        raise ServiceError("The display name needs 2 to 80 characters.", field="display_name")
    check_password_rules(password)
    if find_user(email) is not None:
        raise ServiceError("An account with this e-mail address already exists.", 409, field="email")
    user = User(email=email, display_name=display_name, password_hash=hash_password(password),
                site_role=site_role)
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


def set_site_role(user: User, role: str, actor_id: int | None = None) -> None:
    if role not in SiteRole.values():
        raise ServiceError(f"Unknown role {role!r}; use one of {', '.join(SiteRole.values())}.")
    old = user.site_role
    user.site_role = role
    audit.record("role.changed", "user", user.id, actor_id=actor_id, data={"from": old, "to": role})
    db.session.commit()
