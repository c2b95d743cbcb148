"""Opening SMTP connections and classifying what the server answered."""

from __future__ import annotations

import ipaddress
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import aiosmtplib
from aiosmtplib import SMTPStatus

from ..errors import DeliveryError, NewsletterError
from ..mail.compose import ComposedMessage
from ..settings import SmtpSecurity, SmtpSettings
from ..statuses import ReplyClass
from ..text import one_line  # server replies can span lines; errors and ledger rows must not
from .pipelining import RepliesOutOfStep, abandon, envelope_replies, first_refusal, replies_of

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Step(StrEnum):
    """The stages of opening a session, named in errors and in the doctor's report."""

    CONNECT = "connect"
    EHLO = "EHLO"
    STARTTLS = "STARTTLS"
    AUTH = "AUTH"


@dataclass(frozen=True)
class SmtpTarget:
    """Where and how to connect; the password comes from settings (and so the environment)."""

    host: str
    port: int
    security: SmtpSecurity = SmtpSecurity.AUTO
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    tls_context: ssl.SSLContext | None = None
    local_hostname: str | None = None
    allow_plaintext_auth: bool | None = None
    ca_file: str | None = None
    pipelining: bool = True  # MAIL, RCPT and DATA in one write when the server offers PIPELINING
    # The embedded server's storage failure, if any: it stops the run (a full outbox is not a
    # reason to give up on anyone, nor to go on deferring everyone).
    fault: Callable[[], NewsletterError | None] | None = field(default=None, compare=False)

    @classmethod
    def from_settings(cls, smtp: SmtpSettings) -> SmtpTarget:
        return cls(
            host=smtp.host,
            port=smtp.port,
            security=smtp.security,
            username=smtp.username,
            password=smtp.password,
            timeout=smtp.timeout,
            tls_context=tls_context_for(smtp),
            local_hostname=smtp.local_hostname,
            allow_plaintext_auth=smtp.allow_plaintext_auth,
            ca_file=str(smtp.ca_file) if smtp.ca_file else None,
            pipelining=smtp.pipelining,
        )

    @classmethod
    def embedded(
        cls, host: str, port: int, timeout: float, fault: Callable[[], NewsletterError | None] | None = None
    ) -> SmtpTarget:
        """The in-process server: plain SMTP on loopback, no login."""
        return cls(host=host, port=port, security=SmtpSecurity.NONE, timeout=timeout, fault=fault)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def tls_context_for(smtp: SmtpSettings) -> ssl.SSLContext | None:
    """Verify certificates always; a private relay's CA can be named instead of turning checks off."""
    if smtp.security is SmtpSecurity.NONE:
        return None
    try:
        return ssl.create_default_context(cafile=str(smtp.ca_file) if smtp.ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise DeliveryError(
            f"cannot read the CA file ({exc})",
            where=str(smtp.ca_file),
            fix="point smtp.ca_file at a PEM file with the certificate that signed the server's",
        ) from exc


class ServerFailure(DeliveryError):
    """The server as a whole is unusable (refused, 421 at greeting, auth rejected): stop the run."""

    def __init__(self, what: str, where: str | None = None, fix: str | None = None, step: Step | None = None):
        super().__init__(what, where, fix)
        self.step = step


class PlaintextAuthRefused(ServerFailure):
    """The login would cross the network unencrypted: refused before a byte of it is sent."""


@dataclass(frozen=True)
class Reply:
    """The class of a server answer plus its text, recorded in the ledger."""

    kind: ReplyClass
    code: int
    text: str

    def __str__(self) -> str:
        """The server's code and text; code 0 marks a reason of our own, shown without it."""
        return f"{self.code or ''} {one_line(self.text)}".strip()


Progress = Callable[[Step, str], None]


async def open_connection(target: SmtpTarget, progress: Progress | None = None) -> aiosmtplib.SMTP:
    """Connect, greet, secure and authenticate, or raise ServerFailure naming host:port and the step.

    `progress` hears each step that succeeded (the doctor prints them); send uses the same path.
    """
    client = aiosmtplib.SMTP(
        hostname=target.host,
        port=target.port,
        timeout=target.timeout,
        use_tls=target.security is SmtpSecurity.TLS,
        start_tls=False,  # decided below, after EHLO shows whether the server offers it
        tls_context=target.tls_context,
        local_hostname=target.local_hostname,
    )
    report = progress or (lambda step, detail: None)
    step = Step.CONNECT
    try:
        await client.connect()
        report(step, f"{target.where} greeted us" + (" over TLS" if _is_tls(client) else ""))
        step = Step.EHLO
        await _greet(client)
        report(step, "accepted")
        step = Step.STARTTLS
        if await _secure(client, target):
            report(step, "TLS established, certificate verified")
        if target.username:
            step = Step.AUTH
            _refuse_plaintext_auth(client, target)
            await client.login(target.username, target.password or "")
            report(step, f"logged in as {target.username}" + ("" if _is_tls(client) else " (unencrypted)"))
    except ServerFailure:
        await _close(client)
        raise
    except (aiosmtplib.SMTPException, OSError) as exc:
        await _close(client)
        raise _failure(exc, step, target) from exc
    return client


async def _secure(client: aiosmtplib.SMTP, target: SmtpTarget) -> bool:
    """STARTTLS when required, or when offered and not switched off; True if it happened."""
    if target.security in (SmtpSecurity.TLS, SmtpSecurity.NONE):
        return False
    if not client.supports_extension("starttls"):
        if target.security is SmtpSecurity.STARTTLS:
            raise ServerFailure(
                'the SMTP server does not offer STARTTLS, which security = "starttls" requires',
                where=target.where,
                fix='use security = "tls" on port 465 if the server takes TLS from the start, '
                "or ask its operator to enable STARTTLS",
                step=Step.STARTTLS,
            )
        return False
    await client.starttls()
    await _greet(client)  # the extensions offered over TLS are the ones that count
    return True


def _refuse_plaintext_auth(client: aiosmtplib.SMTP, target: SmtpTarget) -> None:
    """A password crosses the network only encrypted, unless it never leaves this machine."""
    if _is_tls(client):
        return
    allowed = target.allow_plaintext_auth
    if allowed is None:
        allowed = _peer_is_loopback(client)
    if allowed:
        return
    offered = client.supports_extension("starttls")
    raise PlaintextAuthRefused(
        "refusing to send the SMTP login over an unencrypted connection"
        + (' (the server offers STARTTLS but security is "none")' if offered else ""),
        where=target.where,
        fix='use security = "auto" or "starttls" with a server that offers STARTTLS, or "tls" on port 465; '
        "allow_plaintext_auth = true only if the network to the server is trusted",
        step=Step.AUTH,
    )


def _is_tls(client: aiosmtplib.SMTP) -> bool:
    return client.get_transport_info("sslcontext") is not None


def _peer_is_loopback(client: aiosmtplib.SMTP) -> bool:
    """The address actually connected to, not the configured name: only loopback is this machine."""
    peer = client.get_transport_info("peername")
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _failure(exc: Exception, step: Step, target: SmtpTarget) -> ServerFailure:
    """One line for what went wrong at this step, with the fix that applies to it."""
    where = target.where
    if _certificate_problem(exc):
        return ServerFailure(
            f"the SMTP server's TLS certificate is not trusted ({_certificate_problem(exc)})",
            where=where,
            fix="set smtp.ca_file to the PEM certificate of the CA that signed it (a private relay), "
            "or fix the server's certificate",
            step=step,
        )
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return ServerFailure(
            f"the SMTP server rejected the login ({exc.code} {one_line(exc.message)})",
            where=where,
            fix="check NEWSLETTER_SMTP__USERNAME and NEWSLETTER_SMTP__PASSWORD",
            step=step,
        )
    if isinstance(exc, aiosmtplib.SMTPConnectResponseError):
        return ServerFailure(
            f"the SMTP server refused the session ({exc.code} {one_line(exc.message)})",
            where=where,
            fix="the server is busy or refusing mail; run again later",
            step=step,
        )
    detail = one_line(str(exc)) or type(exc).__name__
    if step is Step.AUTH:
        return ServerFailure(
            f"cannot log in to the SMTP server ({detail})",
            where=where,
            fix="check that the server offers AUTH on this port, and the username and password",
            step=step,
        )
    return ServerFailure(
        f"cannot connect to the SMTP server at {step} ({detail})",
        where=where,
        fix="check smtp.host, smtp.port and smtp.security, and that the server is running",
        step=step,
    )


def _certificate_problem(exc: BaseException) -> str | None:
    """The verification failure behind an error, however aiosmtplib wrapped it."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return "CERTIFICATE_VERIFY_FAILED: " + one_line(seen.verify_message or seen.reason or "")
        if "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return one_line(str(seen))
        seen = seen.__cause__ or seen.__context__
    return None


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


async def send_one(
    client: aiosmtplib.SMTP, sender: str, message: ComposedMessage, where: str = "", pipelining: bool = True
) -> Reply:
    """Hand one message to the server and say what happened, never raising for a reply.

    The message was framed for DATA where it was built (compose, often in a builder process), so
    it is written as is instead of being rescanned here for line ends and dots. With a server
    that offers PIPELINING, MAIL, RCPT and DATA go in one write: one round trip, not three.
    """
    try:
        return await _transaction(client, sender, message, where, pipelining)
    except RepliesOutOfStep as exc:
        client.close()  # nothing the server says on this connection can be matched to a command now
        raise ServerFailure(
            f"the SMTP server's replies do not match the commands sent ({exc.message})",
            where=where,
            fix="set smtp.pipelining = false in newsletter.toml if the server offers PIPELINING "
            "without honouring it (RFC 2920), and tell its operator",
        ) from exc
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
        # The session is in an unknown state (a late reply would be taken for the next one's).
        client.close()
        return Reply(ReplyClass.TRANSIENT, 0, f"connection lost: {one_line(str(exc)) or type(exc).__name__}")
    except aiosmtplib.SMTPResponseException as exc:  # a reply we could not parse: same story
        client.close()
        return Reply(ReplyClass.TRANSIENT, exc.code, exc.message)


def _envelope_commands(client: aiosmtplib.SMTP, sender: str, message: ComposedMessage) -> list[bytes] | Reply:
    """MAIL, RCPT and DATA for this message, or why it cannot be offered to any server."""
    if not (sender.isascii() and message.recipient.isascii()):
        # compose refuses such addresses; a message built elsewhere gets an answer, not a crash
        return Reply(ReplyClass.PERMANENT, 0, "not sent: the address is not plain ASCII")
    if _CONTROL.search(sender + message.recipient):  # one would end the command line early
        return Reply(ReplyClass.PERMANENT, 0, "not sent: the address contains a control character")
    size = b" SIZE=%d" % message.size if client.supports_extension("size") else b""
    return [
        b"MAIL FROM:<" + sender.encode("ascii") + b">" + size + b"\r\n",
        b"RCPT TO:<" + message.recipient.encode("ascii") + b">\r\n",
        b"DATA\r\n",
    ]


async def _transaction(
    client: aiosmtplib.SMTP, sender: str, message: ComposedMessage, where: str, pipelining: bool
) -> Reply:
    commands = _envelope_commands(client, sender, message)
    if isinstance(commands, Reply):
        return commands
    pipelined = pipelining and client.supports_extension("pipelining")
    with replies_of(client) as (transport, reader):
        replies = await envelope_replies(transport, reader, commands, pipelined, client.timeout)
        refused = first_refusal(replies, pipelined)
        if refused is not None:
            if not await abandon(transport, reader, replies, client.timeout):
                client.close()  # the envelope could not be cleared: the next message gets a new session
            return _refused(refused, replies, where)
        reader.ensure_in_step()  # before a byte of the message goes to a server that lost track
        reader.expect(1)
        transport.write(message.wire)
        reply = await reader.next(client.timeout)
        reader.ensure_in_step()
    if reply.code == SMTPStatus.domain_unavailable:
        client.close()  # the server is going away: reconnect for the next message
    return classify(reply.code, reply.message)


def _refused(index: int, replies: list[aiosmtplib.SMTPResponse], where: str) -> Reply:
    reply = replies[index]
    if index == 0:
        # 552 to MAIL FROM ... SIZE=n: this message is over the server's limit, the sender is fine.
        too_big = reply.code == SMTPStatus.storage_exceeded
        if ReplyClass.of(reply.code) is ReplyClass.PERMANENT and not too_big:
            raise ServerFailure(
                f"the SMTP server refused the sender address ({reply.code} {one_line(reply.message)})",
                where=where,
                fix="check sender.address in newsletter.toml is allowed by this server",
            )
    return _not_accepted(reply)


def _not_accepted(reply: aiosmtplib.SMTPResponse) -> Reply:
    """A step before the data was refused: 5xx is final, anything else (even an odd 2xx) is retried."""
    permanent = ReplyClass.of(reply.code) is ReplyClass.PERMANENT
    return Reply(ReplyClass.PERMANENT if permanent else ReplyClass.TRANSIENT, reply.code, reply.message)


def classify(code: int, text: str) -> Reply:
    """The server's final answer to the data: 2xx delivered, 5xx final, anything else retried."""
    return Reply(ReplyClass.of(code), code, text)
