"""The whole path as a new user meets it: shipped config, sample data, real SMTP servers."""

from __future__ import annotations

import email
import email.policy
import json
import mailbox
import socket
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.subscribers import SubscriberStore

ROOT = Path(__file__).resolve().parents[1]


class RecordingHandler:
    """Keeps every message a real aiosmtpd server accepted, with its envelope recipients."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)  # aiosmtpd decodes nothing unless asked (decode_data)
        self.messages.append((list(envelope.rcpt_tos), content))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, RecordingHandler]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield controller, handler
    controller.stop()


def use_server(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    """Point send at a server on this machine, configured as a real deployment would be."""
    monkeypatch.setenv("NEWSLETTER_SMTP__HOST", "127.0.0.1")
    monkeypatch.setenv("NEWSLETTER_SMTP__PORT", str(port))
    monkeypatch.setenv("NEWSLETTER_SECRET", "test-secret")
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "https://papers.example.org")


def active_addresses(project: Path) -> set[str]:
    return {s.key for s in SubscriberStore(project / "subscribers" / "example.csv").read() if s.is_active}


def outbox_messages(project: Path) -> list[EmailMessage]:
    box = mailbox.Maildir(project / "outbox", create=False)
    return [email.message_from_bytes(box.get_bytes(k), policy=email.policy.default) for k in box.iterkeys()]


def test_send_with_shipped_config_leaves_one_digest_per_active_subscriber_in_outbox(project: Path) -> None:
    result = CliRunner().invoke(main, ["send"])

    assert result.exit_code == 0, result.output
    messages = outbox_messages(project)
    recipients = {m["To"].addresses[0].addr_spec.lower() for m in messages}
    assert recipients == active_addresses(project)
    assert len(messages) == len(recipients)
    for message in messages:
        assert message.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
        assert message["Date"] and message["Message-ID"]
        html = message.get_body(("html",))
        assert html is not None and 'style="' in html.get_content()
    assert f"{len(messages)} sent" in result.output


def test_second_send_of_the_same_issue_delivers_nothing_and_says_so(project: Path) -> None:
    CliRunner().invoke(main, ["send"])
    first = len(outbox_messages(project))

    result = CliRunner().invoke(main, ["send", "--json"])

    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["sent"], summary["skipped"]) == (0, first)
    assert len(outbox_messages(project)) == first


def test_environment_points_send_at_a_listening_smtp_server(
    project: Path,
    smtp_server: tuple[Controller, RecordingHandler],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    controller, handler = smtp_server
    monkeypatch.setenv("NEWSLETTER_SMTP__HOST", "127.0.0.1")
    monkeypatch.setenv("NEWSLETTER_SMTP__PORT", str(controller.port))

    result = CliRunner().invoke(main, ["send", "--json"])

    assert result.exit_code == 0, result.output
    assert {rcpt[0].lower() for rcpt, _ in handler.messages} == active_addresses(project)
    assert not (project / "outbox").exists()
    assert json.loads(result.stdout)["server"] == f"127.0.0.1:{controller.port}"
    assert "without NEWSLETTER_SECRET and NEWSLETTER_BASE_URL" in result.stderr


def test_server_on_this_machine_with_secret_and_base_url_signs_real_links(
    project: Path,
    smtp_server: tuple[Controller, RecordingHandler],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    controller, handler = smtp_server
    use_server(monkeypatch, controller.port)

    result = CliRunner().invoke(main, ["send"])

    assert result.exit_code == 0, result.output
    assert "placeholder" not in result.stderr
    assert all(b"<https://papers.example.org/unsubscribe?" in data for _, data in handler.messages)


def test_outbox_delivery_never_counts_as_a_delivery_to_a_real_server(
    project: Path,
    smtp_server: tuple[Controller, RecordingHandler],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    CliRunner().invoke(main, ["send"])
    controller, handler = smtp_server
    use_server(monkeypatch, controller.port)

    result = CliRunner().invoke(main, ["send"])

    assert result.exit_code == 0, result.output
    assert len(handler.messages) == len(active_addresses(project))


def test_remote_server_without_a_secret_is_refused_before_anything_is_sent(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEWSLETTER_SMTP__HOST", "smtp.example.org")
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "https://papers.example.org")

    result = CliRunner().invoke(main, ["send"])

    assert result.exit_code == 1
    assert result.output.startswith("Error: NEWSLETTER_SECRET is not set")
    assert not (project / "newsletter.db").exists()


def test_remote_server_without_a_base_url_is_refused(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SMTP__HOST", "smtp.example.org")
    monkeypatch.setenv("NEWSLETTER_SECRET", "test-secret")

    result = CliRunner().invoke(main, ["send"])

    assert result.exit_code == 1
    assert result.output.startswith("Error: base_url is not set")


def test_unreachable_server_is_one_line_error_naming_host_and_port(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    use_server(monkeypatch, port)

    result = CliRunner().invoke(main, ["send"])

    assert result.exit_code == 1
    assert f"127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_papers_rank_json_lists_sample_papers_best_first(project: Path) -> None:
    result = CliRunner().invoke(
        main, ["papers", "rank", "--papers", "examples/", "--keywords", "diffusion", "--json"]
    )

    assert result.exit_code == 0, result.output
    ranked = json.loads(result.output)
    assert ranked and all({"id", "title", "score", "published"} <= item.keys() for item in ranked)
    scores = [item["score"] for item in ranked]
    assert scores == sorted(scores, reverse=True)
    assert "diffusion" in (ranked[0]["title"] + " ").lower() or ranked[0]["matched"]


def test_python_dash_m_newsletter_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0
    assert "send" in result.stdout and "preview" in result.stdout


def test_built_wheel_carries_the_default_templates(tmp_path: Path) -> None:
    pytest.importorskip("hatchling")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {Path(n).name for n in names if n.startswith("newsletter/templates/")}
    assert {p.name for p in (ROOT / "templates").iterdir() if p.is_file()} <= shipped
    assert "newsletter/py.typed" in names
