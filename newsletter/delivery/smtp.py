"""Opening SMTP connections and classifying what the server answered."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import aiosmtplib

from ..errors import DeliveryError
from ..settings import SmtpSettings

DELIVERED = "delivered"
FAILED = "failed"
TEMPORARY = "temporary"


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
    def from_settings(cls, smtp: SmtpSettings, host: str | None = None, port: int | None = None) -> SmtpTarget:
        return cls(
            host=host or smtp.host, port=port or smtp.port, security=smtp.security,
            username=smtp.username, password=smtp.password, timeout=smtp.timeout,
            tls_context=tls_context_for(smtp), local_hostname=smtp.local_hostname,
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
            f"cannot read the CA file ({exc})", where=str(smtp.ca_file),
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

    kind: str
    code: int
    text: str

    def __str__(self) -> str:
        return f"{self.code} {one_line(self.text)}".strip()


async def open_connection(target: SmtpTarget) -> aiosmtplib.SMTP:
    """Connect, greet, secure and authenticate, or raise ServerFailure naming host:port."""
    client = aiosmtplib.SMTP(
        hostname=target.host, port=target.port, timeout=target.timeout,
        use_tls=target.security == "tls", start_tls=target.security == "starttls",
        tls_context=target.tls_context, local_hostname=target.local_hostname,
    )
    try:
        await client.connect()
        if target.username:
            await client.login(target.username, target.password or "")
    except aiosmtplib.SMTPAuthenticationError as exc:
        await _close(client)
        raise ServerFailure(
            f"the SMTP server rejected the login ({exc.code} {one_line(exc.message)})", where=target.where,
            fix="check NEWSLETTER_SMTP__USERNAME and NEWSLETTER_SMTP__PASSWORD",
        ) from exc
    except aiosmtplib.SMTPConnectResponseError as exc:
        await _close(client)
        raise ServerFailure(
            f"the SMTP server refused the session ({exc.code} {one_line(exc.message)})", where=target.where,
            fix="the server is busy or refusing mail; run again later",
        ) from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        await _close(client)
        raise ServerFailure(
            f"cannot connect to the SMTP server ({one_line(exc) or type(exc).__name__})", where=target.where,
            fix="check smtp.host, smtp.port and smtp.security, and that the server is running",
        ) from exc
    return client


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
    client: aiosmtplib.SMTP, sender: str, recipient: str, data: bytes, where: str = "",
) -> Reply:
    """Hand one message to the server and say what happened, never raising for a reply."""
    try:
        _errors, text = await client.sendmail(sender, [recipient], data)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        refused = exc.recipients[0]
        return classify(refused.code, refused.message)
    except aiosmtplib.SMTPSenderRefused as exc:
        if exc.code >= 500:
            raise ServerFailure(
                f"the SMTP server refused the sender address ({exc.code} {one_line(exc.message)})",
                where=where, fix="check sender.address in newsletter.toml is allowed by this server",
            ) from exc
        return classify(exc.code, exc.message)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
        # The session is in an unknown state (a late reply would be taken for the next one's).
        client.close()
        return Reply(TEMPORARY, 0, f"connection lost: {one_line(exc) or type(exc).__name__}")
    except aiosmtplib.SMTPResponseException as exc:
        return classify(exc.code, exc.message)
    return Reply(DELIVERED, 250, text)


def classify(code: int, text: str) -> Reply:
    """2xx delivered, 5xx final, anything else worth another try."""
    if 200 <= code < 300:
        return Reply(DELIVERED, code, text)
    if 500 <= code < 600:
        return Reply(FAILED, code, text)
    return Reply(TEMPORARY, code, text)
