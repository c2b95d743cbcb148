"""One per-subscriber build: what `preview` shows is byte for byte what `send` delivers, whether the
digests were built in the sender or in builder processes."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.smtp_servers import LoopbackServer, RecordingHandler, write_config, write_subscribers

from newsletter.cli import main


def parsed(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def without_date(message: EmailMessage) -> list[tuple[str, str]]:
    return [(name, str(value)) for name, value in message.items() if name != "Date"]


@pytest.mark.parametrize("builders", [0, 1])
def test_preview_shows_exactly_the_message_send_delivered(tmp_path: Path, builders: int) -> None:
    readers = write_subscribers(tmp_path / "subscribers" / "test.csv", 3)
    handler = RecordingHandler()
    with LoopbackServer(handler) as server:
        config = write_config(tmp_path, port=server.port, compose_processes=builders)
        sent = CliRunner().invoke(main, ["--config", str(config), "send"])
        assert sent.exit_code == 0, sent.output
    delivered = {r.recipient: parsed(r.data) for r in handler.received}
    assert sorted(delivered) == sorted(readers)
    for reader in readers:
        out = tmp_path / "preview" / reader
        shown = CliRunner().invoke(
            main, ["--config", str(config), "preview", "--subscriber", reader, "--out", str(out)]
        )
        assert shown.exit_code == 0, shown.output
        preview = parsed(next(out.glob("*.eml")).read_bytes())
        assert without_date(preview) == without_date(delivered[reader])
        assert [p.get_content() for p in preview.iter_parts()] == [
            p.get_content() for p in delivered[reader].iter_parts()
        ]
