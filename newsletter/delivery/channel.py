"""Where a run's messages go: the embedded outbox or a real SMTP server, chosen in this one place."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..settings import Settings, SmtpSettings
from ..statuses import Channel
from .embedded import EmbeddedServer
from .smtp import SmtpTarget


def channel_for(smtp: SmtpSettings) -> Channel:
    """The embedded outbox is recorded apart from a real server: mail there never counts as sent."""
    return Channel.OUTBOX if smtp.is_embedded else Channel.SMTP


def server_label(smtp: SmtpSettings) -> str:
    """How a summary names the server: 'embedded' or host:port."""
    return "embedded" if smtp.is_embedded else f"{smtp.host}:{smtp.port}"


@contextmanager
def delivery_target(settings: Settings) -> Iterator[SmtpTarget]:
    """The server to hand messages to; the embedded one runs for as long as the block does."""
    if channel_for(settings.smtp) is Channel.SMTP:
        yield SmtpTarget.from_settings(settings.smtp)
        return
    server = EmbeddedServer(settings.path(settings.smtp.outbox)).start()
    try:
        yield SmtpTarget(host=server.host, port=server.port, timeout=settings.smtp.timeout)
    finally:
        server.stop()
