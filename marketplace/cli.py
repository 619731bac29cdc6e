"""Flask CLI commands: demo data, users, organisations (help text from the docstrings)."""
from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select

from .extensions import db
from .models import OrgKind, SiteRole, User
from .services import accounts, orgs as org_svc
from .services.common import ServiceError

users_cli = AppGroup("users", help="Manage accounts.")
orgs_cli = AppGroup("orgs", help="Manage organisations.")
demo_cli = AppGroup("demo", help="Demo data.")


def _fail(msg: str) -> None:
    click.echo(f"Error: {msg}", err=True)
    sys.exit(1)


@users_cli.command("create")
@click.argument("email")
@click.option("--name", required=True, help="Display name.")
@click.option("--password", required=True, help="At least 10 characters.")
@click.option("--role", type=click.Choice([r.value for r in SiteRole if r != SiteRole.USER] + ["user"]),
              default="user", show_default=True, help="Site role.")
def users_create(email: str, name: str, password: str, role: str) -> None:
    """Create an account (optionally a moderator or site admin)."""
    if len(password) < 10:
        _fail("the password needs at least 10 characters")
    if "@" not in email:
        _fail("that is not an e-mail address")
    try:
        user = accounts.create_user(email, name, password, role)
    except ServiceError as e:
        _fail(e.message)
    click.echo(f"Created user {user.id} <{user.email}> with role {user.site_role}.")


@users_cli.command("set-role")
@click.argument("email")
@click.argument("role", type=click.Choice(SiteRole.values()))
def users_set_role(email: str, role: str) -> None:
    """Grant or remove a site role (user, moderator, admin)."""
    user = accounts.find_user(email)
    if user is None:
        _fail(f"no account with e-mail {email}")
    accounts.set_site_role(user, role)
    click.echo(f"{user.email} is now {role}.")


@orgs_cli.command("create")
@click.argument("name")
@click.option("--kind", type=click.Choice(OrgKind.values()), required=True, help="Kind of organisation.")
@click.option("--owner", "owner_email", required=True, help="E-mail of the owning account.")
def orgs_create(name: str, kind: str, owner_email: str) -> None:
    """Create an organisation owned by an existing account."""
    owner = accounts.find_user(owner_email)
    if owner is None:
        _fail(f"no account with e-mail {owner_email}")
    try:
        org = org_svc.create_org(owner, name, kind)
    except ServiceError as e:
        _fail(e.message)
    click.echo(f"Created organisation {org.id} '{org.name}' ({org.slug}), owner {owner.email}.")


@demo_cli.command("load")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database already has accounts.")
def demo_load(if_empty: bool) -> None:
    """Load demo data (idempotent): every visibility level, org kind and role."""
    from .demo import DEMO_PASSWORD, describe_accounts, load_demo

    if if_empty and db.session.execute(select(User.id).limit(1)).first():
        click.echo("Database already has data; demo load skipped.")
        described = describe_accounts()
    else:
        described = load_demo()
        click.echo("Demo data loaded.")
    if described:
        click.echo(f"Demo accounts (password for all: {DEMO_PASSWORD}):")
        width = max(len(e) for e, _ in described) + 2
        for email, what in described:
            click.echo(f"  {email:{width}}{what}")


# Feature command groups register here: (AppGroup) objects added by their packages.
EXTRA_COMMANDS: list = []


def init_app(app: Flask) -> None:
    from .search.cli import search_cli

    for group in (users_cli, orgs_cli, demo_cli, search_cli, *EXTRA_COMMANDS):
        app.cli.add_command(group)
