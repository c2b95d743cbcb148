"""Self-service changes to a list (sign-up, confirm, preferences) as field-level writes to one row.

Every change is one record in the list's change journal (O(1), durable when answered) naming
the fields it writes and the values it expects to find (the state the reader saw), so a hand
edit or another change made meanwhile wins instead of being overwritten. They go through `_set`
and `_add`, the only two places that write.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from ..errors import SubscriberError
from ..models import utc_now
from ..statuses import Frequency, SubscriberStatus
from ..text import split_keywords
from .csvfile import canonical, read_rows
from .rows import RowError, check_email, format_when
from .store import SubscriberStore

PENDING_DAYS = 7  # a sign-up nobody confirmed is dropped after this long
MAX_KEYWORDS = 20
MAX_KEYWORD = 80
MAX_NAME = 100


class SignupOutcome(StrEnum):
    """What a sign-up did; the web page is the same for all of them (no enumeration)."""

    PENDING = "pending"  # new (or still pending, or coming back): a confirmation mail is due
    ALREADY = "already"  # active already: nothing changed, a reminder with the manage link is due


class ConfirmOutcome(StrEnum):
    """What a confirm link did."""

    CONFIRMED = "confirmed"
    ALREADY = "already"  # it was active already: the same happy page
    GONE = "gone"  # no row (dropped, removed) or a newer unsubscribe: the link is spent


@dataclass(frozen=True)
class Preferences:
    """What a reader may set about themselves, checked and bounded."""

    name: str = ""
    keywords: tuple[str, ...] = ()
    frequency: Frequency = Frequency.WEEKLY
    pause_until: date | None = None

    def cells(self) -> dict[str, str]:
        """The CSV cells these preferences write."""
        return {
            "name": self.name,
            "keywords": "; ".join(self.keywords),
            "frequency": "" if self.frequency is Frequency.WEEKLY else self.frequency.value,
            "pause_until": self.pause_until.isoformat() if self.pause_until else "",
        }


def clean_preferences(
    name: str, keywords: str, frequency: str, pause_until: str = "", today: date | None = None
) -> Preferences:
    """Preferences from form fields; SubscriberError saying which field is wrong and how."""
    words = [word[:MAX_KEYWORD].rstrip() for word in split_keywords(keywords)]
    if len(words) > MAX_KEYWORDS:
        raise SubscriberError(f"{len(words)} keywords is too many", fix=f"keep at most {MAX_KEYWORDS}")
    try:
        chosen = Frequency(frequency.strip().lower() or Frequency.WEEKLY)
    except ValueError:
        raise SubscriberError("frequency must be weekly or daily", fix="pick one of the two") from None
    pause = None
    if pause_until.strip():
        try:
            pause = date.fromisoformat(pause_until.strip())
        except ValueError:
            raise SubscriberError("the pause date is not a date", fix="use the form 2026-12-31") from None
        if pause < (today or date.today()):
            pause = None  # a pause that has ended is no pause
    clean_name = " ".join(name.split())[:MAX_NAME]
    if any(ch in clean_name for ch in '<>"\\') or any(ord(ch) < 32 for ch in clean_name):
        raise SubscriberError("the name has characters we cannot use", fix="use letters, spaces and dots")
    return Preferences(clean_name, tuple(words), chosen, pause)


def checked_address(email: str) -> str:
    """A sign-up address in normalised form, or SubscriberError for anything else."""
    if len(email) > 254:
        raise SubscriberError("that email address is too long", fix="check the address")
    try:
        return check_email(email)
    except RowError:
        raise SubscriberError(
            "that is not an email address we can write to", fix="check the address"
        ) from None


def request_signup(
    store: SubscriberStore, email: str, prefs: Preferences, now: datetime | None = None
) -> SignupOutcome:
    """Record a sign-up: a new address is written `pending`; an active one is left alone.

    An unsubscribed or bounced address keeps its status (it still gets nothing) and its new
    preferences wait in the row until the reader confirms: coming back needs the confirmation too.
    """
    when = format_when(now or utc_now())
    current = store.get(email) if store.exists() else None
    if current is None:
        _add(store, email, {**prefs.cells(), "status": SubscriberStatus.PENDING, "subscribed_at": when})
        return SignupOutcome.PENDING
    if current.status is SubscriberStatus.ACTIVE:
        return SignupOutcome.ALREADY
    fields = prefs.cells()
    if current.status is SubscriberStatus.PENDING:
        fields["subscribed_at"] = when  # the week before it is dropped starts again
    _set(store, email, fields, {"status": current.status})
    return SignupOutcome.PENDING


def confirm(
    store: SubscriberStore, email: str, issued_at: datetime, now: datetime | None = None
) -> ConfirmOutcome:
    """Activate a pending (or returning) address; a link older than their last unsubscribe is spent."""
    current = store.get(email) if store.exists() else None
    if current is None:
        return ConfirmOutcome.GONE
    if current.status is SubscriberStatus.ACTIVE:
        return ConfirmOutcome.ALREADY
    if current.unsubscribed_at is not None and current.unsubscribed_at > issued_at:
        return ConfirmOutcome.GONE
    stamp = format_when(now or utc_now())
    _set(
        store,
        email,
        {"status": SubscriberStatus.ACTIVE, "unsubscribed_at": "", "confirmed_at": stamp},
        {"status": current.status},
    )
    return ConfirmOutcome.CONFIRMED


def save_preferences(store: SubscriberStore, email: str, prefs: Preferences) -> bool:
    """Write a reader's own preferences; False when they are not on the list any more."""
    current = store.get(email) if store.exists() else None
    if current is None:
        return False
    _set(store, email, prefs.cells(), {})
    return True


