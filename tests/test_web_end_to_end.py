"""The unsubscribe flow end to end: a delivered message's List-Unsubscribe link, POSTed to a real
server, updates the CSV, and the next send skips the address."""

from __future__ import annotations

import email
import json
import mailbox
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.settings import load_settings
from newsletter.subscribers import SubscriberStore
from newsletter.web.app import create_app

REPO = Path(__file__).resolve().parent.parent
SECRET = "end-to-end-secret-Zq7mW4xR8vB1nT6kP3yH"


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project folder with config and list, and `newsletter serve`'s app listening on loopback."""
    (tmp_path / "subscribers").mkdir()
    (tmp_path / "subscribers" / "lab.csv").write_text(
        "email,name,keywords,status,subscribed_at,unsubscribed_at\n"
        "alice@example.org,Alice,diffusion models,active,2026-11-01T10:00:00+00:00,\n"
        "bob@example.org,Bob,reinforcement learning,active,2026-11-01T10:00:00+00:00,\n"
    )
    (tmp_path / "newsletter.toml").write_text(
        # The second issue has the same papers: bob gets a "nothing new" note (one message to him).
        f'issue_date = 2024-03-14\npapers = ["{REPO / "examples"}"]\ndefault_list = "lab"\n'
        "send_empty_digests = true\n"
        f'templates_dir = "{REPO / "templates"}"\n[smtp]\nhost = "embedded"\noutbox = "outbox"\n'
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    monkeypatch.setenv("NEWSLETTER_BASE_URL", f"http://127.0.0.1:{sock.getsockname()[1]}")
    server = uvicorn.Server(uvicorn.Config(create_app(load_settings()), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.02)
    yield tmp_path
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def send(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["send", "--json", *args])
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def delivered(outbox: Path, seen: set[str]) -> list[Message]:
    """Messages filed in the outbox since the last call."""
    box = mailbox.Maildir(outbox, factory=None, create=False)
    fresh = [key for key in box.iterkeys() if key not in seen]
    seen.update(fresh)
    return [email.message_from_bytes(box.get_bytes(key)) for key in fresh]


def one_click_url(message: Message) -> str:
    header = " ".join(str(message["List-Unsubscribe"]).split())
    return next(part.strip(" <>") for part in header.split(",") if part.strip(" <").startswith("http"))


def test_list_unsubscribe_post_then_the_next_send_skips_the_address(site: Path) -> None:
    seen: set[str] = set()
    assert send()["sent"] == 2
    first = {m["To"]: m for m in delivered(site / "outbox", seen)}
    alice = next(m for to, m in first.items() if "alice@example.org" in to)
    assert alice["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    request = urllib.request.Request(
        one_click_url(alice),
        data=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(request) as answer:
        assert answer.status == 200
    assert not SubscriberStore(site / "subscribers" / "lab.csv").is_active("alice@example.org")
    assert send("--issue", "2024-W12")["sent"] == 1
    assert [m["To"] for m in delivered(site / "outbox", seen)] == [first_to("bob", first)]


def first_to(name: str, messages: dict[str, Message]) -> str:
    return next(to for to in messages if name in to)
