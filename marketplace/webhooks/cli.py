"""`flask webhooks deliver [--watch]`: the webhook delivery worker."""
from __future__ import annotations

import click
from flask.cli import AppGroup

webhooks_cli = AppGroup("webhooks", help="Webhook deliveries.")


@webhooks_cli.command("deliver")
@click.option("--watch", is_flag=True, help="Keep running, delivering as deliveries fall due.")
@click.option("--poll", default=2.0, show_default=True, help="Seconds between looks when idle (--watch).")
def deliver(watch: bool, poll: float) -> None:
    """Send the webhook deliveries that are due (retries included); with --watch, keep going."""
    from .worker import deliver_due, watch as watch_loop

    if watch:
        click.echo("webhook worker: watching the outbox (Ctrl-C to stop)")
        try:
            watch_loop(poll_seconds=poll)
        except KeyboardInterrupt:
            click.echo("webhook worker: stopped")
        return
    t = deliver_due()
    click.echo(f"{t.delivered} delivered, {t.failed} failed (will retry), {t.parked} parked")