def leave(store: SubscriberStore, email: str) -> None:
    """Unsubscribe from the preferences page (the same as the one-click link)."""
    store.unsubscribe(email)


def drop_stale_pending(store: SubscriberStore, now: datetime | None = None) -> int:
    """Remove sign-ups nobody confirmed within PENDING_DAYS; returns how many went."""
    cutoff = (now or utc_now()) - timedelta(days=PENDING_DAYS)
    if not _may_have_stale(store, cutoff):
        return 0  # the usual case before a send: no whole-list table in memory
    with store.editing() as table:
        column = table.layout.index("subscribed_at")
        stale = [
            position
            for position in range(len(table.rows))
            if table.status(position) == SubscriberStatus.PENDING
            and _older(table.rows[position], column, cutoff)
        ]
        for position in reversed(stale):
            table.delete(position)
        return len(stale)


def _may_have_stale(store: SubscriberStore, cutoff: datetime) -> bool:
    """One streamed pass over the CSV: is any row a stale sign-up? (A pending journal: maybe.)"""
    if store.journal.size():
        return True  # changes not folded in yet: the table under the lock decides
    layout, rows = read_rows(store.path)
    status, column = layout.index("status"), layout.index("subscribed_at")
    with closing(rows):
        if status is None:
            return False  # no status column: every row is active
        return any(
            status < len(row)
            and row[status].strip().lower() == SubscriberStatus.PENDING
            and _older(row, column, cutoff)
            for _, row in rows
        )


def _older(row: list[str], column: int | None, cutoff: datetime) -> bool:
    text = row[column].strip() if column is not None and column < len(row) else ""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return True  # a pending row without a date cannot be confirmed by anyone we mailed recently
    return (when if when.tzinfo else when.replace(tzinfo=UTC)) < cutoff


# --- the two writers: one journal record each, O(1) however long the list ----------------------


def _set(store: SubscriberStore, email: str, fields: Mapping[str, str], expect: Mapping[str, str]) -> None:
    """Journal new cells for an address's row, applied only while `expect` still holds."""
    header = {canonical(name) for name in store.header()}
    # Blanking a column the file does not have would only add an empty column to it.
    cells = {k: str(v) for k, v in fields.items() if v or k in header}
    if cells:
        store.record_change(email, expect={k: [str(v)] for k, v in expect.items()}, **cells)


def _add(store: SubscriberStore, email: str, fields: Mapping[str, str]) -> None:
    """Journal a row for a new address (nothing if it has one by the time the journal is read)."""
    cells = {k: str(v) for k, v in fields.items() if v}
    if store.exists():
        store.record_add(email, **cells)
        return
    with store.editing(create=True) as table:  # the list's first row creates its file
        if table.positions(email):
            return
        table.append([""] * len(table.layout.header), email)
        position = len(table.rows) - 1
        for column, value in {"email": email, **cells}.items():
            table.set_cell(position, column, value)


__all__ = [
    "ConfirmOutcome",
    "Preferences",
    "SignupOutcome",
    "checked_address",
    "clean_preferences",
    "confirm",
    "drop_stale_pending",
    "leave",
    "request_signup",
    "save_preferences",
]
