"""Data that crosses stage boundaries: subscribers and the issue they meet in (papers: sources/paper.py),
and the one clock their times come from.

Plain dataclasses, so a command that only touches a subscriber list never imports pydantic.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime

from .statuses import Frequency, SubscriberStatus


def utc_now() -> datetime:
    """The current time for every stamp (lists, journal, ledger, mail Date): timezone-aware UTC."""
    return datetime.now(UTC)


def to_the_second(when: datetime) -> datetime:
    """A time as a list stores it (ISO 8601 to the second), so what is kept equals what is read back."""
    return when.replace(microsecond=0)


@dataclass(slots=True)
class Subscriber:
    """One row of a subscriber list, with unknown columns kept for rewrites."""

    email: str
    name: str = ""
    keywords: list[str] = field(default_factory=list)
    status: SubscriberStatus = SubscriberStatus.ACTIVE
    subscribed_at: datetime | None = None
    unsubscribed_at: datetime | None = None
    frequency: Frequency = Frequency.WEEKLY
    pause_until: date | None = None  # no issue dated on or before this day
    confirmed_at: datetime | None = None  # when a web sign-up was confirmed (double opt-in)
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Status and frequency are compared with `is`: a plain "active" must become the member.
        self.status = SubscriberStatus(self.status)
        self.frequency = Frequency(self.frequency)
        self.keywords = list(self.keywords)

    @property
    def key(self) -> str:
        """Addresses compare case-insensitively."""
        return self.email.strip().lower()

    @property
    def is_active(self) -> bool:
        return self.status is SubscriberStatus.ACTIVE

    def wants(self, frequency: Frequency, issue_date: date) -> bool:
        """Whether an issue of this frequency and date is one this reader asked for."""
        return self.frequency is frequency and (self.pause_until is None or issue_date > self.pause_until)

    def as_json(self) -> dict[str, object]:
        """The row for `subscribers list --json`: dates in ISO 8601 as the CSV writes them."""
        return {
            name: value.isoformat() if isinstance(value, date) else value
            for name, value in ((f.name, getattr(self, f.name)) for f in fields(self))
        }


@dataclass(frozen=True)
class IssueInfo:
    """What every digest of one issue shares: its name, date and the window it covers."""

    issue_id: str
    issue_date: date
    list_name: str
    title: str
    window_start: date
    archive_url: str | None = None
