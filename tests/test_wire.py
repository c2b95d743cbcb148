"""Messages framed for SMTP DATA where they are built: the server stores exactly what we composed."""

from __future__ import annotations

import asyncio
import inspect
import tomllib
from datetime import date
from pathlib import Path
from typing import ClassVar

import aiosmtplib
import pytest
from aiosmtplib.protocol import SMTPProtocol
from helpers.smtp_servers import LoopbackServer, RecordingHandler, write_config

from newsletter.delivery.smtp import SmtpTarget, close_connection, open_connection, send_one
from newsletter.mail.compose import ComposedMessage, MessageComposer
from newsletter.mail.wire import from_wire, to_wire
from newsletter.models import IssueInfo, Subscriber
from newsletter.render.digest import RenderedDigest
from newsletter.settings import load_settings
from newsletter.statuses import ReplyClass

DELIVERED, FAILED, TEMPORARY = ReplyClass.ACCEPTED, ReplyClass.PERMANENT, ReplyClass.TRANSIENT

ISSUE = IssueInfo(
    issue_id="2024-W11",
    issue_date=date(2024, 3, 14),
    list_name="test",
    title="Test Digest",
    window_start=date(2024, 3, 8),
)
DOTTY = ".\n.hidden\n..two\n" + "x" * 75 + "." + "y" * 90 + "\n. \nend"


@pytest.mark.parametrize(
    "message",
    [
        b"Subject: a\r\n\r\nbody\r\n",
        b"Subject: a\r\n\r\n.\r\n.x\r\n..y\r\n",
        b".starts with a dot\r\n",
        b"",
    ],
)
def test_framing_round_trips(message: bytes) -> None:
    wire = to_wire(message)
    assert wire.endswith(b"\r\n.\r\n")
    assert b"\r\n.\r\n" not in wire[:-3]  # no line of the message can end the DATA early
    assert from_wire(wire) == (message or b"\r\n")
    assert ComposedMessage("<id@x>", "a@example.org", wire).size == len(message or b"\r\n")


def test_lone_line_ends_become_crlf() -> None:
    assert to_wire(b"a\nb\rc\r\n") == b"a\r\nb\r\nc\r\n.\r\n"
    assert to_wire(b"no end") == b"no end\r\n.\r\n"


def test_from_wire_refuses_bytes_that_are_not_a_data_payload() -> None:
    with pytest.raises(ValueError):
        from_wire(b"Subject: a\r\n\r\nbody\r\n")


def composed(tmp_path: Path, email: str = "ada@example.org") -> ComposedMessage:
    composer = MessageComposer(load_settings(write_config(tmp_path)), ISSUE, "secret")
    digest = RenderedDigest(subject="Digest", html="<p>\n.</p>\n" + DOTTY, text=DOTTY)
    message = composer.compose(Subscriber(email=email, name="Ada"), digest, "https://x.example/u")
    assert message.wire == to_wire(message.data)  # what we frame by hand is the generic framing
    return message


def deliver(server: LoopbackServer, *messages: ComposedMessage) -> list[str]:
    async def run() -> list[str]:
        client = await open_connection(SmtpTarget(server.host, server.port, timeout=10))
        try:
            return [(await send_one(client, "digest@example.org", m)).kind for m in messages]
        finally:
            await close_connection(client)

    return asyncio.run(run())


def test_the_server_stores_exactly_the_composed_bytes_dots_and_all(tmp_path: Path) -> None:
    message = composed(tmp_path)
    with LoopbackServer() as server:
        assert deliver(server, message, message) == [DELIVERED, DELIVERED]
    assert [item.data for item in server.handler.received] == [message.data, message.data]


def test_a_message_over_the_servers_size_limit_fails_alone(tmp_path: Path) -> None:
    big, small = composed(tmp_path), composed(tmp_path, "bob@example.org")
    small = ComposedMessage(small.message_id, small.recipient, to_wire(b"Subject: small\r\n\r\nhi\r\n"))
    with LoopbackServer(data_size_limit=big.size - 1) as server:
        assert deliver(server, big, small) == [FAILED, DELIVERED]
    assert server.handler.recipients() == ["bob@example.org"]


def test_a_non_ascii_address_built_elsewhere_is_answered_not_crashed_on(tmp_path: Path) -> None:
    good = composed(tmp_path)
    odd = ComposedMessage("<odd@x>", "jos\u00e9@example.org", good.wire)  # compose itself refuses these
    with LoopbackServer() as server:
        assert deliver(server, odd, good) == [FAILED, DELIVERED]
    assert server.handler.recipients() == ["ada@example.org"]


