"""One message now, not a digest run: confirmation mail from `newsletter serve`."""

from __future__ import annotations

import asyncio
import logging

from ..mail.compose import ComposedMessage
from ..settings import Settings
from ..statuses import Channel, ReplyClass
from .channel import channel_for, start_embedded, target_for
from .embedded import EmbeddedServer
from .smtp import Reply, ServerFailure, SmtpTarget, close_connection, open_connection, send_one

log = logging.getLogger(__name__)


class OneOffSender:
    """Hands single messages to the configured server; in a local trial to an embedded outbox.

    The embedded server is started once and kept for the life of the web app, so a sign-up
    costs one loopback SMTP session, the same path (and the same outbox) as `send`.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server: EmbeddedServer | None = None
        self._lock = asyncio.Lock()

    def start(self) -> None:
        if self.server is None:
            self.server = start_embedded(self.settings)

    def stop(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            server.stop()

    def target(self) -> SmtpTarget:
        """Where the message goes: the embedded server while it runs, else the configured one."""
        return target_for(self.settings, self.server)

    async def send(self, message: ComposedMessage) -> Reply:
        """Deliver one message; a server that cannot be reached is a transient reply, not a crash."""
        if channel_for(self.settings.smtp) is Channel.OUTBOX and self.server is None:
            async with self._lock:
                self.start()
        target = self.target()
        try:
            client = await open_connection(target)
        except ServerFailure as exc:
            log.error("notice not sent: %s", exc.message)
            return Reply(ReplyClass.TRANSIENT, 0, exc.message)
        try:
            # Bounces of a notice go where the digest's do (no VERP: no ledger row to match them to).
            sender = self.settings.sender.envelope_sender
            return await send_one(client, sender, message, target.where, target.pipelining)
        finally:
            await close_connection(client)
