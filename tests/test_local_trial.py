"""A local trial end to end: the outbox's unsubscribe links work against `newsletter serve`."""

from __future__ import annotations

import email
import email.policy
import mailbox
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from click.testing import CliRunner
from helpers.lists import store_of

from newsletter.cli.app import main
from newsletter.cli.serve import serve
from newsletter.pipeline.issue import LOCAL_PORT

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_click_link(outbox: Path) -> tuple[str, str]:
    box = mailbox.Maildir(outbox, factory=None, create=False)
    message = email.message_from_bytes(box.get_bytes(next(iter(box.iterkeys()))))
    header = " ".join(str(message["List-Unsubscribe"]).split())
    link = next(part.strip(" <>") for part in header.split(",") if part.strip(" <").startswith("http"))
    return email.utils.parseaddr(str(message["To"]))[1], link


def post_when_up(url: str, server: subprocess.Popen[str]) -> int:
    """POST the one-click body as a mail client does, once the server listens."""
    request = urllib.request.Request(
        url,
        data=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return int(answer.status)
        except urllib.error.URLError as exc:
            if not isinstance(exc.reason, ConnectionError):
                raise
            assert time.monotonic() < deadline and server.poll() is None, "serve did not start"
            time.sleep(0.1)


def test_serves_default_port_is_the_one_local_links_point_at(project: Path) -> None:
    assert CliRunner().invoke(main, ["send"]).exit_code == 0
    _, link = one_click_link(project / "outbox")
    port = next(p for p in serve.params if p.name == "port")
    assert urlsplit(link).netloc == f"127.0.0.1:{port.default}"


def serve_process(project: Path, port: int) -> subprocess.Popen[str]:
    """`newsletter serve` as a user starts it in the project, without NEWSLETTER_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--port", str(port)],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_local_trials_unsubscribe_link_works_against_serve(project: Path) -> None:
    assert CliRunner().invoke(main, ["send"]).exit_code == 0
    address, link = one_click_link(project / "outbox")
    port = free_port()  # the default port may be taken on a shared test machine: same server, other port
    server = serve_process(project, port)
    try:
        url = urlunsplit(urlsplit(link)._replace(netloc=f"127.0.0.1:{port}"))
        assert post_when_up(url, server) == 200
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert not store_of(project / "subscribers" / "example.csv").is_active(address)
    assert "answering the links of local trials" in err
    # Sign-ups' confirmation mail does not reach a mailbox either: the console says where it is.
    assert "embedded outbox: open it in outbox/new/" in err


def view_in_browser(outbox: Path) -> list[str]:
    """The "View in browser" links of the digests filed in the outbox."""
    box = mailbox.Maildir(outbox, factory=None, create=False)
    found = []
    for key in box.iterkeys():
        message = email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
        part = message.get_body(("plain",))
        assert part is not None
        found += re.findall(r"View in browser: (\S+)", part.get_content())
    return found


def test_a_local_trials_digest_links_to_the_archive_serve_has(project: Path) -> None:
    assert CliRunner().invoke(main, ["archive"]).exit_code == 0
    assert CliRunner().invoke(main, ["send"]).exit_code == 0
    links = view_in_browser(project / "outbox")
    assert links and set(links) == {f"http://127.0.0.1:{LOCAL_PORT}/archive/2024-W11.html"}
    assert (project / "archive" / "2024-W11.html").is_file()  # the page serve answers it with


def test_without_an_archive_a_local_trials_digest_has_no_view_in_browser_link(project: Path) -> None:
    assert CliRunner().invoke(main, ["send"]).exit_code == 0
    assert one_click_link(project / "outbox") and view_in_browser(project / "outbox") == []