def test_a_refused_recipient_leaves_the_connection_ready_for_the_next(tmp_path: Path) -> None:
    handler = RecordingHandler(
        rcpt_plan=lambda address, tries: "550 5.1.1 no such user" if "gone" in address else None
    )
    first, second = composed(tmp_path, "gone@example.org"), composed(tmp_path)
    with LoopbackServer(handler) as server:
        assert deliver(server, first, second) == [FAILED, DELIVERED]
    assert handler.recipients() == ["ada@example.org"] and handler.connections == 1


class HeloOnlyServer(asyncio.Protocol):
    """An old server: no ESMTP (EHLO is refused, so no SIZE either); keeps each message it takes."""

    messages: ClassVar[list[bytes]] = []
    data_reply = b"354 go on\r\n"
    transport: asyncio.Transport
    buffer: bytes  # what came in and is not handled yet
    data: bytes | None  # not None while a message is being received

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport, self.buffer, self.data = transport, b"", None
        transport.write(b"220 old.example SMTP\r\n")

    def data_received(self, chunk: bytes) -> None:
        self.buffer += chunk
        while True:
            if self.data is not None:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    return
                HeloOnlyServer.messages.append(self.buffer[: end + 2])
                self.buffer, self.data = self.buffer[end + 5 :], None
                self.transport.write(b"250 queued\r\n")
                continue
            line, found, rest = self.buffer.partition(b"\r\n")
            if not found:
                return
            self.buffer = rest
            verb = line[:4].upper()
            if verb == b"EHLO" or b"SIZE=" in line.upper():
                self.transport.write(b"502 5.5.1 command not recognised\r\n")
            elif verb == b"DATA" and not self.data_reply.startswith(b"354"):
                self.transport.write(self.data_reply)
            elif verb == b"DATA":
                self.data, self.buffer = b"", b"\r\n" + self.buffer
                self.transport.write(self.data_reply)
            elif verb == b"QUIT":
                self.transport.write(b"221 bye\r\n")
                self.transport.close()
            else:
                self.transport.write(b"250 ok\r\n")


def test_a_server_without_ehlo_gets_helo_and_no_size(tmp_path: Path) -> None:
    message = composed(tmp_path)
    HeloOnlyServer.messages = []
    with LoopbackServer(factory=HeloOnlyServer) as server:
        assert deliver(server, message) == [DELIVERED]
    # What a receiving server stores once it removes the doubled dots, as RFC 5321 4.5.2 says.
    stored = HeloOnlyServer.messages[0][2:].replace(b"\r\n..", b"\r\n.")
    assert stored == message.data


def test_an_odd_answer_to_data_is_never_taken_for_a_delivery(tmp_path: Path) -> None:
    HeloOnlyServer.messages = []
    HeloOnlyServer.data_reply = b"250 sure\r\n"  # instead of 354: the message was never sent
    try:
        with LoopbackServer(factory=HeloOnlyServer) as server:
            assert deliver(server, composed(tmp_path)) == [TEMPORARY]
    finally:
        HeloOnlyServer.data_reply = b"354 go on\r\n"
    assert HeloOnlyServer.messages == []


def test_the_aiosmtplib_internals_of_the_fast_path_are_still_there() -> None:
    """delivery/pipelining.py borrows aiosmtplib's transport: if this fails, adapt it, then move the pin."""
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text("utf-8"))
    pin = next(d for d in pyproject["project"]["dependencies"] if d.startswith("aiosmtplib"))
    assert pin == "aiosmtplib>=5.1,<6"
    assert aiosmtplib.__version__.split(".")[0] == "5", (
        f"fast path checked with 5.x, not {aiosmtplib.__version__}"
    )
    hooks = {"connection_lost": ["self", "exc"], "pause_writing": ["self"], "resume_writing": ["self"]}
    for hook, parameters in hooks.items():  # what the stand-in passes on to aiosmtplib's protocol
        assert list(inspect.signature(getattr(SMTPProtocol, hook)).parameters) == parameters

    async def connected_protocol() -> tuple[object, object]:
        with LoopbackServer() as server:
            client = await open_connection(SmtpTarget(server.host, server.port, timeout=10))
            try:
                protocol = client.protocol
                assert protocol is not None
                return protocol, protocol.transport.get_protocol() if protocol.transport else None
            finally:
                await close_connection(client)

    protocol, on_transport = asyncio.run(connected_protocol())
    assert isinstance(protocol, SMTPProtocol) and on_transport is protocol
