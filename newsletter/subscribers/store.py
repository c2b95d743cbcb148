"""One subscriber list file that the CLI, the unsubscribe server and a send can change at once."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from filelock import FileLock, Timeout

from ..errors import SubscriberError
from ..files import atomic_write, temp_prefix
from ..models import Subscriber
from ..statuses import SubscriberStatus
from ..text import split_keywords
from .csvfile import (
    CsvLayout,
    Rows,
    missing_list_error,
    read_layout,
    read_rows,
    render,
)
from .journal import (
    Change,
    ChangeJournal,
    ChangeKind,
    Snapshot,
    apply_changes,
    check_fields,
    ensure_column,
    now,
)
from .lookup import find_row
from .rows import (
    STATUSES,
    Problem,
    RowError,
    check_email,
    parse_row,
    to_fields,
)

log = logging.getLogger(__name__)
OnConflict = Literal["error", "skip", "update"]
Outcome = Literal["added", "updated", "skipped"]
RACY_NS = 100_000_000  # comfortably more than the coarse clock tick file mtimes are stamped with
COMPACT_BYTES = 4 << 20  # a journal this big is folded into the CSV by the next change that can lock
Signature = tuple[int, int, int, int, int]  # CSV inode, mtime, size; journal inode, size


@dataclass(frozen=True)
class StatusCache:
    """Every address's status as of one version of the file, for is_active."""

    signature: Signature
    statuses: dict[str, str]
    racy: bool


class NotOnListError(SubscriberError):
    """The address has no row in the list: for the web endpoint this means 'already unsubscribed'."""


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


