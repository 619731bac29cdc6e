"""`flask mail ...`: send the outbox (once or watching), send a test message, show counts."""
from __future__ import annotations

import signal
import sys
import time

import click
from flask import current_app
from flask.cli import AppGroup

from .. import email_address
from ..extensions import db

mail_cli = AppGroup("mail", help="The mail outbox: send it, test the mail server.")


@mail_cli.command("send-pending")
@click.option("--watch", is_flag=True, help="Keep running: send as mail arrives (for a process supervisor).")
@click.option("--interval", type=click.FloatRange(0.5, 3600), default=5.0, show_default=True,
              help="Seconds between rounds with --watch.")
@click.option("--no-periodic", is_flag=True, help="Only send; skip deadline reminders and digests.")
def send_pending_cmd(watch: bool, interval: float, no_periodic: bool) -> None:
    """Send the mails that are due (with retries and back-off), after queueing the deadline
    reminders and daily digests that are due. Safe to run beside other senders."""
    from . import describe_backend
    from .worker import run_periodic, send_pending

    click.echo(describe_backend(current_app), err=True)
    stop = {"now": False}

    def _stop(*_):
        stop["now"] = True

    if watch:
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    last_periodic = 0.0
    while True:
        try:
            if not no_periodic and time.monotonic() - last_periodic >= 60:
                done = run_periodic()
                last_periodic = time.monotonic()
                if any(done.values()) or not watch:
                    click.echo(f"deadline reminders: {done['reminders']}, digests: {done['digests']}")
            counts = send_pending()
            if any(counts.values()) or not watch:
                click.echo(", ".join(f"{k}: {v}" for k, v in counts.items()))
        except Exception as e:  # noqa: BLE001 - a watching sender survives a bad round
            db.session.rollback()
            if not watch:
                raise
            click.echo(f"mail: a round failed ({type(e).__name__}); trying again", err=True)
        finally:
            db.session.remove()
        if not watch or stop["now"]:
            break
        for _ in range(int(interval * 10)):
            if stop["now"]:
                break
            time.sleep(0.1)
        if stop["now"]:
            break


@mail_cli.command("test")
@click.argument("address")
def test_cmd(address: str) -> None:
    """Send one test message to ADDRESS through the configured backend, now."""
    from . import describe_backend
    from .outbox import SITE_NAME, queue
    from .worker import send_pending

    try:
        address = email_address.check(address)
    except email_address.InvalidEmail as e:
        click.echo(f"Error: {address!r} is not an e-mail address: {e.reason}", err=True)
        sys.exit(1)
    click.echo(describe_backend(current_app))
    row = queue(address, "test", f"Test message from the {SITE_NAME}", kind="test")
    db.session.commit()
    send_pending(limit=1000)
    db.session.refresh(row)
    if row.status == "sent":
        click.echo(f"Sent to {address}.")
        return
    click.echo(f"Error: not sent ({row.status}): {row.last_error or 'unknown error'}", err=True)
    sys.exit(1)


@mail_cli.command("status")
def status_cmd() -> None:
    """How many mails are pending, sent, failed or cancelled."""
    from . import describe_backend
    from .worker import status_counts

    click.echo(describe_backend(current_app))
    counts = status_counts()
    for state in ("pending", "sending", "sent", "failed", "cancelled"):
        click.echo(f"{state}: {counts.get(state, 0)}")
