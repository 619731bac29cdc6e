"""A person's own data: downloading it, and deleting the account.

* **Download** (`download_data` on a User): the signed-in person themself, nobody else --
  not an organisation's admins, not site admins: the file holds their sessions,
  notifications and drafts. It holds only rows the person wrote or that are addressed to
  them, each as far as they may see it now (`data_export_shows`): a notification about
  something closed to them since says no more than the notifications page does, and a
  challenge is named only while they may see it.
* **Delete** (`delete_account` on a User): the signed-in person themself (the service asks
  for their password again and refuses while they are the last owner of an organisation).
  A deleted account is blocked for good (`User.is_blocked`), so every rule treats it as
  signed out.
"""
from __future__ import annotations

from typing import Any

from ..models import User
from .core import Viewer, can
from .orgs import USERS


@USERS.action("download_data")
def can_download_data(v: Viewer, user: User) -> bool:
    """Only the person themself downloads their data."""
    return v.is_user(user.id)


@USERS.action("delete_account")
def can_delete_account(v: Viewer, user: User) -> bool:
    """Only the person themself deletes their account (not already deleted)."""
    return v.is_user(user.id) and getattr(user, "deleted_at", None) is None


def data_export_shows(user: Any, obj: Any) -> bool:
    """May the person's download show this object (a challenge or item by its title, an idea
    with its text)? Exactly when they may see it now."""
    return obj is not None and can(user, "view", obj)
