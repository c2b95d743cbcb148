"""`newsletter doctor`: is this deployment ready for cron?"""

from __future__ import annotations

import sys

import click

from ..doctor import run_checks
from .app import AppContext, pass_app


@click.command()
@pass_app
def doctor(app: AppContext) -> None:
    """Check settings, templates, subscriber lists, secret, base URL and the SMTP server.

    Sends no mail. Prints one line per check; exits 1 if any check fails.

    Example: NEWSLETTER_SMTP__HOST=smtp.example.org newsletter doctor
    """
    failed = 0
    for check in run_checks(app.settings):
        click.echo(check.line())
        failed += not check.ok
    if failed:
        click.echo(f"{failed} check(s) failed.", err=True)
        sys.exit(1)
    click.echo("All checks passed.")
