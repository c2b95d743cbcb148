"""The embedded SMTP server: a real aiosmtpd on loopback that files every message in a Maildir."""

from __future__ import annotations

import asyncio
import errno
import mailbox
import os
import threading
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session
from aiosmtplib import SMTPStatus

from ..errors import DeliveryError
from ..safety.private import FILE_MODE, private_dir


class MaildirHandler:
    """Accept every message and store it as one file in a Maildir (openable by any mail client)."""

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox
        self.maildir = mailbox.Maildir(private_dir(outbox.parent) / outbox.name, create=True)  # 0700
        self.fault: OSError | None = None  # the first message that could not be filed

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        data = content if isinstance(content, bytes) else str(content).encode("utf-8")
        try:
            # Filing in the outbox is final delivery, which adds the envelope sender (RFC 5321 4.4).
            key = self.maildir.add(return_path_line(envelope.mail_from) + data)
            os.chmod(self.outbox / "new" / key, FILE_MODE)  # the folder is 0700; the file follows suit
        except OSError as exc:  # a full disk is no reason to refuse the reader for good: 4xx, not 5xx
            self.fault = self.fault or exc
            return f"452 4.3.1 cannot file the message in the outbox ({exc.strerror or exc})"
        return f"{SMTPStatus.completed:d} Message accepted for delivery"

    def fault_error(self) -> DeliveryError | None:
        """What stops the run once the outbox cannot take a message: named, with the fix."""
        if self.fault is None:
            return None
        full = self.fault.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        return DeliveryError(
            f"cannot file messages in the outbox: {'the disk is full' if full else self.fault.strerror}",
            where=str(self.outbox),
            fix="free space there (or set smtp.outbox to a folder on another disk), then run send "
            "again: it resumes with those not yet filed",
        )


def return_path_line(mail_from: str | None) -> bytes:
    """The Return-Path a delivering server puts on top: MAIL FROM, `<>` for a bounce."""
    return b"Return-Path: <" + (mail_from or "").encode("ascii", "replace") + b">\r\n"


class EmbeddedServer:
    """Run an SMTP server on a free loopback port in its own thread for the length of a send."""

    def __init__(self, outbox: Path, host: str = "127.0.0.1") -> None:
        self.outbox = outbox
        self.host = host
        self.port = 0
        self.handler = MaildirHandler(outbox)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="embedded-smtp", daemon=True)
        self._server: asyncio.AbstractServer | None = None

    def start(self) -> EmbeddedServer:
        """Bind to port 0 so two runs (or a test suite) never fight over a port."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        try:
            self.port = future.result(timeout=10)
        except OSError as exc:
            self.stop()
            raise DeliveryError(
                f"cannot start the embedded SMTP server ({exc})",
                where=f"{self.host}:0",
                fix="check that loopback networking is available",
            ) from exc
        return self

    async def _serve(self) -> int:
        def factory() -> SMTP:
            return SMTP(self.handler, hostname="newsletter.embedded", ident="newsletter embedded")

        self._server = await self._loop.create_server(factory, self.host, 0)
        return int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        """Close the listening socket, then the loop; safe to call twice."""
        if self._server is not None:
            server, self._server = self._server, None

            async def close() -> None:
                server.close()
                await server.wait_closed()

            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
