"""`flask --app app insights ...`: the learning loop's daily job."""
from __future__ import annotations

import click
from flask.cli import AppGroup

insights_cli = AppGroup("insights", help="Dashboards and after-action reviews.")


@insights_cli.command("ask-reviews")
def ask_reviews_cmd() -> None:
    """Ask the admins of challenges left open past their deadline for an after-action review
    (challenges closed on the site were asked when they closed). Run daily."""
    from ..services.reviews import ask_for_reviews

    click.echo(f"Asked for {ask_for_reviews()} review(s).")
