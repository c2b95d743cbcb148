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


def outbox_shown(settings: Settings) -> str | None:
    """Where the embedded outbox files new mail, as the user finds it ('outbox/new/'); None for a server."""
    if channel_for(settings.smtp) is Channel.SMTP:
        return None
    folder = settings.path(settings.smtp.outbox) / "new"
    try:
        return f"{folder.relative_to(settings.config_dir)}/"
    except ValueError:  # an outbox outside the project folder: the full path
        return f"{folder}/"


def start_embedded(settings: Settings) -> EmbeddedServer | None:
    """The embedded server, started, when the channel is the outbox; None for a real server."""
    if channel_for(settings.smtp) is Channel.SMTP:
        return None
    return EmbeddedServer(settings.path(settings.smtp.outbox)).start()


def target_for(settings: Settings, embedded: EmbeddedServer | None) -> SmtpTarget:
    """Where messages go: the embedded server while it runs, else the configured one."""
    if embedded is None:
        return SmtpTarget.from_settings(settings.smtp)
    return SmtpTarget.embedded(
        embedded.host, embedded.port, settings.smtp.timeout, embedded.handler.fault_error
    )


@contextmanager
def delivery_target(settings: Settings) -> Iterator[SmtpTarget]:
    """The server to hand a run's messages to; the embedded one runs for as long as the block does."""
    embedded = start_embedded(settings)
    try:
        yield target_for(settings, embedded)
    finally:
        if embedded is not None:
            embedded.stop()
