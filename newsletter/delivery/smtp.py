"""Opening SMTP connections and classifying what the server answered."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import aiosmtplib
from aiosmtplib import SMTPStatus

from ..errors import DeliveryError
from ..mail.compose import ComposedMessage
from ..settings import SmtpSettings
from ..statuses import ReplyClass


@dataclass(frozen=True)
class SmtpTarget:
    """Where and how to connect; the password comes from settings (and so the environment)."""

    host: str
    port: int
    security: str = "none"
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    tls_context: ssl.SSLContext | None = None
    local_hostname: str | None = None

    @classmethod
    def from_settings(
        cls, smtp: SmtpSettings, host: str | None = None, port: int | None = None
    ) -> SmtpTarget:
        return cls(
            host=host or smtp.host,
            port=port or smtp.port,
            security=smtp.security,
            username=smtp.username,
            password=smtp.password,
            timeout=smtp.timeout,
            tls_context=tls_context_for(smtp),
            local_hostname=smtp.local_hostname,
        )

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def tls_context_for(smtp: SmtpSettings) -> ssl.SSLContext | None:
    """Verify certificates always; a private relay's CA can be named instead of turning checks off."""
    if smtp.ca_file is None or smtp.security == "none":
        return None
    try:
        return ssl.create_default_context(cafile=str(smtp.ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise DeliveryError(
            f"cannot read the CA file ({exc})",
            where=str(smtp.ca_file),
            fix="point smtp.ca_file at a PEM file with the certificate that signed the server's",
        ) from exc


def one_line(text: object) -> str:
    """Server replies can span lines; errors and ledger rows must not."""
    return " ".join(str(text).split())


class ServerFailure(DeliveryError):
    """The server as a whole is unusable (refused, 421 at greeting, auth rejected): stop the run."""


@dataclass(frozen=True)
class Reply:
    """The class of a server answer plus its text, recorded in the ledger."""

    kind: ReplyClass
    code: int
    text: str

    def __str__(self) -> str:
        """The server's code and text; code 0 marks a reason of our own, shown without it."""
        return f"{self.code or ''} {one_line(self.text)}".strip()


async def open_connection(target: SmtpTarget) -> aiosmtplib.SMTP:
    """Connect, greet, secure and authenticate, or raise ServerFailure naming host:port."""
    client = aiosmtplib.SMTP(
        hostname=target.host,
        port=target.port,
        timeout=target.timeout,
        use_tls=target.security == "tls",
        start_tls=target.security == "starttls",
        tls_context=target.tls_context,
        local_hostname=target.local_hostname,
    )
    try:
        await client.connect()
        await _greet(client)
        if target.username:
            await client.login(target.username, target.password or "")
    except aiosmtplib.SMTPAuthenticationError as exc:
        await _close(client)
        raise ServerFailure(
            f"the SMTP server rejected the login ({exc.code} {one_line(exc.message)})",
            where=target.where,
            fix="check NEWSLETTER_SMTP__USERNAME and NEWSLETTER_SMTP__PASSWORD",
        ) from exc
    except aiosmtplib.SMTPConnectResponseError as exc:
        await _close(client)
        raise ServerFailure(
            f"the SMTP server refused the session ({exc.code} {one_line(exc.message)})",
            where=target.where,
            fix="the server is busy or refusing mail; run again later",
        ) from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        await _close(client)
        raise ServerFailure(
            f"cannot connect to the SMTP server ({one_line(exc) or type(exc).__name__})",
            where=target.where,
            fix="check smtp.host, smtp.port and smtp.security, and that the server is running",
        ) from exc
    return client


async def _greet(client: aiosmtplib.SMTP) -> None:
    """EHLO now (HELO for an old server), so extensions are known before the first MAIL."""
    if not client.is_ehlo_or_helo_needed:
        return  # STARTTLS already greeted again over the secured channel
    try:
        await client.ehlo()
    except aiosmtplib.SMTPHeloError:
        if not client.is_connected:
            raise
        await client.helo()


async def _close(client: aiosmtplib.SMTP) -> None:
    try:
        if client.is_connected:
            await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()


async def close_connection(client: aiosmtplib.SMTP) -> None:
    """QUIT politely; a server that already hung up is fine."""
    await _close(client)


async def send_one(client: aiosmtplib.SMTP, sender: str, message: ComposedMessage, where: str = "") -> Reply:
    """Hand one message to the server and say what happened, never raising for a reply.

    MAIL, RCPT and DATA go through aiosmtplib's command layer; the message itself was framed
    for DATA where it was built (compose, often in a builder process), so it is written as is
    instead of being rescanned here for line ends and dots, which was half this loop's CPU.
    """
    try:
        return await _transaction(client, sender, message, where)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
        # The session is in an unknown state (a late reply would be taken for the next one's).
        client.close()
        return Reply(ReplyClass.TRANSIENT, 0, f"connection lost: {one_line(exc) or type(exc).__name__}")
    except aiosmtplib.SMTPResponseException as exc:  # a reply we could not parse: same story
        client.close()
        return Reply(ReplyClass.TRANSIENT, exc.code, exc.message)


async def _transaction(client: aiosmtplib.SMTP, sender: str, message: ComposedMessage, where: str) -> Reply:
    if not (sender.isascii() and message.recipient.isascii()):
        # compose refuses such addresses; a message built elsewhere gets an answer, not a crash
        return Reply(ReplyClass.PERMANENT, 0, "not sent: the address is not plain ASCII")
    options = [b"SIZE=%d" % message.size] if client.supports_extension("size") else []
    try:
        reply = await client.execute_command(b"MAIL", b"FROM:<" + sender.encode("ascii") + b">", *options)
        if reply.code != SMTPStatus.completed:
            await _reset(client)
            # 552 to MAIL FROM ... SIZE=n: this message is over the server's limit, the sender is fine.
            too_big = reply.code == SMTPStatus.storage_exceeded
            if ReplyClass.of(reply.code) is ReplyClass.PERMANENT and not too_big:
                raise ServerFailure(
                    f"the SMTP server refused the sender address ({reply.code} {one_line(reply.message)})",
                    where=where,
                    fix="check sender.address in newsletter.toml is allowed by this server",
                )
            return _not_accepted(reply)
        reply = await client.execute_command(b"RCPT", b"TO:<" + message.recipient.encode("ascii") + b">")
    except ValueError:  # a control character in an address: aiosmtplib refuses to send the command
        await _reset(client)
        return Reply(ReplyClass.PERMANENT, 0, "not sent: the address contains a control character")
    if reply.code not in (SMTPStatus.completed, SMTPStatus.will_forward):
        await _reset(client)
        return _not_accepted(reply)
    reply = await client.execute_command(b"DATA")
    if reply.code != SMTPStatus.start_input:
        await _reset(client)
        return _not_accepted(reply)
    try:
        reply = await write_framed_data(client, message.wire)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
        client.close()
        raise
    if reply.code == SMTPStatus.domain_unavailable:
        client.close()  # the server is going away: reconnect for the next message
    return classify(reply.code, reply.message)


async def write_framed_data(client: aiosmtplib.SMTP, wire: bytes) -> aiosmtplib.SMTPResponse:
    """After the 354, write a message already framed for DATA as is; return the server's reply.

    The fast path: aiosmtplib's own `SMTP.data()` scans every message again for line ends and
    leading dots (half the sending loop's CPU); ours were framed where they were built
    (mail/wire.py: CRLF line ends, leading dots doubled, ending CRLF.CRLF). This is the one place
    that reaches into aiosmtplib's internals: the connected client's `protocol` (an
    `aiosmtplib.protocol.SMTPProtocol`), its `write(data)` and `read_response(timeout=...)`.
    pyproject.toml pins aiosmtplib to the major version this was checked with, and
    tests/test_wire.py::test_the_aiosmtplib_internals_of_the_fast_path_are_still_there fails
    loudly when they change.
    """
    protocol = client.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("connection lost before the message was sent")
    protocol.write(wire)
    return await protocol.read_response(timeout=client.timeout)


def _not_accepted(reply: aiosmtplib.SMTPResponse) -> Reply:
    """A step before the data was refused: 5xx is final, anything else (even an odd 2xx) is retried."""
    permanent = ReplyClass.of(reply.code) is ReplyClass.PERMANENT
    return Reply(ReplyClass.PERMANENT if permanent else ReplyClass.TRANSIENT, reply.code, reply.message)


async def _reset(client: aiosmtplib.SMTP) -> None:
    """Clear a half-made envelope so the connection can carry the next message."""
    if client.is_connected:
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            client.close()


def classify(code: int, text: str) -> Reply:
    """The server's final answer to the data: 2xx delivered, 5xx final, anything else retried."""
    return Reply(ReplyClass.of(code), code, text)
