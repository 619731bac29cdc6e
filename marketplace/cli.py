"""Flask CLI commands: demo data, users, organisations, receipt keys (help text from the
docstrings). Text arguments go through `CleanText` (marketplace/textclean.py)."""
from __future__ import annotations

import os
import sys
from contextlib import nullcontext

import click
from flask import Flask, has_app_context
from flask.cli import AppGroup, ScriptInfo, with_appcontext
from sqlalchemy import select

from . import email_address, receipt_keys
from .extensions import db
from .models import OrgKind, SiteRole, User
from .services import accounts, orgs as org_svc
from .services.common import ServiceError
from .textclean import CLEAN_TEXT

users_cli = AppGroup("users", help="Manage accounts.")
orgs_cli = AppGroup("orgs", help="Manage organisations.")
demo_cli = AppGroup("demo", help="Demo data.")
keys_cli = AppGroup("keys", help="The Ed25519 keys that sign terms acceptance receipts.")


def _fail(msg: str) -> None:
    click.echo(f"Error: {msg}", err=True)
    sys.exit(1)


def _valid_email(ctx, param, value: str) -> str:
    # Checked before any password prompt: nobody types a password for an address refused after.
    try:
        return email_address.check(value)
    except email_address.InvalidEmail as e:
        _fail(f"{value!r} is not an e-mail address: {e.reason}")


def _password_option(help_text: str):
    # Prompted (hidden, typed twice) when not given: a password on the command line ends up
    # in the shell history and in `ps`.
    return click.option("--password", prompt="Password", hide_input=True, confirmation_prompt=True,
                        help=help_text + " Asked for (hidden, twice) when not given.")


def _check_password(password: str) -> None:
    if len(password) < accounts.PASSWORD_MIN:
        _fail(f"the password needs at least {accounts.PASSWORD_MIN} characters")


@users_cli.command("create")
@click.argument("email", callback=_valid_email)
@click.option("--name", required=True, type=CLEAN_TEXT, help="Display name.")
@_password_option("At least 10 characters.")
@click.option("--role", type=click.Choice([r.value for r in SiteRole if r != SiteRole.USER] + ["user"]),
              default="user", show_default=True, help="Site role.")
def users_create(email: str, name: str, password: str, role: str) -> None:
    """Create an account (optionally a moderator or site admin)."""
    _check_password(password)
    try:
        user = accounts.create_user(email, name, password, role)
    except ServiceError as e:
        _fail(e.message)
    click.echo(f"Created user {user.id} <{user.email}> with role {user.site_role}.")


def _existing_account(ctx: click.Context, param, value: str) -> str:
    # Parameters are parsed before the command's app context exists (FlaskGroup pushes one,
    # the test runner's AppGroup does not): use the app's own context for the look-up.
    app_ctx = nullcontext() if has_app_context() else ctx.ensure_object(ScriptInfo).load_app().app_context()
    with app_ctx:
        if accounts.find_user(value) is None:  # said before the password prompt
            _fail(f"no account with e-mail {value}")
    return value


@users_cli.command("set-password")
@click.argument("email", callback=_existing_account)
@_password_option("The new password, at least 10 characters.")
def users_set_password(email: str, password: str) -> None:
    """Reset an account's password (signs the account out everywhere)."""
    user = accounts.find_user(email)
    if user is None:
        _fail(f"no account with e-mail {email}")
    _check_password(password)
    try:
        accounts.set_password(user, password)
    except ServiceError as e:
        _fail(e.message)
    click.echo(f"Password set for {user.email}; every session of this account was signed out.")


@users_cli.command("end-sessions")
@click.argument("email", required=False)
@click.option("--all", "everyone", is_flag=True, help="Every session of every account.")
def users_end_sessions(email: str | None, everyone: bool) -> None:
    """Sign an account (EMAIL) or every account (--all) out everywhere at once."""
    if bool(email) == everyone:
        _fail("name one account (EMAIL) or give --all, not both")
    user = None
    if email:
        user = accounts.find_user(email)
        if user is None:
            _fail(f"no account with e-mail {email}")
    n = accounts.end_sessions(user)
    whom = user.email if user is not None else "every account"
    click.echo(f"Ended {n} session(s) of {whom}; the operator action is in the audit trail.")


@users_cli.command("list")
@click.option("--role", type=click.Choice(SiteRole.values()), default=None, help="Only accounts with this site role.")
def users_list(role: str | None) -> None:
    """List accounts: id, e-mail, site role, state, display name."""
    users = accounts.list_users(role)
    if not users:
        click.echo("No accounts." if role is None else f"No accounts with role {role}.")
        return
    width = max(len(u.email) for u in users)
    for u in users:
        if u.banned:
            state = "banned"
        elif u.is_blocked:
            state = f"suspended until {u.suspended_until:%Y-%m-%d %H:%M} UTC"
        else:
            state = "active"
        click.echo(f"{u.id:>6}  {u.email:<{width}}  {u.site_role:<9}  {state:<8}  {u.display_name}")
    click.echo(f"{len(users)} account(s).")


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
@click.argument("name", type=CLEAN_TEXT)
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


