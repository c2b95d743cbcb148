"""`serve` against hostile clients, with real sockets against a real uvicorn on loopback."""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from newsletter.mail.tokens import Purpose, TokenSigner
from newsletter.settings import Settings
from newsletter.web.app import create_app
from newsletter.web.server import ServeLimits, server_config

SECRET = "hygiene-test-secret-Zq7mW4xR8vB1nT6kP3yH"  # serve needs a strong one
HANG_GUARD = 20.0  # seconds: far above every limit below; only stops a broken server hanging the suite


@dataclass
class Running:
    url: str
    port: int
    log: list[str]


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def start(tmp_path: Path, limits: ServeLimits) -> Iterator[Running]:
    (tmp_path / "subscribers").mkdir(exist_ok=True)
    (tmp_path / "subscribers" / "news.csv").write_text("email,status\nann@example.org,active\n")
    settings = Settings(secret=SECRET, base_url="https://papers.example.org", config_dir=tmp_path)
    config = server_config(create_app(settings), "127.0.0.1", 0, limits, verbose=True)
    server = uvicorn.Server(config)
    lines = Lines()
    logging.getLogger("uvicorn.access").addHandler(lines)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + HANG_GUARD
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield Running(f"http://127.0.0.1:{port}", port, lines.lines)
    server.should_exit = True
    thread.join(HANG_GUARD)
    logging.getLogger("uvicorn.access").removeHandler(lines)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Running]:
    yield from start(tmp_path, ServeLimits(request_timeout=0.5, keep_alive=1, max_connections=50))


def closed_by_server(sock: socket.socket, drip: bytes | None = None) -> bool:
    """Keep dripping (one piece every 50 ms) until the server closes the connection, or give up."""
    sock.setblocking(False)
    deadline = time.monotonic() + HANG_GUARD
    while time.monotonic() < deadline:
        if drip is not None:
            try:
                sock.send(drip)
            except OSError:
                return True
        readable, _, _ = select.select([sock], [], [], 0.05)
        if readable:
            try:
                if sock.recv(65536) == b"":
                    return True
            except OSError:
                return True
    return False


def test_an_idle_connection_that_never_sends_a_request_is_closed(served: Running) -> None:
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        assert closed_by_server(sock)


def test_headers_dripped_a_byte_at_a_time_are_cut_off(served: Running) -> None:
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n")
        assert closed_by_server(sock, drip=b"X")


def test_a_body_dripped_a_byte_at_a_time_is_cut_off(served: Running) -> None:
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(b"POST /unsubscribe HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n")
        assert closed_by_server(sock, drip=b"a")


def test_a_kept_alive_connection_that_then_drips_is_cut_off(served: Running) -> None:
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        assert b" 200 " in sock.recv(4096)
        assert closed_by_server(sock, drip=b"G")


def test_past_the_connection_limit_new_requests_get_503(tmp_path: Path) -> None:
    for running in start(tmp_path, ServeLimits(request_timeout=30, keep_alive=30, max_connections=3)):
        idle = [socket.create_connection(("127.0.0.1", running.port)) for _ in range(3)]
        try:
            assert httpx.get(f"{running.url}/healthz").status_code == 503
        finally:
            for sock in idle:
                sock.close()
        deadline = time.monotonic() + HANG_GUARD
        while httpx.get(f"{running.url}/healthz").status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert httpx.get(f"{running.url}/healthz").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "personal"),
    [
        ("GET", "/healthz", False),
        ("GET", "/unsubscribe", True),
        ("GET", "/unsubscribe?t=forged", True),
        ("POST", "/unsubscribe?t=forged", True),
        ("GET", "/archive/", False),
        ("GET", "/no-such-page", True),
        ("PUT", "/unsubscribe", True),
    ],
)
def test_every_response_carries_the_security_headers(
    served: Running, method: str, path: str, personal: bool
) -> None:
    headers = httpx.request(method, served.url + path).headers
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert (headers.get("cache-control") == "no-store") is personal


def test_a_redirect_never_points_at_the_host_the_client_named(served: Running) -> None:
    answer = httpx.get(f"{served.url}/archive", headers={"Host": "evil.example"})
    assert answer.is_redirect
    assert answer.headers["location"] == "/archive/"


def test_the_access_log_holds_neither_tokens_nor_addresses(served: Running) -> None:
    token = TokenSigner(SECRET).sign(Purpose.UNSUBSCRIBE, "news", "ann@example.org")
    assert httpx.get(f"{served.url}/unsubscribe", params={"t": token}).status_code == 200
    legacy = {"list": "news", "email": "ann@example.org", "token": "x"}
    assert httpx.get(f"{served.url}/unsubscribe", params=legacy).status_code == 403
    assert httpx.post(f"{served.url}/unsubscribe", params={"t": token}).status_code == 200
    deadline = time.monotonic() + HANG_GUARD
    while len(served.log) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(served.log) >= 3
    for line in served.log:
        assert token not in line and "ann" not in line and "127.0.0.1" not in line, line
    assert any('"GET /unsubscribe?… HTTP/1.1" 200' in line for line in served.log)
