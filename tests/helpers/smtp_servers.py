"""Real SMTP servers on loopback for delivery tests: aiosmtpd with scripted faults, TLS and AUTH.

Each server runs its own event loop in a thread and binds 127.0.0.1 port 0, so tests never
fight over ports. Handlers record what they accepted as (recipient, Message-ID) pairs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import re
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

REPO = Path(__file__).resolve().parents[2]
_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)

# What a scripted handler may do with one delivery attempt: None accepts, "drop" hangs up,
# "stall" never answers, anything else is the reply line itself ("451 4.7.1 later").
Action = str | None


def message_id_of(data: bytes) -> str:
    """The Message-ID header of a raw message, as recorded by the servers."""
    head = data.split(b"\r\n\r\n", 1)[0]
    match = _MESSAGE_ID.search(head)
    return match.group(1).decode("ascii") if match else ""


@dataclass
class Received:
    """One accepted message."""

    recipient: str
    message_id: str
    data: bytes
    mail_from: str = ""  # the envelope sender, as MAIL FROM gave it


@dataclass
class RecordingHandler:
    """Accept everything (optionally slowly); `plan` scripts faults per recipient and attempt.

    It offers PIPELINING (RFC 2920) as Postfix and most relays do, unless `pipelining` is False
    (aiosmtpd reads commands line by line, so it honours pipelined ones without advertising it).
    """

    plan: Callable[[str, int], Action] | None = None
    rcpt_plan: Callable[[str, int], Action] | None = None
    delay: float = 0.0
    stall_seconds: float = 30.0
    on_message: Callable[[Received], None] | None = None
    received: list[Received] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    rcpt_attempts: dict[str, int] = field(default_factory=dict)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    pipelining: bool = True

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]] if self.pipelining else responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        with self.lock:
            tries = self.rcpt_attempts[address] = self.rcpt_attempts.get(address, 0) + 1
        action = self.rcpt_plan(address, tries) if self.rcpt_plan else None
        if action is not None:
            return action
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        recipient = envelope.rcpt_tos[0]
        with self.lock:
            tries = self.attempts[recipient] = self.attempts.get(recipient, 0) + 1
        action = self.plan(recipient, tries) if self.plan else None
        if action == "drop":
            # A stream transport (plain or TLS) can abort; aiosmtpd types it as the base class.
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()
            return "421 gone"
        if action == "stall":
            await asyncio.sleep(self.stall_seconds)
            return "451 too late"
        if action is not None:
            return action
        if self.delay:
            await asyncio.sleep(self.delay)
        data = envelope.original_content or b""
        item = Received(recipient, message_id_of(data), data, envelope.mail_from or "")
        with self.lock:
            self.received.append(item)
        if self.on_message is not None:
            self.on_message(item)
        return "250 2.0.0 Ok: queued"

    def recipients(self) -> list[str]:
        with self.lock:
            return [item.recipient for item in self.received]


class LoopbackServer:
    """An aiosmtpd server (or any protocol) on 127.0.0.1 port 0, in its own thread."""

    def __init__(
        self,
        handler: Any = None,
        *,
        factory: Callable[[], asyncio.Protocol] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        **smtp_options: Any,
    ) -> None:
        self.handler = handler if handler is not None else RecordingHandler()
        self.host = "127.0.0.1"
        self.port = 0
        self._factory = factory
        self._ssl = ssl_context
        self._options = smtp_options
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    def _protocol(self) -> asyncio.Protocol:
        if self._factory is not None:
            return self._factory()
        if isinstance(self.handler, RecordingHandler):
            with self.handler.lock:
                self.handler.connections += 1
        return SMTP(self.handler, hostname="test.local", **self._options)

    async def _serve(self) -> int:
        self._server = await self._loop.create_server(self._protocol, self.host, 0, ssl=self._ssl)
        return int(self._server.sockets[0].getsockname()[1])

    def start(self) -> Self:
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _OrderRecordingSMTP(SMTP):
    """An aiosmtpd session that notes each STARTTLS and AUTH in order, and whether AUTH came over TLS."""

    def __init__(self, events: list[str], handler: Any, **options: Any) -> None:
        super().__init__(handler, **options)
        self._events = events

    async def smtp_STARTTLS(self, arg: str) -> None:
        self._events.append("STARTTLS")
        await super().smtp_STARTTLS(arg)

    async def smtp_AUTH(self, arg: str) -> None:
        # Logged before aiosmtpd answers: with AUTH PLAIN the password is already in `arg`.
        self._events.append("AUTH over TLS" if self._tls_protocol is not None else "AUTH in clear")
        await super().smtp_AUTH(arg)


class TlsAuthServer(LoopbackServer):
    """Offers STARTTLS and AUTH, AUTH even before TLS as a careless relay does, and records the order.

    `sessions` has one list per connection, e.g. ["STARTTLS", "AUTH over TLS"] for a careful
    client and ["AUTH in clear"] for one that hands its password to anyone on the path.
    """

    def __init__(
        self, cert: TestCertificate | None, username: str = "mailer", password: str = "s3cret", **options: Any
    ) -> None:
        self.sessions: list[list[str]] = []
        super().__init__(
            tls_context=cert.server_context() if cert else None,
            auth_require_tls=False,
            authenticator=password_checker(username, password),
            **options,
        )

    def _protocol(self) -> asyncio.Protocol:
        self.sessions.append([])
        return _OrderRecordingSMTP(self.sessions[-1], self.handler, hostname="test.local", **self._options)

    def orders(self) -> set[tuple[str, ...]]:
        """The distinct orders seen across sessions (one element when every session went alike)."""
        return {tuple(events) for events in self.sessions}


class DataRefusingSMTP(SMTP):
    """aiosmtpd answering DATA with `refusal` (say 452, out of storage) instead of 354, while `refusing`."""

    def __init__(self, handler: Any, refusal: str, refusing: Callable[[], bool], **options: Any) -> None:
        super().__init__(handler, **options)
        self._refusal, self._refusing = refusal, refusing

    async def smtp_DATA(self, arg: str) -> None:
        if self._refusing():
            await self.push(self._refusal)
            return
        await super().smtp_DATA(arg)


class GroupAnswerer(asyncio.Protocol):
    """A raw server offering PIPELINING that answers each MAIL, RCPT, DATA group with scripted bytes.

    It waits until the whole group came in and answers it in one write (what Postfix does with a
    pipelined group), so a client that waits for MAIL's reply before sending RCPT waits in vain.
    `answer(n)` gives the bytes for the n-th group; a group whose answer ends in a 354 line is
    followed by a message, which is kept in `messages` and answered 250; `heard` gets every byte.
    """

    def __init__(self, answer: Callable[[int], bytes], messages: list[bytes], heard: list[bytes]) -> None:
        self._answer, self.messages, self.heard = answer, messages, heard
        self._buffer, self._group, self._groups = b"", 0, 0
        self._in_data = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 group.example ESMTP\r\n")

    def data_received(self, chunk: bytes) -> None:
        self.heard.append(chunk)
        self._buffer += chunk
        while self._step():
            pass

    def _step(self) -> bool:
        if self._in_data:
            end = (b"\r\n" + self._buffer).find(b"\r\n.\r\n")
            if end < 0:
                return False
            self.messages.append(self._buffer[:end])
            self._buffer, self._in_data = self._buffer[end + 3 :], False
            self.transport.write(b"250 2.0.0 queued\r\n")
            return True
        line, found, rest = self._buffer.partition(b"\r\n")
        if not found:
            return False
        self._buffer, verb = rest, line[:4].upper()
        if verb == b"EHLO":
            self.transport.write(b"250-group.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
        elif verb in (b"MAIL", b"RCPT", b"DATA"):
            self._group += 1
            if verb == b"DATA":
                self._groups += 1
                answer = self._answer(self._groups)
                self._in_data = answer.rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1].startswith(b"354")
                self.transport.write(answer)
        elif verb == b"QUIT":
            self.transport.write(b"221 bye\r\n")
            self.transport.close()
        else:  # RSET, NOOP, HELO
            self.transport.write(b"250 ok\r\n")
        return True


class GreetingRefuser(asyncio.Protocol):
    """A server that answers the connection with 421 and hangs up (overloaded, or blocking us)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(b"421 4.3.2 Too busy, try later\r\n")
        transport.close()


