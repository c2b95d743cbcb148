"""Every closed set of states in one place: a status is a member here, never a bare string or code.

They are `StrEnum`s, so the values written to subscriber CSV files and the ledger are the same
plain words they always were, and a member compares equal to its word.
"""

from __future__ import annotations

from enum import StrEnum


class SubscriberStatus(StrEnum):
    """Where a reader stands with one list (the `status` column of a subscriber CSV)."""

    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    PENDING = "pending"  # signed up, not confirmed yet: gets no digest


# What a list file may hold, in the order error messages name them.
LIST_STATUSES: tuple[SubscriberStatus, ...] = (
    SubscriberStatus.ACTIVE,
    SubscriberStatus.UNSUBSCRIBED,
    SubscriberStatus.BOUNCED,
    SubscriberStatus.PENDING,
)


class Frequency(StrEnum):
    """How often a reader wants the digest (the `frequency` column; empty means weekly)."""

    WEEKLY = "weekly"
    DAILY = "daily"


class DeliveryStatus(StrEnum):
    """The state of one (issue, list, subscriber, channel) in the ledger, and what a run counts."""

    QUEUED = "queued"  # owed, not handed to a server yet (claimed when `owner` is set)
    SENDING = "sending"  # recorded before DATA: a crash after it resumes with the same Message-ID
    DELIVERED = "delivered"
    FAILED = "failed"  # refused for good (5xx)
    DEFERRED = "deferred"  # refused for now (4xx, dropped connection): the next run tries again
    # The reader left mid-run before their message went out: kept (ledger version 2) so
    # `newsletter report` can name them; not final, so a reader who comes back gets the issue.
    WITHDRAWN = "withdrawn"
    # Handed to a server by a sender that fell silent before recording the answer, with
    # on_uncertain = "hold": nobody sends it again until the operator says so.
    HELD = "held"


STORED_STATUSES: tuple[DeliveryStatus, ...] = tuple(DeliveryStatus)
FINAL_STATUSES = frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.FAILED})


class IssueOutcome(StrEnum):
    """Where one subscriber stands for one issue, as an operator asks about it."""

    DELIVERED = "delivered"
    FAILED = "failed"
    DEFERRED = "deferred"
    IN_FLIGHT = "in flight"  # recorded as sending: an interrupted run; the next run re-sends it
    QUEUED = "queued"  # not sent yet: a sender is on it, or the next run sends it
    HELD = "held"  # maybe delivered by a sender that fell silent: held for the operator
    BOUNCED = "bounced"  # accepted by the server, bounced afterwards (the list says so)
    UNSUBSCRIBED = "unsubscribed during the run"


class Channel(StrEnum):
    """Where a run delivers (the ledger's `channel` column): the embedded outbox or a real server."""

    OUTBOX = "outbox"
    SMTP = "smtp"


class ReplyClass(StrEnum):
    """How a delivery reads an SMTP reply (RFC 5321 4.2.1): done, try again later, or never."""

    ACCEPTED = "2xx"
    TRANSIENT = "4xx"  # also anything unexpected, and our own "connection lost"
    PERMANENT = "5xx"

    @classmethod
    def of(cls, code: int) -> ReplyClass:
        """2xx accepted, 5xx permanent, anything else (4xx, odd codes, 0) worth another try."""
        if 200 <= code < 300:
            return cls.ACCEPTED
        if 500 <= code < 600:
            return cls.PERMANENT
        return cls.TRANSIENT

    @property
    def status(self) -> DeliveryStatus:
        """What a final answer of this class makes of the delivery."""
        return {
            ReplyClass.ACCEPTED: DeliveryStatus.DELIVERED,
            ReplyClass.TRANSIENT: DeliveryStatus.DEFERRED,
            ReplyClass.PERMANENT: DeliveryStatus.FAILED,
        }[self]
