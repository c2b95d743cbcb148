"""Reading every reply of one SMTP transaction, several at a time when the server pipelines (RFC 2920).

aiosmtplib reads one reply per command and drops what arrives while no command waits
(`SMTPProtocol.read_response` and `data_received`), so MAIL, RCPT and DATA written together would
lose two of their three replies. For the length of one transaction the connection's transport
is handed to a `ReplyReader` (asyncio's public `transport.set_protocol`), which keeps every reply
in order, bounded in size and in count, then handed back to aiosmtplib for QUIT and the next
session. aiosmtplib itself is used as it is.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import aiosmtplib
from aiosmtplib import SMTPResponse, SMTPStatus

# A reply with its continuation lines: real ones are under 512 octets (RFC 5321 4.5.3.1.5);
# aiosmtplib allows 8 KiB a line, we allow that for the whole reply.
MAX_REPLY_OCTETS = 8192


class RepliesOutOfStep(aiosmtplib.SMTPResponseException):
    """The server answered more than was asked, or with a code no reply to that command can have."""

    def __init__(self, message: str) -> None:
        super().__init__(-1, message)


class ReplyReader(asyncio.Protocol):
    """Stands in for aiosmtplib's protocol on the transport while one transaction's replies come in."""

    def __init__(self, inner: asyncio.BaseProtocol) -> None:
        self._inner = inner
        self._buffer = bytearray()
        self._replies: deque[SMTPResponse] = deque()
        self._asked = 0  # replies the commands written so far will bring; more is a violation
        self._answered = 0
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None

    def expect(self, replies: int) -> None:
        """Note that commands bringing this many replies were just written."""
        self._asked += replies

    def ensure_in_step(self) -> None:
        """Go no further with a server that already answered more than it was asked."""
        if self._buffer or self._replies or isinstance(self._error, RepliesOutOfStep):
            raise RepliesOutOfStep("the server sent more replies than commands")

    async def next(self, timeout: float | None) -> SMTPResponse:
        """The next reply in order, or the error that ended the stream; never waits past `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                while not self._replies:
                    if self._error is not None:
                        raise self._error
                    self._waiter = asyncio.get_running_loop().create_future()
                    await self._waiter
        except TimeoutError as exc:
            raise aiosmtplib.SMTPReadTimeoutError("timed out waiting for the server's reply") from exc
        return self._replies.popleft()

    def data_received(self, data: bytes) -> None:
        if self._error is not None:
            return
        self._buffer += data
        try:
            self._parse()
        except aiosmtplib.SMTPResponseException as exc:
            self._error = exc
        self._wake()

    def _parse(self) -> None:
        """Move every complete reply out of the buffer; refuse one too long or one not asked for."""
        while True:
            end = _reply_end(self._buffer)
            if end is None:
                if len(self._buffer) > MAX_REPLY_OCTETS:
                    raise aiosmtplib.SMTPResponseException(-1, "the server's reply is too long")
                return
            if end > MAX_REPLY_OCTETS:
                raise aiosmtplib.SMTPResponseException(-1, "the server's reply is too long")
            if self._answered >= self._asked:
                raise RepliesOutOfStep("the server sent a reply to a command that was never sent")
            self._replies.append(_parse_reply(bytes(self._buffer[:end])))
            self._answered += 1
            del self._buffer[:end]

    def eof_received(self) -> bool:
        self._lose(aiosmtplib.SMTPServerDisconnected("the server closed the connection"))
        return False  # close our end too

    def connection_lost(self, exc: Exception | None) -> None:
        self._lose(aiosmtplib.SMTPServerDisconnected("connection lost"))
        self._inner.connection_lost(exc)  # aiosmtplib must know, or it would write to a dead socket

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def _lose(self, exc: Exception) -> None:
        if self._error is None:
            self._error = exc
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


def _reply_end(buffer: bytearray) -> int | None:
    """Where the first complete reply ends: after its last line, the one without a '-' after the code."""
    start = 0
    while (newline := buffer.find(b"\n", start)) != -1:
        if buffer[start + 3 : start + 4] != b"-":
            return newline + 1
        start = newline + 1
        if start > MAX_REPLY_OCTETS:
            return start
    return None


def _parse_reply(raw: bytes) -> SMTPResponse:
    """One reply's code and its lines' text, as aiosmtplib would give them."""
    lines = raw.split(b"\n")[:-1]
    codes = {line[:3] for line in lines}
    code = lines[0][:3]
    if len(codes) != 1 or not code.isdigit() or len(code) != 3:
        shown = raw[:80].decode("ascii", "replace")
        raise aiosmtplib.SMTPResponseException(-1, f"malformed SMTP reply: {shown!r}")
    text = b"\n".join(line[4:].strip(b" \t\r") for line in lines)
    return SMTPResponse(int(code), text.decode("utf-8", "surrogateescape"))


@contextmanager
def replies_of(client: aiosmtplib.SMTP) -> Iterator[tuple[asyncio.WriteTransport, ReplyReader]]:
    """The connection's transport and a reader of its replies, aiosmtplib's own reader set aside meanwhile."""
    protocol = client.protocol
    transport = protocol.transport if protocol is not None else None
    if protocol is None or transport is None or transport.is_closing():
        raise aiosmtplib.SMTPServerDisconnected("connection lost before the message was sent")
    assert isinstance(transport, asyncio.WriteTransport)
    reader = ReplyReader(protocol)
    transport.set_protocol(reader)
    try:
        yield transport, reader
    finally:
        if transport.get_protocol() is reader:
            transport.set_protocol(protocol)


async def envelope_replies(
    transport: asyncio.WriteTransport,
    reader: ReplyReader,
    commands: list[bytes],
    pipelined: bool,
    timeout: float | None,
) -> list[SMTPResponse]:
    """The replies to MAIL, RCPT and DATA: one write when pipelined, else one by one up to a refusal."""
    if pipelined:
        reader.expect(len(commands))
        transport.write(b"".join(commands))
        return [await reader.next(timeout) for _ in commands]
    replies: list[SMTPResponse] = []
    for command, wanted in zip(commands, _WANTED, strict=True):
        reader.expect(1)
        transport.write(command)
        replies.append(await reader.next(timeout))
        if replies[-1].code not in wanted:
            break
    return replies


# What each of MAIL, RCPT and DATA must get for the transaction to go on.
_WANTED = (
    (SMTPStatus.completed,),
    (SMTPStatus.completed, SMTPStatus.will_forward),
    (SMTPStatus.start_input,),
)


def first_refusal(replies: list[SMTPResponse], pipelined: bool) -> int | None:
    """Which of MAIL, RCPT, DATA was refused first (None: go on with the data).

    Pipelined, a reply no answer to its command can be (354 to MAIL, 250 to DATA) means the
    replies and commands are out of step: that is the server's fault, and stops the run.
    """
    for index, reply in enumerate(replies):
        if pipelined and not _fits(index, reply.code):
            raise RepliesOutOfStep(f"{reply.code} in answer to {_NAMES[index]}")
        if reply.code not in _WANTED[index]:
            return index
    return None


_NAMES = ("MAIL", "RCPT", "DATA")


def _fits(index: int, code: int) -> bool:
    """A code the command at `index` may get: a success of its own kind, or a 4xx or 5xx refusal."""
    if 400 <= code < 600:
        return True
    return 300 <= code < 400 if _NAMES[index] == "DATA" else 200 <= code < 300


async def abandon(
    transport: asyncio.WriteTransport,
    reader: ReplyReader,
    replies: list[SMTPResponse],
    timeout: float | None,
) -> bool:
    """Clear a half-made envelope so the connection can carry the next message; False if it could not be.

    A 354 to a pipelined DATA after a refused MAIL or RCPT is ended with an empty message
    (RFC 2920 3.1), which the server then refuses for want of a recipient; then RSET.
    """
    if replies[-1].code == SMTPStatus.start_input:
        reader.expect(1)
        transport.write(b".\r\n")
        await reader.next(timeout)
    reader.expect(1)
    transport.write(b"RSET\r\n")
    return (await reader.next(timeout)).code == SMTPStatus.completed
