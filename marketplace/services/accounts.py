"""Account writes."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from .. import audit
from ..extensions import db
from ..models import SiteRole, User
from ..security import hash_password, needs_rehash, verify_password
from .common import ServiceError


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


def find_user(email: str) -> User | None:
    return db.session.execute(
        select(User).where(func.lower(User.email) == normalise_email(email))
    ).scalar_one_or_none()


def create_user(email: str, display_name: str, password: str, site_role: str = SiteRole.USER.value,
                actor_id: int | None = None) -> User:
    email = normalise_email(email)
    display_name = (display_name or "").strip()
    if site_role not in SiteRole.values():
        raise ServiceError(f"Unknown role {site_role!r}.", field="role")
    # The forms check these too; the service checks again for the CLI and other callers.
    if "@" not in email or len(email) > 254:
        raise ServiceError("Enter a valid e-mail address (at most 254 characters).", field="email")
    if not 2 <= len(display_name) <= 80:
        raise ServiceError("The display name needs 2 to 80 characters.", field="display_name")
    if not 10 <= len(password or "") <= 200:
        raise ServiceError("The password needs 10 to 200 characters.", field="password")
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
    user.session_version = (user.session_version or 1) + 1  # end other sessions
    db.session.commit()


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
