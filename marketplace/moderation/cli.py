"""Commands: `flask moderation digest`, `flask audit verify`, `flask audit head`."""
from __future__ import annotations

import re
import sys

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from .. import audit
from ..extensions import db
from ..models import AuditEvent

HASH_RE = re.compile(r"^[0-9a-f]{64}$")
moderation_cli = AppGroup("moderation", help="Moderation: the daily digest for moderators.")
audit_cli = AppGroup("audit", help="The tamper-evident audit trail.")


@moderation_cli.command("digest")
def digest() -> None:
    """Mail every moderator what waits for them (run daily, e.g. from cron).

    Links point at the configured address (SERVER_NAME, PREFERRED_URL_SCHEME). Running it
    again on the same (UTC) day queues nothing new.
    """
    from ..services.moderation import send_digest
    from ..urls import DEV_SERVER_NAME, external_base_configured, external_url

    if not external_base_configured():
        click.echo(f"Note: SERVER_NAME is not set, so the links point at {external_url('moderation.queue')} "
                   f"(`make run`'s address {DEV_SERVER_NAME}); set SERVER_NAME and PREFERRED_URL_SCHEME=https "
                   "to the public address of the site.", err=True)
    sent, already = send_digest()
    click.echo(f"Queued {sent} digest mail(s)."
               + (f" {already} moderator(s) already had today's digest." if already else ""))


def _sha256_hex(ctx, param, value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if not HASH_RE.match(value):
        raise click.BadParameter("a chain hash is 64 hexadecimal characters (as `flask audit head` prints).")
    return value


@audit_cli.command("verify")
@click.option("--pinned", default=None, metavar="HASH", callback=_sha256_hex,
              help="A head hash published earlier: fail unless it is still in the chain.")
def verify(pinned: str | None) -> None:
    """Walk the hash chain; exit 1 naming the first row altered, removed or reordered."""
    result = audit.verify_chain()
    if not result.ok:
        click.echo(f"FAILED after {result.checked} row(s): {result.problem}", err=True)
        sys.exit(1)
    if pinned:
        found = db.session.execute(select(AuditEvent.id).where(AuditEvent.hash == pinned)).scalar()
        if found is None and pinned != audit.GENESIS:
            # The chain cannot tell a hash it never had from one whose rows were cut off or
            # rewritten: say both, so the reader checks which.
            click.echo(f"FAILED: unknown hash {pinned}: no row of the chain has it. Either it was never "
                       "a head of this chain (check the copy), or it is no longer in the chain "
                       "(rows up to it were removed or rewritten).", err=True)
            sys.exit(1)
        click.echo(f"Pinned head found at row {found}." if found else "Pinned head is the empty chain's.")
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