def closed_port() -> int:
    """A loopback port nobody listens on, so connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class TestCertificate:
    """A self-signed certificate for 127.0.0.1 that doubles as its own CA."""

    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert_path))


def make_certificate(folder: Path) -> TestCertificate:
    """Generate a key and a self-signed certificate for localhost and 127.0.0.1 with cryptography."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return TestCertificate(cert_path, key_path)


def password_checker(username: str, password: str) -> Callable[..., AuthResult]:
    """An aiosmtpd authenticator that accepts exactly one login."""

    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == username.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)

    return authenticate


def write_subscribers(
    path: Path, count: int, *, unsubscribed: tuple[int, ...] = (), domain: str = "example.com"
) -> list[str]:
    """A subscriber CSV with `count` rows; returns the active addresses in file order."""
    keywords = ["diffusion models", "language models", "reinforcement learning", "video generation", ""]
    lines = ["email,name,keywords,status,subscribed_at,unsubscribed_at"]
    active = []
    for i in range(count):
        email = f"reader{i:04d}@{domain}"
        status = "unsubscribed" if i in unsubscribed else "active"
        lines.append(f"{email},Reader {i},{keywords[i % len(keywords)]},{status},2026-10-01T00:00:00+00:00,")
        if status == "active":
            active.append(email)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return active


def write_config(
    folder: Path, *, port: int = 0, host: str = "127.0.0.1", sender: dict[str, Any] | None = None, **smtp: Any
) -> Path:
    """A newsletter.toml for a test: sample papers, list 'test' in folder, tiny timeouts and backoff;
    `sender` adds keys to [sender] (e.g. bounce_address)."""
    values: dict[str, Any] = {
        "host": host,
        "port": port,
        "connections": 2,
        "timeout": 2.0,
        "backoff_seconds": 0.01,
        "max_attempts": 3,
        "max_failures_in_a_row": 20,
    }
    values.update(smtp)
    smtp_lines = "\n".join(f"{key} = {_toml(value)}" for key, value in values.items())
    sender_lines = "".join(f"{key} = {_toml(value)}\n" for key, value in (sender or {}).items())
    text = f"""
title = "Test Digest"
secret = "test-secret-Zq7mW4xR8vB1nT6kP3yH-0123456789"
base_url = "https://papers.example.org"
issue_date = 2024-03-14
papers = [{_toml(str(REPO / "examples"))}]
default_list = "test"
subscribers_dir = "subscribers"
ledger = "newsletter.db"

[sender]
name = "Test Digest"
address = "digest@example.org"
{sender_lines}
[smtp]
{smtp_lines}
"""
    path = folder / "newsletter.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
