"""Bounce processing as an operator runs it: a real send to aiosmtpd with VERP on, then
`newsletter subscribers bounces --maildir` over the reports that came back."""

from __future__ import annotations

import mailbox
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from helpers.lists import store_of
from helpers.smtp_servers import LoopbackServer, RecordingHandler, write_config
from newsletter.cli import main
from newsletter.pipeline.send import SendOptions, run_send
from newsletter.settings import load_settings


def send(folder: Path, sender: dict[str, Any], issue: str | None = None) -> RecordingHandler:
    """Run a real send of list 'test' to a recording aiosmtpd server; return what it received."""
    with LoopbackServer() as server:
        settings = load_settings(write_config(folder, port=server.port, sender=sender))
        report = run_send(settings, SendOptions(issue_id=issue))
    assert report.exit_code == 0
    handler = server.handler
    assert isinstance(handler, RecordingHandler)
    return handler


def bounce_run(folder: Path, reports: list[Any]) -> tuple[str, str]:
    """`newsletter subscribers bounces --maildir` over these reports; (stdout, stderr)."""
    box = mailbox.Maildir(folder / "Bounces", create=True)
    for report in reports:
        box.add(report)
    result = CliRunner().invoke(
        main,
        [
            "--config",
            str(folder / "newsletter.toml"),
            "subscribers",
            "bounces",
            "--maildir",
            str(folder / "Bounces"),
        ],
    )
    assert result.exit_code == 0, result.output
    return result.stdout, result.stderr


def statuses(folder: Path) -> dict[str, str]:
    return {s.email: s.status.value for s in store_of(folder / "subscribers" / "test.csv").read()}
