"""`flask agreements remind`: reminders before post-termination duties fall due (cron, like
the mail digests); idempotent, so it may run every hour."""
from __future__ import annotations

import click
from flask.cli import AppGroup

agreements_cli = AppGroup("agreements", help="Data-sharing agreements: duty reminders.")


@agreements_cli.command("remind")
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 3650),
              help="Remind of duties falling due within this many days.")
def remind(days: int) -> None:
    """Notify both sides of every post-termination duty due within --days (each duty, date
    and person once; the notify/mail layer delivers them)."""
    from ..services.phaseout import send_reminders

    n = send_reminders(days)
    click.echo(f"duty reminders sent: {n}")
