"""`newsletter doctor`: is this deployment ready for cron?"""

from __future__ import annotations

import sys

import click

from ..doctor import run_checks
from ..preflight import dns_txt_lookup
from .app import AppContext, pass_app


@click.command()
@click.option("--skip-dns", is_flag=True, help="Do not look up the DKIM record in DNS (offline machines).")
@click.option(
    "--dns-timeout",
    type=click.FloatRange(min=0.1),
    default=3.0,
    show_default=True,
    help="Seconds a DNS lookup may take.",
)
@pass_app
def doctor(app: AppContext, skip_dns: bool, dns_timeout: float) -> None:
    """Check settings, templates, lists, secret, base URL, database, feeds, next issue, DKIM and SMTP.

    Sends no mail. Fetches a little from every [[sources]] feed, renders every digest template
    for sample readers, counts the next issue's papers, prints the DKIM TXT record to publish
    (and compares it with DNS), and talks to the SMTP server up to AUTH. One line per check;
    exits 1 if any check fails.

    Example: NEWSLETTER_SMTP__HOST=smtp.example.org newsletter doctor
    """
    failed = 0
    lookup = None if skip_dns else dns_txt_lookup(dns_timeout)
    for check in run_checks(app.settings, lookup):
        click.echo(check.line())
        failed += not check.ok
    if failed:
        click.echo(f"{failed} check(s) failed.", err=True)
        sys.exit(1)
    click.echo("All checks passed.")