class SubscriberStore:
    """A subscriber list: the CSV people edit, plus a journal of changes not yet folded into it.

    Reads never take the lock (a rewrite is an atomic rename, so a reader sees the old or new
    file) and always apply the journal. A change is one fsynced journal record, O(1) however long
    the list; commands that rewrite the file (`editing`) fold the journal in first.
    `iter_subscribers` skips bad rows after reporting each as `file:line: reason`; `validate`
    collects them all; `strict=True` raises on the first instead.
    """

    def __init__(self, path: Path, lock_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.lock = FileLock(str(self.path.with_name(self.path.name + ".lock")), timeout=lock_timeout)
        self.journal = ChangeJournal.beside(self.path)
        self._status_cache: StatusCache | None = None
        self._status_offset = 0

    @property
    def name(self) -> str:
        """The list name, as used in --list and in unsubscribe tokens."""
        return self.path.stem

    def exists(self) -> bool:
        """Whether the list file is there (a missing list is an error for every read)."""
        return self.path.is_file()

    def iter_subscribers(
        self,
        strict: bool = False,
        deliverability: bool = False,
        on_problem: Callable[[Problem], None] | None = None,
    ) -> Iterator[Subscriber]:
        """Stream valid rows; file-level errors (missing, not UTF-8, no email column) raise now."""
        layout, rows = self._rows()
        report = on_problem or _log_problem
        return self._parse(layout, rows, strict, deliverability, report)

    def _rows(self) -> tuple[CsvLayout, Rows]:
        """The CSV's rows with the journal applied; rows the journal adds come last, numbered -line."""
        return self._rows_with(self.journal.read())

    def _rows_with(self, snapshot: Snapshot) -> tuple[CsvLayout, Rows]:
        layout, rows = read_rows(self.path)
        if not snapshot.changes:
            return layout, rows
        _ensure_columns(layout, snapshot)  # before the first row, so every row has the same columns
        return layout, _overlaid(layout, rows, snapshot)

    def _parse(
        self,
        layout: CsvLayout,
        rows: Rows,
        strict: bool,
        deliverability: bool,
        report: Callable[[Problem], None],
    ) -> Iterator[Subscriber]:
        seen: dict[str, int] = {}
        with contextlib.closing(rows):  # close the file even when the caller stops early
            for line, fields in rows:
                try:
                    subscriber = parse_row(layout, fields, deliverability)
                    first = seen.setdefault(subscriber.key, line)
                    if first != line:
                        raise RowError(f"duplicate of '{subscriber.email}' on line {first}")
                except RowError as exc:
                    path, number = self._where(line)
                    if strict:
                        raise SubscriberError(
                            str(exc),
                            where=f"{path}:{number}",
                            fix="correct the row, or see all problems with `newsletter subscribers validate`",
                        ) from None
                    report(Problem(path, number, str(exc)))
                    continue
                yield subscriber

    def _where(self, line: int) -> tuple[Path, int]:
        return (self.path, line) if line > 0 else (self.journal.path, -line)

    def header(self) -> list[str]:
        """The file's columns in order, unknown ones included, for exports that keep them."""
        layout = read_layout(self.path)
        _ensure_columns(layout, self.journal.read())
        return list(layout.header)

    def read(self) -> list[Subscriber]:
        """All valid rows at once, for small lists and commands that sort or count."""
        return list(self.iter_subscribers())

    def validate(self, deliverability: bool = False) -> list[Problem]:
        """Every problem in the file with its line, so one edit pass can fix them all."""
        problems: list[Problem] = []
        for _ in self.iter_subscribers(deliverability=deliverability, on_problem=problems.append):
            pass
        return problems

    def get(self, email: str) -> Subscriber | None:
        """One subscriber by address (any case), or None; a byte search, not a parse of the list."""
        key = email.strip().lower()
        if not key.isascii():
            return next((s for s in self.iter_subscribers(on_problem=_ignore) if s.key == key), None)
        layout = read_layout(self.path)
        row = find_row(self.path, layout, key)
        changes = [c for c in self.journal.read().changes if c.key == key]
        row = apply_changes(layout, row, changes)
        return None if row is None else _row_as_subscriber(layout, row)

    def is_active(self, email: str) -> bool:
        """Cheap enough per message: re-reads only when the list changed, so unsubscribes land mid-send."""
        return self._statuses().get(email.strip().lower()) == SubscriberStatus.ACTIVE

    def version(self) -> Signature | None:
        """The list as it is now (file and journal), or None when written too recently to trust."""
        signature = self._signature()
        return None if time.time_ns() - signature[1] < RACY_NS else signature

    def is_version(self, version: Signature | None) -> bool:
        """True while the list is still that version: nobody has changed it since."""
        return version is not None and self._signature() == version

    def _signature(self) -> Signature:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            raise missing_list_error(self.path) from None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size, *self.journal.signature())

    def _statuses(self) -> dict[str, str]:
        signature = self._signature()
        cache = self._status_cache
        if cache is not None and cache.signature == signature and not cache.racy:
            return cache.statuses
        if cache is not None and not cache.racy and _only_journal_grew(cache.signature, signature):
            # Only new records since the last look: apply them to the table we have.
            snapshot = self.journal.read(self._status_offset)
            if _apply_to_statuses(cache.statuses, snapshot.changes):
                self._status_offset = snapshot.end
                self._status_cache = StatusCache((*signature[:3], *snapshot.signature), cache.statuses, False)
                return cache.statuses
        loaded_at = time.time_ns()
        # As git does for its index: a file modified moments before we read it could change
        # again within the same mtime tick, so such a read is not trusted for the next call.
        racy = loaded_at - signature[1] < RACY_NS
        statuses, snapshot = self._load_statuses()
        self._status_offset = snapshot.end
        self._status_cache = StatusCache((*signature[:3], *snapshot.signature), statuses, racy)
        return statuses

    def _load_statuses(self) -> tuple[dict[str, str], Snapshot]:
        # Only two columns, no validation: this runs again after every change during a send.
        snapshot = self.journal.read()
        layout, rows = self._rows_with(snapshot)
        email, status = layout.index("email"), layout.index("status")
        statuses: dict[str, str] = {}
        for _, fields in rows:
            if email is not None and email < len(fields):
                value = fields[status].strip().lower() if status is not None and status < len(fields) else ""
                # One shared string per status, not one per row: 100,000 rows are 5 MB less.
                statuses.setdefault(
                    fields[email].strip().lower(), sys.intern(value or SubscriberStatus.ACTIVE.value)
                )
        return statuses, snapshot

    # Changes: one journal record each, O(1) however long the list.

    def record_change(
        self, email: str, expect: Mapping[str, Iterable[str]] | None = None, **fields: str
    ) -> None:
        """Journal new values for some fields of an address's row(s); durable when it returns.

        `expect` maps a column to the values it may have for the change to apply (a status of ''
        counts as 'active'): pass the values the person saw, so a hand edit of the same field made
        in the meantime wins. Without it the change applies whatever the field holds. An address
        with no row (now, or when the journal is read) is left alone.
        """
        check_fields(fields)
        conditions = {column: tuple(values) for column, values in (expect or {}).items()}
        self._append(Change(ChangeKind.SET, email.strip(), dict(fields), conditions, now()))

    def record_add(self, email: str, **fields: str) -> None:
        """Journal a new row for an address (status active unless given); nothing if it already has one."""
        check_fields(fields)
        row = {
            "status": SubscriberStatus.ACTIVE.value,
            "subscribed_at": _now().isoformat(timespec="seconds"),
            **fields,
        }
        self._append(Change(ChangeKind.ADD, email.strip(), row, {}, now()))

    def record_unsubscribe(self, email: str, when: datetime | None = None) -> None:
        """Journal an unsubscribe without reading the list: for the one-click endpoint."""
        stamp = (when or _now()).isoformat(timespec="seconds")
        self.record_change(
            email,
            expect={"status": [SubscriberStatus.ACTIVE]},
            status=SubscriberStatus.UNSUBSCRIBED.value,
            unsubscribed_at=stamp,
        )

    def _append(self, change: Change) -> None:
        if not self.path.is_file() and change.kind is not ChangeKind.ADD:
            raise missing_list_error(self.path)
        if not change.key:
            raise SubscriberError("an empty address cannot be changed", fix="pass the subscriber's email")
        self.journal.append(change)

    def needs_compaction(self) -> bool:
        """Whether the journal has grown enough to be worth folding into the CSV."""
        return self.journal.size() > COMPACT_BYTES

    def compact(self, wait: bool = True) -> bool:
        """Fold the journal into the CSV under the lock; False when another process holds it."""
        if not self.path.exists() and not self.journal.size():
            return True
        try:
            with self.editing(create=True, timeout=None if wait else 0):
                pass
        except ListLockedError:
            if wait:
                raise
            return False
        return True

    def _maybe_compact(self) -> None:
        if self.needs_compaction():
            self.compact(wait=False)

    @contextlib.contextmanager
    def editing(self, create: bool = False, timeout: float | None = None) -> Iterator[Table]:
        """Hold the lock, hand out the current rows (journal applied), write them back if changed.

        Once the file is written, the journal records it took in are dropped; any appended
        meanwhile stay for the next reader.
        """
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Poll often: a change holds the lock for milliseconds, the 50 ms default wastes most of that.
            with self.lock.acquire(timeout=timeout, poll_interval=0.005):
                self._remove_stale_temp_files()
                table = self._load_table(create)
                snapshot = self.journal.read()
                _fold(table, snapshot)
                yield table
                if table.changed:
                    atomic_write(self.path, lambda out: render(table.layout, table.rows, out))
                if snapshot.end:
                    self.journal.discard(snapshot.end)
        except Timeout:
            raise ListLockedError(
                f"subscriber list {self.name} is locked by another process",
                where=str(self.lock.lock_file),
                fix="wait for the other command to finish and try again",
            ) from None

    def _remove_stale_temp_files(self) -> None:
        # Every writer holds the lock while its temp file exists, so any we see now is from a crash.
        for stale in self.path.parent.glob(f"{temp_prefix(self.path)}*.tmp"):
            stale.unlink(missing_ok=True)

    def _load_table(self, create: bool) -> Table:
        if not self.path.exists() and create:
            return Table(CsvLayout(), [], changed=True)
        layout, rows = read_rows(self.path)
        return Table(layout, [fields for _, fields in rows])

    def _current(self, email: str) -> Subscriber:
        current = self.get(email)
        if current is None:
            raise self._not_on_list(email)
        return current

    def set_status(self, email: str, status: SubscriberStatus, when: datetime | None = None) -> bool:
        """Change one address's status; True if it changed, False if it already had it."""
        if status not in STATUSES:
            raise SubscriberError(
                f"status '{status}' is not one of {', '.join(STATUSES)}",
                fix=f"use {', '.join(STATUSES[:-1])} or {STATUSES[-1]}",
            )
        status = SubscriberStatus(status)
        current = self._current(email)
        if current.status == status:
            return False
        fields: dict[str, str] = {"status": status.value}
        if status is SubscriberStatus.UNSUBSCRIBED:
            fields["unsubscribed_at"] = (when or _now()).isoformat(timespec="seconds")
        elif status is SubscriberStatus.ACTIVE:
            fields["unsubscribed_at"] = ""
        self.record_change(email, expect={"status": [current.status]}, **fields)
        self._maybe_compact()
        return True

    def unsubscribe(self, email: str, when: datetime | None = None) -> bool:
        """Mark an active address unsubscribed; repeating it, or for a bounced one, changes nothing."""
        if not self._current(email).is_active:
            return False
        self.record_unsubscribe(email, when)
        self._maybe_compact()
        return True

    def _not_on_list(self, email: str) -> NotOnListError:
        return NotOnListError(
            f"{email} is not on list {self.name}",
            where=str(self.path),
            fix="check the address with `newsletter subscribers list`",
        )

    def add(
        self,
        email: str,
        name: str = "",
        keywords: Iterable[str] | str = (),
        status: SubscriberStatus = SubscriberStatus.ACTIVE,
        extra: dict[str, str] | None = None,
        on_conflict: OnConflict = "error",
        deliverability: bool = False,
    ) -> Outcome:
        """Add one subscriber, creating the list file if needed; duplicates follow on_conflict."""
        try:
            address = check_email(email, deliverability)
        except RowError as exc:
            raise SubscriberError(str(exc), fix="check the spelling of the address") from None
        words = split_keywords(keywords if isinstance(keywords, str) else ";".join(keywords))
        new = Subscriber(
            email=address,
            name=name.strip(),
            keywords=words,
            status=status,
            subscribed_at=_now(),
            extra=extra or {},
        )
        if not self.path.exists():
            with self.editing(create=True) as table:
                return merge_one(table, new, on_conflict, self.name)
        old = self.get(address)
        if old is None:
            self._append(Change(ChangeKind.ADD, address, _cells(new), {}, now()))
            self._maybe_compact()
            return "added"
        return self._merge_existing(old, new, on_conflict)

    def _merge_existing(self, old: Subscriber, new: Subscriber, on_conflict: OnConflict) -> Outcome:
        if on_conflict == "error":
            raise _already_on_list(new.email, self.name)
        if on_conflict == "skip":
            return "skipped"
        before, after = _cells(old), _cells(_updated(old, new))
        fields = {k: v for k, v in after.items() if v != before.get(k, "") and k != "subscribed_at"}
        if not fields:
            return "skipped"
        self.record_change(old.email, expect={k: [before.get(k, "")] for k in fields}, **fields)
        self._maybe_compact()
        return "updated"

    def remove(self, email: str) -> bool:
        """Delete an address's row entirely (unlike unsubscribe, which keeps the record)."""
        if self.get(email) is None:
            return False
        self._append(Change(ChangeKind.REMOVE, email.strip(), {}, {}, now()))
        self._maybe_compact()
        return True


