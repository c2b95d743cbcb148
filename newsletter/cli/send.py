"""`newsletter send`: deliver one issue to one list, resumably."""

from __future__ import annotations

import json
import sys
import time
from datetime import date
from pathlib import Path

import click

from ..pipeline.interrupts import sigterm_as_interrupt, stopped_by
from ..pipeline.report import report_command
from ..pipeline.send import SendInterrupted, SendOptions, SendReport, run_send
from ..pipeline.workers import run_workers
from ..statuses import DeliveryStatus, Frequency, SubscriberStatus
from .app import AppContext, pass_app
from .options import (
    issue_date_option,
    issue_option,
    list_option,
    papers_option,
    parse_address,
    parse_shard,
)


@click.command()
@papers_option
@list_option
@issue_option()
@issue_date_option
@click.option(
    "--frequency",
    type=click.Choice([f.value for f in Frequency]),
    default=Frequency.WEEKLY.value,
    show_default=True,
    help="Which readers: a daily issue covers one day and is named by it (2026-11-30).",
)
@click.option("--dry-run", is_flag=True, help="Compose every message; send and record nothing.")
@click.option(
    "--to",
    "to",
    metavar="EMAIL",
    callback=parse_address,
    help="Send the first subscriber's digest to this test address only (not recorded).",
)
@click.option("--limit", type=click.IntRange(min=1), help="Send at most N messages this run.")
@click.option(
    "--shard", callback=parse_shard, metavar="K/N", help="Send only shard K of N (stable split by address)."
)
@click.option(
    "--new-ledger",
    is_flag=True,
    help="Start a new ledger although this list's deliveries were recorded in one that is now lost "
    "(everyone gets this issue again).",
)
@click.option(
    "--another-issue",
    is_flag=True,
    help="Send this issue although the list already got another one for the same week (or day): "
    "its readers get a second digest.",
)
@click.option(
    "--resend-held",
    is_flag=True,
    help="Send again, with the same Message-ID, the deliveries held because the sender that handed "
    'them to the server fell silent (on_uncertain = "hold").',
)
@click.option(
    "--workers",
    type=click.IntRange(min=1, max=64),
    default=1,
    show_default=True,
    help="Sender processes on this host, sharing the issue through the database (one per core).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@pass_app
def send(
    app: AppContext,
    *,
    papers: tuple[Path, ...],
    list_name: str | None,
    issue_id: str | None,
    issue_date: date | None,
    frequency: str,
    dry_run: bool,
    to: str | None,
    limit: int | None,
    shard: tuple[int, int] | None,
    new_ledger: bool,
    another_issue: bool,
    resend_held: bool,
    workers: int,
    as_json: bool,
) -> None:
    """Send this week's digest to every active subscriber who has not had it yet.

    Exit status: 0 everyone has a final outcome, 75 some deliveries were deferred
    (run again to resume), 1 the run stopped on an error, 130 interrupted (Ctrl-C or SIGTERM).

    Example: newsletter send --list example --date 2024-03-14
    """
    options = SendOptions(
        list_name=list_name,
        issue_id=issue_id,
        issue_date=issue_date,
        papers=papers,
        dry_run=dry_run,
        to=to,
        limit=limit,
        shard=shard,
        frequency=Frequency(frequency),
        new_ledger=new_ledger,
        another_issue=another_issue,
        resend_held=resend_held,
    )
    if workers > 1:
        _send_with_workers(app, options, workers, as_json)
    progress = _Progress(enabled=not as_json and sys.stderr.isatty())
    try:
        with sigterm_as_interrupt():
            report = run_send(app.settings, options, on_outcome=progress.tick)
    except SendInterrupted as stop:
        progress.done()
        click.echo(_interrupted(stop), err=True)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        progress.done()
        click.echo(f"Stopped by {stopped_by()} before anything was sent or recorded.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        progress.done()  # end the live line before any summary or error
    _show(report, as_json)
    sys.exit(report.exit_code)


def _send_with_workers(app: AppContext, options: SendOptions, workers: int, as_json: bool) -> None:
    """N sender processes on this host; their reports added up, shown as one run's."""
    try:
        with sigterm_as_interrupt():
            done = run_workers(app.settings, options, workers)
    except KeyboardInterrupt:
        click.echo(
            f"Stopped by {stopped_by()}: every worker gave back what it had not sent. "
            "Run the same command again to resume.",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    for error in done.errors:
        click.echo(error, err=True)
    _show(done.report, as_json)
    for code in (1, EXIT_INTERRUPTED):  # a worker's error first, then an interrupted one
        if code in done.exit_codes:
            sys.exit(code)
    sys.exit(max(done.report.exit_code, *done.exit_codes))


def _show(report: SendReport, as_json: bool) -> None:
    """The summary line (and where to look), or the JSON object."""
    for problem in report.problems:
        click.echo(f"Warning: {problem}", err=True)
    if report.left_out:
        click.echo(f"Warning: {report.left_out}", err=True)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        click.echo(report.summary())
        if report.not_delivered_total:
            # stderr: what a cron mail shows, while the summary goes to the log file.
            click.echo(
                f"{report.not_delivered_total} did not get the issue: see who and why with"
                f" `{report_command(report.issue, report.list_name)}`.",
                err=True,
            )
        if report.exit_code:
            click.echo("Some deliveries are not final yet: run the same command again to resume.", err=True)


EXIT_INTERRUPTED = 130  # as a shell reports Ctrl-C; SIGTERM ends the same way


def _interrupted(stop: SendInterrupted) -> str:
    """One line that is exactly true: what was delivered, and what the next run sends again."""
    report = stop.report
    if not stop.in_flight:
        again = "nothing was in flight, so nobody gets the issue twice"
    else:
        again = (
            f"{stop.in_flight} in flight (queued, or handed to the server with no answer recorded)"
            " will be sent again by the next run with the same Message-ID, so a reader whose copy"
            " did arrive may get it twice (mail systems that deduplicate by Message-ID show one)"
        )
    return (
        f"Stopped by {stopped_by()} after {report.sent} delivered in this run; {again}. "
        "Run the same command again to resume."
    )


class _Progress:
    """A one-line live counter on a terminal (redrawn at most 5 times a second); silent under cron."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.counts: dict[str, int] = {}
        self.started = time.monotonic()
        self._drawn = 0.0

    def tick(self, _key: str, kind: DeliveryStatus) -> None:
        # A withdrawn message means the reader unsubscribed during the run: say it that way.
        label = SubscriberStatus.UNSUBSCRIBED if kind is DeliveryStatus.WITHDRAWN else kind
        self.counts[label] = self.counts.get(label, 0) + 1
        now = time.monotonic()
        if self.enabled and now - self._drawn >= 0.2:
            self._drawn = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        total = sum(self.counts.values())
        rate = total / max(now - self.started, 1e-6)
        text = ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items()))
        click.echo(f"\r\x1b[2K{text} ({rate:.0f}/s)", nl=False, err=True)

    def done(self) -> None:
        """End the live line (once), so what is printed next starts on a line of its own."""
        if self.enabled and self.counts:
            self._draw(time.monotonic())
            click.echo("", err=True)
        self.enabled = False