@keys_cli.command("list")
def keys_list() -> None:
    """List the receipt signing keys: the current one and the retired ones kept for verifying."""
    try:
        keys = receipt_keys.public_keys()
    except receipt_keys.ReceiptKeyError as e:
        _fail(str(e))
    if not keys:
        click.echo(f"No receipt key yet (the first receipt creates one in {receipt_keys.keys_dir()}).")
        return
    for k in sorted(keys.values(), key=lambda k: (not k.current, k.kid)):
        click.echo(f"{k.kid}  {'current' if k.current else 'retired'}")
    click.echo("Published at /.well-known/receipt-keys.json")


@keys_cli.command("rotate")
def keys_rotate() -> None:
    """Sign new receipts with a new key; the old key's public half stays published, so the
    receipts it signed still verify, and its private half is deleted."""
    try:
        old, new = receipt_keys.rotate()
    except receipt_keys.ReceiptKeyError as e:
        _fail(str(e))
    if old is None:
        click.echo(f"Created receipt signing key {new} in {receipt_keys.keys_dir()}.")
    else:
        click.echo(f"Rotated: new receipts are signed with {new}. Receipts signed with {old} still verify "
                   "(its public key stays at /.well-known/receipt-keys.json); its private key was deleted.")


@keys_cli.command("generate")
def keys_generate() -> None:
    """Print a new private key as one line for RECEIPT_SIGNING_KEY (stored nowhere)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    click.echo(receipt_keys.one_line(key))
    click.echo(f"key id {receipt_keys.kid_for(key.public_key())}: put the line above in RECEIPT_SIGNING_KEY "
               "and restart; keep it secret.", err=True)


@click.command("worker")
@click.option("--only", "only", multiple=True, metavar="KIND",
              help="Run only this job kind (repeatable): search, mail, webhooks, periodic.")
@click.option("--without", "without", multiple=True, metavar="KIND",
              help="Run every kind but this one (repeatable), e.g. --without search on a host "
                   "that does not hold the Whoosh index.")
@click.option("--once", is_flag=True, help="One pass over every kind, then exit (cron, tests).")
@click.option("--interval", type=click.FloatRange(0.1, 3600), default=2.0, show_default=True,
              help="Seconds to wait when a pass found nothing to do.")
@with_appcontext
def worker_cmd(only: tuple[str, ...], without: tuple[str, ...], once: bool, interval: float) -> None:
    """Run the background jobs: search outbox, mail, webhooks, reminders and digests.

    Safe to run on several hosts at once: each job is claimed by one worker only
    (SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL). The Whoosh search index is written
    by one worker, on the host that holds it: see marketplace/jobs.py and the README."""
    from flask import current_app

    from .jobs import KINDS, Worker

    for name in (*only, *without):
        if name not in KINDS:
            raise click.BadParameter(f"{name!r} is not a job kind; the kinds are: {', '.join(KINDS)}.",
                                     param_hint="--only/--without")
    kinds = [k for k in (only or KINDS) if k not in without]
    if not kinds:
        raise click.UsageError("no job kind left to run.")
    w = Worker(current_app._get_current_object(), kinds, interval=interval)
    if once:
        try:
            got = w.run_once(force=True)
        finally:
            w.close()
        click.echo(", ".join(f"{k}: {v}" for k, v in got.items()))
        if w.failures:
            _fail(f"a round failed for: {', '.join(w.failures)} (see the log)")
        return
    w.install_signal_handlers()
    click.echo(f"worker: running {', '.join(kinds)} (pid {os.getpid()}); SIGTERM or Ctrl-C stops it", err=True)
    w.run_forever()
    click.echo("worker: stopped; jobs done: " + ", ".join(f"{k} {w.done.get(k, 0)}" for k in kinds), err=True)


backup_cli = AppGroup("backup", help="Backups: the database, the uploads and the audit chain head.")


@backup_cli.command("create")
@click.argument("path", type=click.Path(file_okay=False, path_type=str))
def backup_create(path: str) -> None:
    """Copy the database (online, consistent), the uploads and the audit chain head into the
    new folder PATH, with a manifest of row counts and checksums."""
    from .backup import BackupError, create

    try:
        manifest = create(path, progress=lambda m: click.echo(m, err=True))
    except BackupError as e:
        _fail(str(e))
    head = manifest["audit_head"]
    click.echo(f"Backup written to {path}: {sum(manifest['tables'].values())} rows, "
               f"{len(manifest['uploads'])} uploads, audit head {head['hash'] or 'none (empty chain)'}.")


@backup_cli.command("restore")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option("--force", is_flag=True, help="Replace a database and upload store that are not empty.")
def backup_restore(path: str, force: bool) -> None:
    """Restore the backup in PATH into this site's database and upload store, then check it:
    row counts, uploads' checksums, the audit chain and a rebuilt search index. Refuses a
    site that is not empty unless --force."""
    from .backup import BackupError, restore

    try:
        r = restore(path, force=force, progress=lambda m: click.echo(m, err=True))
    except BackupError as e:
        _fail(str(e))
    click.echo(f"Restored {r.rows} rows in {r.tables} tables and {r.uploads} uploads; audit chain verified "
               f"({r.audit_rows} rows, head {r.audit_head}); search index rebuilt and verified "
               f"({r.documents} documents).")


# Feature command groups register here: (AppGroup) objects added by their packages.
EXTRA_COMMANDS: list = []


def init_app(app: Flask) -> None:
    from .mail.cli import mail_cli
    from .search.cli import search_cli

    for group in (users_cli, orgs_cli, demo_cli, keys_cli, search_cli, mail_cli, worker_cmd, backup_cli,
                  *EXTRA_COMMANDS):
        app.cli.add_command(group)
