"""`preview --serve` answers only whoever started it, and what it shows cannot act on a reader.

Loopback is shared by every user of the machine: without a token another user read every
address, used a reader's real unsubscribe link from the .eml view, and mailed "send me this"
copies anywhere (issue 22, row 3).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from helpers.preview_owner import owner_headers, serving_preview
from helpers.uvicorn_thread import serving

import newsletter
from newsletter.preview.owner import cookie_name
from newsletter.preview.session import PreviewSession
from newsletter.settings import load_settings
from newsletter.subscribers import open_list
from newsletter.web.app import create_app

ALICE = "alice@example.org"
SECRET = "preview-owner-test-secret-Hq8vN2xK5rT9wB4m"


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def fetch(
    url: str, headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request, redirects not followed."""
    opener = urllib.request.build_opener(NoRedirects)
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with opener.open(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def printed_url(project: Path) -> Iterator[str]:
    """`newsletter preview --serve` run as its owner would, and the address it prints."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["PYTHONPATH"] = str(Path(newsletter.__file__).resolve().parents[1])  # this checkout's code
    command = [sys.executable, "-m", "newsletter", "preview", "--serve", "--port", str(port)]
    process = subprocess.Popen(command, cwd=project, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        found = re.search(r"http://\S+", line)
        assert found, line
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the line comes before uvicorn listens
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield found.group(0)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_preview_refuses_everyone_without_the_token_it_printed(printed_url: str) -> None:
    parts = urlsplit(printed_url)
    token = parse_qs(parts.query).get("token", [""])[0]
    assert len(token) >= 32, printed_url
    base = f"http://127.0.0.1:{parts.port}"
    # Another user of the machine, who did not see the terminal: nothing, not even the page.
    for path in ("/", "/api/state", f"/api/subscribers?q={ALICE}", f"/api/eml?subscriber={ALICE}"):
        status, headers, body = fetch(base + path)
        assert status == 403 and ALICE.encode() not in body, path
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
    forged = {"Cookie": f"{cookie_name(parts.port)}=guess"}
    assert fetch(f"{base}/api/state", forged)[0] == 403
    assert fetch(f"{base}/?token=guess")[0] == 403
    # The owner opens the printed address: a cookie, then the page without the token in the URL.
    status, headers, _ = fetch(f"{base}/?token={token}")
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert cookie.startswith(f"{cookie_name(parts.port)}={token};")
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    owner = {"Cookie": cookie.split(";", 1)[0]}
    assert fetch(base + "/", owner)[0] == 200
    status, _, body = fetch(f"{base}/api/subscribers?q={ALICE}", owner)
    assert status == 200 and ALICE.encode() in body


@pytest.fixture
def real_links(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose mail carries real links: a strong secret and a public base URL."""
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "https://papers.example.org")
    return project / "newsletter.toml"


def test_links_in_a_previewed_message_are_refused_by_serve(real_links: Path) -> None:
    settings = load_settings(real_links)
    with serving_preview(PreviewSession(settings)) as preview:
        url = f"{preview}/api/eml?{urlencode({'subscriber': ALICE})}"
        status, _, raw = fetch(url, owner_headers(url))
    assert status == 200
    message = message_from_bytes(raw, policy=policy.default)
    unsubscribe = re.search(
        r"https://papers\.example\.org(/unsubscribe\?t=[\w-]+)", message["List-Unsubscribe"]
    )
    plain = message.get_body(("plain",))
    assert unsubscribe is not None and plain is not None
    manage = re.search(r"https://papers\.example\.org(/manage\?t=[\w-]+)", plain.get_content())
    assert manage is not None
    with serving(create_app(settings)) as site:
        one_click = fetch(site + unsubscribe.group(1), body=b"List-Unsubscribe=One-Click")
        managed = fetch(site + manage.group(1))
    assert one_click[0] == 403 and managed[0] in (403, 404)
    assert open_list(settings.places, "example").is_active(ALICE)
