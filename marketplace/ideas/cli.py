"""`flask --app app terms ...`: check terms acceptance receipts."""
from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

terms_cli = AppGroup("terms", help="Terms sheets and acceptance receipts.")


@terms_cli.command("verify")
@click.argument("receipt", type=click.Path(dir_okay=False, allow_dash=True))
def verify_cmd(receipt: str) -> None:
    """Verify RECEIPT.json (a terms acceptance receipt; '-' reads standard input).

    Checks the signature, then that the acceptance is on record with the same terms
    version, digest, content hash and time. Exit status 0 when valid, 1 otherwise.
    """
    from ..services.terms import verify_receipt

    try:
        if receipt == "-":
            raw = sys.stdin.read(1_000_000)
        else:
            with open(receipt, "rb") as fh:
                raw = fh.read(1_000_000)
    except OSError as e:
        click.echo(f"Error: cannot read {receipt}: {e.strerror or e}", err=True)
        sys.exit(2)
    result = verify_receipt(raw)
    if result.ok:
        r = result.receipt
        click.echo(f"VALID: acceptance {r['acceptance_id']} of terms version {r['terms_version']} "
                   f"(digest {r['terms_digest']}) for challenge {r['challenge_id']}, "
                   f"recorded {r['accepted_at']}"
                   + (f"; idea {r['idea_id']} revision {r['idea_revision']}, content {r['content_sha256']}"
                      if r.get("idea_id") else "") + ".")
        return
    click.echo("INVALID: " + " ".join(result.problems), err=True)
    sys.exit(1)
