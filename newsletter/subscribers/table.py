"""A list's rows held in memory under the lock, and the rules for merging a subscriber into them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from ..errors import SubscriberError
from ..models import Subscriber, to_the_second, utc_now
from ..statuses import SubscriberStatus
from .csvfile import CsvLayout
from .journal import Snapshot, apply_changes
from .rows import RowError, parse_row, to_fields

OnConflict = Literal["error", "skip", "update"]
MergeResult = Literal["added", "updated", "skipped"]


@dataclass
class Table:
    """The raw rows of a list under the lock: rows we do not touch are written back as they were."""

    layout: CsvLayout
    rows: list[list[str]]
    changed: bool = False
    _index: dict[str, list[int]] | None = field(default=None, repr=False)

    def positions(self, email: str) -> list[int]:
        """Every row of an address, so a change reaches duplicates a hand edit left behind."""
        return self._keys().get(email.strip().lower(), [])

    def find(self, email: str) -> int | None:
        """Row position of an address (first occurrence), compared case-insensitively."""
        found = self.positions(email)
        return found[0] if found else None

    def _keys(self) -> dict[str, list[int]]:
        # Built once per edit: bulk changes (imports, bounce runs) stay linear in the list size.
        if self._index is None:
            column = self.layout.index("email")
            self._index = {}
            for i, row in enumerate(self.rows):
                if column is not None and column < len(row):
                    self._index.setdefault(row[column].strip().lower(), []).append(i)
        return self._index

    def status(self, position: int) -> str:
        """A row's status as written, empty meaning active."""
        column = self.layout.index("status")
        row = self.rows[position]
        return (
            row[column].strip().lower() if column is not None and column < len(row) else ""
        ) or SubscriberStatus.ACTIVE

    def append(self, row: list[str], email: str) -> None:
        """Add a row and keep the address index in step."""
        self.rows.append(row)
        if self._index is not None:
            self._index.setdefault(email.strip().lower(), []).append(len(self.rows) - 1)
        self.changed = True

    def delete(self, position: int) -> None:
        """Drop a row; the index is rebuilt on the next lookup."""
        del self.rows[position]
        self._index = None
        self.changed = True

    def set_cell(self, position: int, column: str, value: str) -> None:
        """Write one cell, adding the column to the header when the file lacks it."""
        index = self.layout.ensure(column)
        row = self.rows[position]
        row += [""] * (index + 1 - len(row))
        if row[index] != value:
            row[index] = value
            self.changed = True


def fold(table: Table, snapshot: Snapshot) -> None:
    """Apply journal records to the rows under the lock, as every reader does on the fly."""
    for key, changes in snapshot.by_key().items():
        positions = table.positions(key)
        if not positions:
            added = apply_changes(table.layout, None, changes)
            if added is not None:
                table.append(added, key)
            continue
        for position in reversed(positions):
            before = table.rows[position]
            after = apply_changes(table.layout, before, changes)
            if after is None:
                table.delete(position)
            elif after != before:
                table.rows[position] = after
                table.changed = True


def merge_one(table: Table, new: Subscriber, on_conflict: OnConflict, list_name: str) -> MergeResult:
    """Put one subscriber into the table: added, updated in place, or skipped."""
    position = table.find(new.email)
    if position is None:
        table.append(to_fields(table.layout, new), new.email)
        return "added"
    if on_conflict == "error":
        raise already_on_list(new.email, list_name)
    if on_conflict == "skip":
        return "skipped"
    before = list(table.rows[position])
    old = row_as_subscriber(table.layout, before)
    merged = updated(old, new) if old else new
    row = to_fields(table.layout, merged, before)
    if row == before + [""] * (len(row) - len(before)):
        return "skipped"
    table.rows[position] = row
    table.changed = True
    return "updated"


def apply_status(table: Table, position: int, status: SubscriberStatus, when: datetime | None = None) -> bool:
    """Set one row's status (and unsubscribed_at to match); False if it already had it."""
    when = when or to_the_second(utc_now())
    if table.status(position) == status:
        return False
    table.set_cell(position, "status", status)
    if status == SubscriberStatus.UNSUBSCRIBED:
        table.set_cell(position, "unsubscribed_at", when.isoformat(timespec="seconds"))
    elif status == SubscriberStatus.ACTIVE and table.layout.index("unsubscribed_at") is not None:
        table.set_cell(position, "unsubscribed_at", "")
    return True


def updated(old: Subscriber, new: Subscriber) -> Subscriber:
    """An existing subscriber with what a new entry for the same address brings."""
    # An import must never re-subscribe someone who unsubscribed or bounced.
    status = (
        old.status
        if old.status is not SubscriberStatus.ACTIVE and new.status is SubscriberStatus.ACTIVE
        else new.status
    )
    return replace(
        old,
        name=new.name or old.name,
        keywords=new.keywords or old.keywords,
        status=status,
        unsubscribed_at=old.unsubscribed_at
        or (new.unsubscribed_at if status is SubscriberStatus.UNSUBSCRIBED else None),
        extra={**old.extra, **{k: v for k, v in new.extra.items() if v}},
    )


def cells(subscriber: Subscriber) -> dict[str, str]:
    """A subscriber as column -> text, the way a journal record stores a row."""
    layout = CsvLayout(header=["email"])
    row = to_fields(layout, subscriber)
    return {**dict(zip(layout.header, row, strict=True)), "status": subscriber.status}


def row_as_subscriber(layout: CsvLayout, fields: list[str]) -> Subscriber | None:
    """A row as a subscriber, or None when it is not a valid one."""
    try:
        return parse_row(layout, fields)
    except RowError:
        return None


def already_on_list(email: str, list_name: str) -> SubscriberError:
    """The one message for adding an address the list has."""
    return SubscriberError(
        f"{email} is already on list {list_name}",
        fix="see it with `newsletter subscribers list`, or add it with --resubscribe to make it active again",
    )


__all__ = ["MergeResult", "OnConflict", "Table", "apply_status", "fold", "merge_one"]