class ListLockedError(SubscriberError):
    """Another process holds the list's lock for longer than we may wait."""


def _overlaid(layout: CsvLayout, rows: Rows, snapshot: Snapshot) -> Rows:
    """The CSV's rows with the journal applied, then the rows it adds (numbered -journal line)."""
    pending = snapshot.by_key()
    seen: set[str] = set()
    column = layout.index("email")
    with contextlib.closing(rows):
        for line, fields in rows:
            key = fields[column].strip().lower() if column is not None and column < len(fields) else ""
            changes = pending.get(key)
            if changes is None:
                yield line, fields
                continue
            seen.add(key)
            changed = apply_changes(layout, fields, changes)
            if changed is not None:
                yield line, changed
    for key, changes in pending.items():
        if key not in seen:
            added = apply_changes(layout, None, changes)
            if added is not None:
                yield -changes[0].line, added


def _ensure_columns(layout: CsvLayout, snapshot: Snapshot) -> None:
    """Give the header every column the journal writes."""
    for column in snapshot.columns():
        ensure_column(layout, column)


def _fold(table: Table, snapshot: Snapshot) -> None:
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


def _only_journal_grew(old: Signature, new: Signature) -> bool:
    return old[:4] == new[:4] and new[4] > old[4]


def _status_of(text: str) -> str:
    return sys.intern(text.strip().lower() or SubscriberStatus.ACTIVE.value)


