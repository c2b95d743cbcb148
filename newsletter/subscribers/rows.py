"""Turning CSV rows into Subscriber models and back, with a reason for every row we refuse."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from ..errors import SubscriberError
from ..models import Subscriber, to_the_second, utc_now
from ..statuses import LIST_STATUSES, Frequency, SubscriberStatus
from ..text import scrub_controls, split_keywords
from .csvfile import KNOWN_COLUMNS, OPTIONAL_COLUMNS, CsvLayout, RowError, data_lines, open_lines, split_line

STATUSES = LIST_STATUSES
_STATUS_OF = {status.value: status for status in STATUSES}
# A plain ASCII local part (RFC 5322 dot-atom): email_validator accepts it as it is.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
# Every column a row's values are compared by (last_issue is the store's, never merged).
FIELD_COLUMNS = tuple(c for c in KNOWN_COLUMNS + OPTIONAL_COLUMNS if c != "last_issue")


@dataclass(frozen=True)
class RowProblem:
    """A refused row, printed the way editors and CI logs link to it."""

    path: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


def check_email(value: str, deliverability: bool = False) -> str:
    """The address in normalised form (domain lowercased), or RowError saying what is wrong.

    A plain address takes a short path (its domain checked once per domain): a million-row
    import would otherwise spend most of its time here.
    """
    address = value.strip()
    if not address:
        raise RowError("email is empty")
    local, _, domain = address.rpartition("@")
    if len(address) <= 254 and len(local) <= 64 and _DOT_ATOM.fullmatch(local):
        known = _checked_domain(domain)
        if known is not None:
            normalized = f"{local}@{known}"
            return _deliverable(normalized, address) if deliverability else normalized
    try:
        normalized = validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise RowError(f"'{address}' is not a valid address: {exc}") from None
    return _deliverable(normalized, address) if deliverability else normalized


@functools.lru_cache(maxsize=4096)
def _checked_domain(domain: str) -> str | None:
    """A domain as email_validator normalises it, or None when it refuses it (the long path says why)."""
    try:
        return validate_email(f"a@{domain}", check_deliverability=False).normalized.rpartition("@")[2]
    except EmailNotValidError:
        return None


def _deliverable(normalized: str, address: str) -> str:
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
    status = _STATUS_OF.get(text.strip().lower() or "active")
    if status is None:
        raise RowError(f"status '{text.strip()}' is not one of {', '.join(STATUSES)}")
    return status


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
    value = text.strip().lower()
    if not value:
        return Frequency.WEEKLY  # nearly every row: no lookup by value
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
    """Timestamps as written back to the file: ISO 8601 in UTC, to the second."""
    return value.astimezone(UTC).isoformat(timespec="seconds") if value else ""


def read_subscribers(
    path: Path,
    *,
    aliases: bool = False,
    deliverability: bool = False,
    on_problem: Callable[[RowProblem], None] | None = None,
) -> Iterator[tuple[int, Subscriber]]:
    """Every row of a file as (line, subscriber), read strictly.

    Without `on_problem` the first bad row is an error naming its file:line. With it, bad rows
    are reported and skipped (`validate` lists them all, `import` rejects them), except that an
    import still refuses a damaged file (`aliases`: a stray quote, the wrong number of cells).
    """
    layout, handle = open_lines(path, aliases)
    seen: dict[str, int] = {}
    for line, raw in data_lines(handle):
        if not raw.strip():
            continue
        try:
            subscriber = parse_row(layout, split_line(layout, raw, path, line), deliverability)
            first = seen.setdefault(subscriber.key, line)
            if first != line:
                raise RowError(f"duplicate of '{subscriber.email}' on line {first}")
        except RowError as exc:
            if on_problem is None or (aliases and exc.broken):
                raise row_error(path, line, exc) from None
            on_problem(RowProblem(path, line, str(exc)))
            continue
        yield line, subscriber


def row_error(path: Path, line: int, exc: RowError) -> SubscriberError:
    """A bad row as the one-line error that stops a command: nothing of the file is applied."""
    fix = exc.fix or "correct the row (`newsletter subscribers validate` lists every problem)"
    return SubscriberError(str(exc), where=f"{path}:{line}", fix=fix)


def parse_row(layout: CsvLayout, fields: list[str], deliverability: bool = False) -> Subscriber:
    """One data row as a Subscriber; RowError when a value is unusable (checked column by column)."""
    email, name, keywords, status, subscribed, unsubscribed, frequency, pause, confirmed = layout.known_cells(
        fields
    )
    email = email.strip()
    check_email(email, deliverability)
    unknown = layout.unknown_columns
    return Subscriber(  # by position: a million-row import makes one per row
        email,
        scrub_controls(name).strip(),
        _keywords(keywords),  # type: ignore[arg-type]  # the model makes it a list
        parse_status(status),
        parse_when(subscribed, "subscribed_at"),
        parse_when(unsubscribed, "unsubscribed_at"),
        parse_frequency(frequency),
        parse_day(pause, "pause_until"),
        parse_when(confirmed, "confirmed_at"),
        {column: scrub_controls(fields[i]) if i < len(fields) else "" for i, column in unknown}
        if unknown
        else {},
    )


@functools.lru_cache(maxsize=4096)
def _keywords(text: str) -> tuple[str, ...]:
    """A keywords cell split once per distinct text: readers share a handful of topic lists."""
    return tuple(split_keywords(text))


def to_fields(layout: CsvLayout, subscriber: Subscriber) -> list[str]:
    """The row for a subscriber in this file's column order (columns it needs added to the layout)."""
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
            layout.ensure(name)
    row = [""] * len(layout.header)
    for i, (name, key) in enumerate(zip(layout.header, layout.names, strict=True)):
        if key in known:
            row[i] = known[key]
        elif name in subscriber.extra:
            row[i] = subscriber.extra[name]
    return row


def cells_of(subscriber: Subscriber) -> dict[str, str]:
    """A subscriber as column -> cell text, the way a file writes it: compared cell by cell."""
    layout = CsvLayout(header=list(FIELD_COLUMNS))
    return dict(zip(layout.header, to_fields(layout, subscriber), strict=True))


def from_cells(cells: dict[str, str]) -> Subscriber:
    """The subscriber a row's cells (by column name) stand for."""
    return parse_row(CsvLayout(header=list(cells)), list(cells.values()))


def new_subscriber(
    email: str,
    name: str = "",
    keywords: str = "",
    status: SubscriberStatus = SubscriberStatus.ACTIVE,
    deliverability: bool = False,
    **more: object,
) -> Subscriber:
    """A subscriber from what a person typed (the CLI, the sign-up form), the address checked."""
    return Subscriber(
        email=check_email(email, deliverability),
        name=scrub_controls(name).strip(),
        keywords=split_keywords(keywords),
        status=status,
        subscribed_at=to_the_second(utc_now()),
        **more,  # type: ignore[arg-type]  # frequency, extra: the model checks them
    )
