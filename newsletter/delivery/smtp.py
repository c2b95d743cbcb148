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

    @classmethod
    def from_settings(cls, smtp: SmtpSettings, host: str | None = None, port: int | None = None) -> SmtpTarget:
        return cls(
            host=host or smtp.host, port=port or smtp.port, security=smtp.security,
            username=smtp.username, password=smtp.password, timeout=smtp.timeout,
        )

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


class ServerFailure(DeliveryError):
    """The server as a whole is unusable (refused, 421 at greeting, auth rejected): stop the run."""


@dataclass(frozen=True)
class Reply:
    """The class of a server answer plus its text, recorded in the ledger."""

    kind: str
    code: int
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


async def open_connection(target: SmtpTarget) -> aiosmtplib.SMTP:
    """Connect, greet, secure and authenticate, or raise ServerFailure naming host:port."""
    client = aiosmtplib.SMTP(
        hostname=target.host, port=target.port, timeout=target.timeout,
        use_tls=target.security == "tls", start_tls=target.security == "starttls",
        tls_context=target.tls_context,
    )
    try:
        await client.connect()
        if target.username:
            await client.login(target.username, target.password or "")
    except aiosmtplib.SMTPAuthenticationError as exc:
        await _close(client)
        raise ServerFailure(
            f"the SMTP server rejected the login ({exc.code} {exc.message})", where=target.where,
            fix="check NEWSLETTER_SMTP__USERNAME and NEWSLETTER_SMTP__PASSWORD",
        ) from exc
    except aiosmtplib.SMTPConnectResponseError as exc:
        await _close(client)
        raise ServerFailure(
            f"the SMTP server refused the session ({exc.code} {exc.message})", where=target.where,
            fix="the server is busy or refusing mail; run again later",
        ) from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        await _close(client)
        raise ServerFailure(
            f"cannot connect to the SMTP server ({exc})", where=target.where,
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


async def send_one(client: aiosmtplib.SMTP, sender: str, recipient: str, data: bytes) -> Reply:
    """Hand one message to the server and say what happened, never raising for a reply."""
    try:
        _errors, text = await client.sendmail(sender, [recipient], data)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        refused = exc.recipients[0]
        return classify(refused.code, refused.message)
    except aiosmtplib.SMTPSenderRefused as exc:
        if exc.code >= 500:
            raise ServerFailure(
                f"the SMTP server refused the sender address ({exc.code} {exc.message})",
                fix="check sender.address in newsletter.toml is allowed by this server",
            ) from exc
        return classify(exc.code, exc.message)
    except aiosmtplib.SMTPResponseException as exc:
        return classify(exc.code, exc.message)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
        return Reply(TEMPORARY, 0, f"connection lost: {exc or type(exc).__name__}")
    return Reply(DELIVERED, 250, text)


def classify(code: int, text: str) -> Reply:
    """2xx delivered, 5xx final, anything else worth another try."""
    if 200 <= code < 300:
        return Reply(DELIVERED, code, text)
    if 500 <= code < 600:
        return Reply(FAILED, code, text)
    return Reply(TEMPORARY, code, text)
