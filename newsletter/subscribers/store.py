"""One subscriber list file that the CLI, the unsubscribe server and a send can change at once."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
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


@dataclass(frozen=True)
class StatusCache:
    """Every address's status as of one version of the file, for is_active."""

    signature: tuple[int, int, int]
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
    """A subscriber list CSV: streamed reads, and every change as a locked atomic rewrite.

    Reads never take the lock (a rewrite is an atomic rename, so a reader sees the old or new
    file). `iter_subscribers` skips bad rows after reporting each as `file:line: reason`;
    `validate` collects them all; `strict=True` raises on the first instead.
    """

    def __init__(self, path: Path, lock_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.lock = FileLock(str(self.path.with_name(self.path.name + ".lock")), timeout=lock_timeout)
        self._status_cache: StatusCache | None = None

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
        layout, rows = read_rows(self.path)
        report = on_problem or _log_problem
        return self._parse(layout, rows, strict, deliverability, report)

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
                    if strict:
                        raise SubscriberError(
                            str(exc),
                            where=f"{self.path}:{line}",
                            fix="correct the row, or see all problems with `newsletter subscribers validate`",
                        ) from None
                    report(Problem(self.path, line, str(exc)))
                    continue
                yield subscriber

    def header(self) -> list[str]:
        """The file's columns in order, unknown ones included, for exports that keep them."""
        return list(read_layout(self.path).header)

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
        """One subscriber by address (any case), or None."""
        key = email.strip().lower()
        return next((s for s in self.iter_subscribers(on_problem=_ignore) if s.key == key), None)

    def is_active(self, email: str) -> bool:
        """Cheap enough per message: re-reads only when the file changed, so unsubscribes land mid-send."""
        return self._statuses().get(email.strip().lower()) == SubscriberStatus.ACTIVE

    def version(self) -> tuple[int, int, int] | None:
        """The file as it is now (inode, mtime, size), or None when written too recently to trust."""
        signature = self._signature()
        return None if time.time_ns() - signature[1] < RACY_NS else signature

    def is_version(self, version: tuple[int, int, int] | None) -> bool:
        """True while the file is still that version: nobody has changed the list since."""
        return version is not None and self._signature() == version

    def _signature(self) -> tuple[int, int, int]:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            raise missing_list_error(self.path) from None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def _statuses(self) -> dict[str, str]:
        signature = self._signature()
        cache = self._status_cache
        if cache is None or cache.signature != signature or cache.racy:
            loaded_at = time.time_ns()
            # As git does for its index: a file modified moments before we read it could change
            # again within the same mtime tick, so such a read is not trusted for the next call.
            racy = loaded_at - signature[1] < RACY_NS
            cache = self._status_cache = StatusCache(signature, self._load_statuses(), racy)
        return cache.statuses

    def _load_statuses(self) -> dict[str, str]:
        # Only two columns, no validation: this runs again after every change during a send.
        layout, rows = read_rows(self.path)
        email, status = layout.index("email"), layout.index("status")
        statuses: dict[str, str] = {}
        for _, fields in rows:
            if email is not None and email < len(fields):
                value = fields[status].strip().lower() if status is not None and status < len(fields) else ""
                # One shared string per status, not one per row: 100,000 rows are 5 MB less.
                statuses.setdefault(
                    fields[email].strip().lower(), sys.intern(value or SubscriberStatus.ACTIVE.value)
                )
        return statuses

    @contextlib.contextmanager
    def editing(self, create: bool = False) -> Iterator[Table]:
        """Hold the lock, hand out the current rows, and write them back atomically if changed."""
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Poll often: a change holds the lock for milliseconds, the 50 ms default wastes most of that.
            with self.lock.acquire(poll_interval=0.005):
                self._remove_stale_temp_files()
                table = self._load_table(create)
                yield table
                if table.changed:
                    atomic_write(self.path, lambda out: render(table.layout, table.rows, out))
        except Timeout:
            raise SubscriberError(
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

    def set_status(self, email: str, status: SubscriberStatus, when: datetime | None = None) -> bool:
        """Change one address's status; True if the file changed, False if it already had it."""
        if status not in STATUSES:
            raise SubscriberError(
                f"status '{status}' is not one of {', '.join(STATUSES)}",
                fix=f"use {', '.join(STATUSES[:-1])} or {STATUSES[-1]}",
            )
        with self.editing() as table:
            positions = table.positions(email)
            if not positions:
                raise self._not_on_list(email)
            changed = [apply_status(table, position, status, when or _now()) for position in positions]
            return any(changed)

    def unsubscribe(self, email: str, when: datetime | None = None) -> bool:
        """Mark an active address unsubscribed; repeating it, or for a bounced one, changes nothing."""
        with self.editing() as table:
            positions = table.positions(email)
            if not positions:
                raise self._not_on_list(email)
            active = [p for p in positions if table.status(p) == SubscriberStatus.ACTIVE]
            for position in active:
                apply_status(table, position, SubscriberStatus.UNSUBSCRIBED, when)
            return bool(active)

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
        with self.editing(create=True) as table:
            return merge_one(table, new, on_conflict, self.name)

    def remove(self, email: str) -> bool:
        """Delete an address's row entirely (unlike unsubscribe, which keeps the record)."""
        with self.editing() as table:
            positions = table.positions(email)
            for position in reversed(positions):
                table.delete(position)
            return bool(positions)


def merge_one(table: Table, new: Subscriber, on_conflict: OnConflict, list_name: str) -> Outcome:
    """Put one subscriber into the table: added, updated in place, or skipped."""
    position = table.find(new.email)
    if position is None:
        table.append(to_fields(table.layout, new), new.email)
        return "added"
    if on_conflict == "error":
        raise SubscriberError(
            f"{new.email} is already on list {list_name}",
            fix="see it with `newsletter subscribers list`, or add it with --resubscribe "
            "to make it active again",
        )
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


__all__ = ["NotOnListError", "SubscriberStore", "Table", "apply_status", "merge_one"]
