"""SMTP delivery: the channel (embedded outbox or a server), connections, rate limit, retries."""

from .channel import channel_for, delivery_target, server_label
from .dispatch import Dispatcher, DispatchStats, Job
from .embedded import EmbeddedServer
from .smtp import ServerFailure, SmtpTarget

__all__ = [
    "DispatchStats",
    "Dispatcher",
    "EmbeddedServer",
    "Job",
    "ServerFailure",
    "SmtpTarget",
    "channel_for",
    "delivery_target",
    "server_label",
]