def _apply_to_statuses(statuses: dict[str, str], changes: Iterable[Change]) -> bool:
    """Bring a status table up to date with new records; False when one needs more than statuses."""
    for change in changes:
        if any(column != "status" for column in change.expect):
            return False
        current = statuses.get(change.key)
        if change.kind is ChangeKind.REMOVE:
            statuses.pop(change.key, None)
        elif change.kind is ChangeKind.ADD:
            if current is None:
                statuses[change.key] = _status_of(change.fields.get("status", ""))
        elif current is not None and "status" in change.fields:
            allowed = change.expect.get("status")
            if allowed is None or current in {_status_of(a) for a in allowed}:
                statuses[change.key] = _status_of(change.fields["status"])
    return True


def _cells(subscriber: Subscriber) -> dict[str, str]:
    """A subscriber as column -> text, the way a journal record stores a row."""
    layout = CsvLayout(header=["email"])
    row = to_fields(layout, subscriber)
    return {**dict(zip(layout.header, row, strict=True)), "status": subscriber.status}


def _already_on_list(email: str, list_name: str) -> SubscriberError:
    return SubscriberError(
        f"{email} is already on list {list_name}",
        fix="see it with `newsletter subscribers list`, or add it with --resubscribe to make it active again",
    )


def merge_one(table: Table, new: Subscriber, on_conflict: OnConflict, list_name: str) -> Outcome:
    """Put one subscriber into the table: added, updated in place, or skipped."""
    position = table.find(new.email)
    if position is None:
        table.append(to_fields(table.layout, new), new.email)
        return "added"
    if on_conflict == "error":
        raise _already_on_list(new.email, list_name)
    if on_conflict == "skip":
        return "skipped"
    before = list(table.rows[position])
    old = _row_as_subscriber(table.layout, before)
    merged = _updated(old, new) if old else new
    row = to_fields(table.layout, merged, before)
    if row == before + [""] * (len(row) - len(before)):
        return "skipped"
    table.rows[position] = row
    table.changed = True
    return "updated"


