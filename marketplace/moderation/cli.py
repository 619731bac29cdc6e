"""Commands: `flask moderation digest`, `flask audit verify`, `flask audit head`."""
from __future__ import annotations

import sys

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from .. import audit
from ..extensions import db
from ..models import AuditEvent

moderation_cli = AppGroup("moderation", help="Moderation: the daily digest for moderators.")
audit_cli = AppGroup("audit", help="The tamper-evident audit trail.")


@moderation_cli.command("digest")
@click.option("--base-url", default=None, help="Site address used in the mailed links (default: SERVER_NAME).")
def digest(base_url: str | None) -> None:
    """Mail every moderator what waits for them (run daily, e.g. from cron)."""
    from ..services.moderation import send_digest

    n = send_digest(base_url)
    click.echo(f"Queued {n} digest mail(s).")


@audit_cli.command("verify")
@click.option("--pinned", default=None, metavar="HASH",
              help="A head hash published earlier: fail unless it is still in the chain.")
def verify(pinned: str | None) -> None:
    """Walk the hash chain; exit 1 naming the first row altered, removed or reordered."""
    result = audit.verify_chain()
    if not result.ok:
        click.echo(f"FAILED after {result.checked} row(s): {result.problem}", err=True)
        sys.exit(1)
    if pinned:
        found = db.session.execute(select(AuditEvent.id).where(AuditEvent.hash == pinned.strip().lower())).scalar()
        if found is None:
            click.echo(f"FAILED: the pinned head {pinned} is no longer in the chain "
                       "(rows up to it were removed or rewritten).", err=True)
            sys.exit(1)
        click.echo(f"Pinned head found at row {found}.")
    click.echo(f"OK: {result.checked} row(s) verified; head {result.head}")


@audit_cli.command("head")
def head() -> None:
    """Print the current chain head (hash, row id, row count, time) to pin it elsewhere."""
    last = audit.head()
    count = db.session.execute(select(func.count(AuditEvent.id))).scalar_one()
    if last is None:
        click.echo(f"hash {audit.GENESIS}\nrows 0")
        return
    click.echo(f"hash {last.hash}\nrow {last.id}\nrows {count}\ntime {last.created_at.isoformat()}")
