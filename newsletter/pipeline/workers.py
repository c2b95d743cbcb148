"""`send --workers N`: N sender processes on this host, so one host uses its cores.

Each worker is an ordinary `newsletter send --json` (the same command another host would run):
they share the issue through the database's queue (pipeline/claims.py), nothing else. This
process only starts them, passes a Ctrl-C or SIGTERM on, and adds up what they report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, fields

from ..errors import NewsletterError
from ..settings import Settings
from .send import SendOptions, SendReport

# Counted by each worker for its own messages: the run's total is their sum. The rest (already
# done, paused, the issue's counts and senders) each worker sees whole: the last one's is kept.
_ADDED = ("sent", "failed", "deferred", "resumed", "unsubscribed", "composed", "rejected", "empty")


@dataclass
class WorkersDone:
    """What the workers reported together, and how each ended."""

    report: SendReport
    exit_codes: list[int]
    errors: list[str]  # the one-line errors of workers that stopped on one, each once


def worker_arguments(options: SendOptions) -> list[str]:
    """The `send` command line of one worker: this run's options, as JSON output."""
    args = ["--json", "--frequency", options.frequency.value]
    if options.list_name:
        args += ["--list", options.list_name]
    if options.issue_id:
        args += ["--issue", options.issue_id]
    if options.issue_date:
        args += ["--date", options.issue_date.isoformat()]
    for path in options.papers:
        args += ["--papers", str(path)]
    if options.shard:
        args += ["--shard", f"{options.shard[0]}/{options.shard[1]}"]
    if options.new_ledger:
        args.append("--new-ledger")
    if options.resend_held:
        args.append("--resend-held")
    return args


def run_workers(settings: Settings, options: SendOptions, workers: int) -> WorkersDone:
    """Start the workers, wait for all of them (stopping them all on an interrupt), add up."""
    if options.limit is not None or options.dry_run or options.to:
        raise NewsletterError(
            "--workers sends the whole issue: it does not go with --limit, --dry-run or --to",
            where="newsletter send",
            fix="leave out --workers, or the other option",
        )
    command = [sys.executable, "-m", "newsletter"]
    if settings.config_file is not None:
        command += ["--config", str(settings.config_file)]
    command += ["send", *worker_arguments(options)]
    env = dict(os.environ)
    if settings.smtp.compose_processes is None:
        env["NEWSLETTER_SMTP__COMPOSE_PROCESSES"] = "0"  # the workers are the parallelism
    started = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    try:
        outputs = [process.communicate() for process in started]
    except BaseException:
        for process in started:
            if process.poll() is None:
                process.terminate()  # each stops as after SIGTERM: its answers recorded, its rows given back
        for process in started:
            process.wait()
        raise
    return _added_up(
        options, [(p.returncode, out, err) for p, (out, err) in zip(started, outputs, strict=True)]
    )


def _added_up(options: SendOptions, ended: list[tuple[int, str, str]]) -> WorkersDone:
    reports: list[SendReport] = []
    errors: list[str] = []
    for _code, out, err in ended:
        if out.strip():
            reports.append(_report_of(json.loads(out)))
        for line in err.splitlines():
            if line.startswith("Error: ") and line not in errors:
                errors.append(line)
    total = (
        reports[-1]
        if reports
        else SendReport(issue="", list_name=options.list_name or "", channel="", server="")
    )
    for name in _ADDED:
        setattr(total, name, sum(getattr(report, name) for report in reports))
    total.duration_seconds = max((report.duration_seconds for report in reports), default=0.0)
    total.problems = [problem for report in reports for problem in report.problems]
    return WorkersDone(total, [code for code, _, _ in ended], errors)


def _report_of(data: dict[str, object]) -> SendReport:
    """A worker's `--json` back as a report (the JSON names the list `list`)."""
    known = {field.name for field in fields(SendReport)}
    values = {("list_name" if key == "list" else key): value for key, value in data.items()}
    return SendReport(**{key: value for key, value in values.items() if key in known})  # type: ignore[arg-type]
