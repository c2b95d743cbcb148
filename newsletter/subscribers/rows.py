"""Turning CSV rows into Subscriber models and back, with a reason for every row we refuse."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from ..models import Subscriber
from ..statuses import LIST_STATUSES, Frequency, SubscriberStatus
from ..text import split_keywords
from .csvfile import CsvLayout, canonical

STATUSES = LIST_STATUSES


class RowError(ValueError):
    """One row cannot be used; the message is the reason shown after file:line."""


@dataclass(frozen=True)
class RowProblem:
    """A refused row, printed the way editors and CI logs link to it."""

    path: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


def check_email(value: str, deliverability: bool = False) -> str:
    """The address in normalised form (domain lowercased), or RowError saying what is wrong."""
    address = value.strip()
    if not address:
        raise RowError("email is empty")
    try:
        normalized = validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise RowError(f"'{address}' is not a valid address: {exc}") from None
    if deliverability:
        reason = _undeliverable(normalized.rpartition("@")[2])
        if reason:
            raise RowError(f"'{address}' cannot receive mail: {reason}")
    return normalized


@functools.lru_cache(maxsize=4096)
def _undeliverable(domain: str) -> str | None:
    # DNS once per domain: a list of 10,000 gmail.com addresses needs one lookup, not 10,000.
    try:
        validate_email(f"postmaster@{domain}", check_deliverability=True)
    except EmailNotValidError as exc:
        return str(exc)
    return None


def parse_status(text: str) -> SubscriberStatus:
    """An empty status means active; anything else must be one we know."""
    status = text.strip().lower() or SubscriberStatus.ACTIVE
    if status not in STATUSES:
        raise RowError(f"status '{text.strip()}' is not one of {', '.join(STATUSES)}")
    return SubscriberStatus(status)


def parse_when(text: str, column: str) -> datetime | None:
    """ISO 8601 timestamps; a time without zone is taken as UTC rather than refused."""
    text = text.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise RowError(f"{column} '{text}' is not an ISO 8601 date") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_frequency(text: str) -> Frequency:
    """An empty frequency means weekly; anything else must be one we send."""
    value = text.strip().lower() or Frequency.WEEKLY
    try:
        return Frequency(value)
    except ValueError:
        raise RowError(f"frequency '{text.strip()}' is not one of weekly, daily") from None


def parse_day(text: str, column: str) -> date | None:
    """An ISO 8601 day (YYYY-MM-DD), or None when empty."""
    text = text.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise RowError(f"{column} '{text}' is not a date like 2026-12-31") from None


def format_when(value: datetime | None) -> str:
    """Timestamps as written back to the file."""
    return value.isoformat(timespec="seconds") if value else ""


def parse_row(layout: CsvLayout, fields: list[str], deliverability: bool = False) -> Subscriber:
    """One data row as a Subscriber; RowError when a value is unusable."""
    width = len(layout.header)
    if len(fields) > width and any(cell.strip() for cell in fields[width:]):
        raise RowError(f"{len(fields)} fields but the header has {width} (an unquoted delimiter?)")
    cells = dict(zip((canonical(name) for name in layout.header), fields, strict=False))
    email = cells.get("email", "").strip()
    check_email(email, deliverability)
    return Subscriber(
        email=email,
        name=cells.get("name", "").strip(),
        keywords=split_keywords(cells.get("keywords", "")),
        status=parse_status(cells.get("status", "")),
        subscribed_at=parse_when(cells.get("subscribed_at", ""), "subscribed_at"),
        unsubscribed_at=parse_when(cells.get("unsubscribed_at", ""), "unsubscribed_at"),
        frequency=parse_frequency(cells.get("frequency", "")),
        pause_until=parse_day(cells.get("pause_until", ""), "pause_until"),
        confirmed_at=parse_when(cells.get("confirmed_at", ""), "confirmed_at"),
        extra={name: fields[i] if i < len(fields) else "" for i, name in layout.unknown_columns},
    )


def to_fields(layout: CsvLayout, subscriber: Subscriber, base: list[str] | None = None) -> list[str]:
    """The row for a subscriber in this file's column order; cells of columns it lacks come from base."""
    known = {
        "email": subscriber.email,
        "name": subscriber.name,
        "keywords": "; ".join(subscriber.keywords),
        "status": subscriber.status,
        "subscribed_at": format_when(subscriber.subscribed_at),
        "unsubscribed_at": format_when(subscriber.unsubscribed_at),
        # Weekly is the default: written as empty, so the column appears only for daily readers.
        "frequency": "" if subscriber.frequency is Frequency.WEEKLY else subscriber.frequency.value,
        "pause_until": subscriber.pause_until.isoformat() if subscriber.pause_until else "",
        "confirmed_at": format_when(subscriber.confirmed_at),
    }
    for column, value in known.items():
        if value and not (column == "status" and value == SubscriberStatus.ACTIVE):
            layout.ensure(column)
    for name in subscriber.extra:
        if name not in layout.header:
            layout.header.append(name)
    row = list(base or [])
    row += [""] * (len(layout.header) - len(row))
    for i, name in enumerate(layout.header):
        key = canonical(name)
        if key in known:
            row[i] = known[key]
        elif name in subscriber.extra:
            row[i] = subscriber.extra[name]
    return row
