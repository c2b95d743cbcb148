"""`newsletter report`: who got an issue, who did not, and what the server said."""

from __future__ import annotations

import json
import sys

import click

from ..pipeline.report import format_text, issue_report, write_csv
from .app import AppContext, pass_app
from .options import issue_option, list_option


@click.command()
@issue_option(help="Issue id, e.g. 2026-W48 (default: the list's latest).", past=True)
@list_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object: counts and every problem.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV of every address that did not get the issue.")
@pass_app
def report(app: AppContext, issue_id: str | None, list_name: str | None, as_json: bool, as_csv: bool) -> None:
    """Count an issue's outcomes and list every failed, deferred, bounced or unsubscribed address.

    Each problem line has the address, how often it was tried and the server's last reply.
    Reads the ledger and the list; changes nothing.

    Example: newsletter report --issue 2024-W11 --csv > problems.csv
    """
    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    result = issue_report(app.settings, list_name=list_name, issue=issue_id)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    elif as_csv:
        write_csv(result, sys.stdout)
    else:
        click.echo(format_text(result))
