"""Data that crosses stage boundaries: papers, subscribers and the issue they meet in."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .statuses import Frequency, SubscriberStatus
from .text import strip_forbidden_chars


class Paper(BaseModel):
    """One paper from any source, normalised so stages never care where it came from."""

    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    abstract: str
    authors: list[str] = Field(default_factory=list)
    published: datetime
    featured_at: datetime | None = None
    url: str
    pdf_url: str | None = None
    code_url: str | None = None
    upvotes: int | None = None
    keywords: list[str] = Field(default_factory=list)
    source: str = "unknown"

    @field_validator("id", "title", "abstract", "url", "pdf_url", "code_url", "source")
    @classmethod
    def _markup_safe_text(cls, value: str | None) -> str | None:
        # A source's JSON can hold a lone surrogate (UTF-8 cannot even write it) or a control byte.
        return strip_forbidden_chars(value) if value is not None else None

    @field_validator("authors", "keywords")
    @classmethod
    def _markup_safe_list(cls, value: list[str]) -> list[str]:
        return [strip_forbidden_chars(item) for item in value]

    @field_validator("published", "featured_at")
    @classmethod
    def _must_be_aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("dates must carry a timezone")
        return value

    @property
    def listed_at(self) -> datetime:
        """When the paper reached readers: featured on a daily list if it was, else published."""
        return self.featured_at or self.published


def stable_id(text: str) -> str:
    """Give papers without an arXiv id an id that is the same on every run."""
    return "h-" + hashlib.sha256(text.strip().lower().encode("utf-8")).hexdigest()[:16]


class Subscriber(BaseModel):
    """One row of a subscriber list, with unknown columns kept for rewrites."""

    email: str
    name: str = ""
    keywords: list[str] = Field(default_factory=list)
    status: SubscriberStatus = SubscriberStatus.ACTIVE
    subscribed_at: datetime | None = None
    unsubscribed_at: datetime | None = None
    frequency: Frequency = Frequency.WEEKLY
    pause_until: date | None = None  # no issue dated on or before this day
    confirmed_at: datetime | None = None  # when a web sign-up was confirmed (double opt-in)
    extra: dict[str, str] = Field(default_factory=dict)

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


@dataclass(frozen=True)
class IssueInfo:
    """What every digest of one issue shares: its name, date and the window it covers."""

    issue_id: str
    issue_date: date
    list_name: str
    title: str
    window_start: date
    archive_url: str | None = None