def _updated(old: Subscriber, new: Subscriber) -> Subscriber:
    # An import must never re-subscribe someone who unsubscribed or bounced.
    status = (
        old.status
        if old.status is not SubscriberStatus.ACTIVE and new.status is SubscriberStatus.ACTIVE
        else new.status
    )
    return old.model_copy(
        update={
            "name": new.name or old.name,
            "keywords": new.keywords or old.keywords,
            "status": status,
            "unsubscribed_at": old.unsubscribed_at
            or (new.unsubscribed_at if status is SubscriberStatus.UNSUBSCRIBED else None),
            "extra": {**old.extra, **{k: v for k, v in new.extra.items() if v}},
        }
    )


def _row_as_subscriber(layout: CsvLayout, fields: list[str]) -> Subscriber | None:
    try:
        return parse_row(layout, fields)
    except RowError:
        return None


def apply_status(table: Table, position: int, status: SubscriberStatus, when: datetime | None = None) -> bool:
    """Set one row's status (and unsubscribed_at to match); False if it already had it."""
    when = when or _now()
    if table.status(position) == status:
        return False
    table.set_cell(position, "status", status)
    if status == SubscriberStatus.UNSUBSCRIBED:
        table.set_cell(position, "unsubscribed_at", when.isoformat(timespec="seconds"))
    elif status == SubscriberStatus.ACTIVE and table.layout.index("unsubscribed_at") is not None:
        table.set_cell(position, "unsubscribed_at", "")
    return True


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _log_problem(problem: Problem) -> None:
    log.warning("%s (row skipped)", problem)


def _ignore(problem: Problem) -> None:
    return None


__all__ = ["ListLockedError", "NotOnListError", "SubscriberStore", "Table", "apply_status", "merge_one"]
