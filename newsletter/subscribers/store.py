"""One subscriber list file that the CLI, the unsubscribe server and a send can change at once."""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SubscriberError
from ..files import atomic_write, temp_prefix
from ..models import Subscriber, to_the_second, utc_now
from ..statuses import SubscriberStatus
from ..text import split_keywords
from .addressindex import AddressIndex, CsvSignature, signature_of
from .csvfile import CsvLayout, Rows, missing_list_error, read_layout, read_rows
from .indexwriter import IndexWriter
from .journal import Change, ChangeJournal, ChangeKind, apply_changes, check_fields, now
from .lookup import find_row
from .overlay import ensure_columns, rows_with
from .rows import STATUSES, RowError, RowProblem, check_email, parse_row
from .statuscache import RACY_NS, Signature, StatusCache
from .table import (
    MergeResult,
    OnConflict,
    Table,
    already_on_list,
    cells,
    fold,
    merge_one,
    row_as_subscriber,
    updated,
)

if TYPE_CHECKING:
    from filelock import FileLock

log = logging.getLogger(__name__)
COMPACT_BYTES = 4 << 20  # a journal this big is folded into the CSV by the next change that can lock
EDITED_RETRIES = 3  # compactions tried while an editor keeps saving the CSV; then left for next time


class NotOnListError(SubscriberError):
    """The address has no row in the list: for the web endpoint this means 'already unsubscribed'."""


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
        self.lock_timeout = lock_timeout
        self.journal = ChangeJournal.beside(self.path)
        self.status_cache = StatusCache(self.path, self.journal)
        self.index = AddressIndex(self.path, self.journal)

    @functools.cached_property
    def lock(self) -> FileLock:
        """The list's lock file, imported and made only by commands that rewrite the list."""
        from filelock import FileLock

        return FileLock(str(self.path.with_name(self.path.name + ".lock")), timeout=self.lock_timeout)

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
        on_problem: Callable[[RowProblem], None] | None = None,
    ) -> Iterator[Subscriber]:
        """Stream valid rows; file-level errors (missing, not UTF-8, no email column) raise now."""
        layout, rows = self._rows()
        report = on_problem or _log_problem
        return self._parse(layout, rows, strict, deliverability, report)

    def _rows(self) -> tuple[CsvLayout, Rows]:
        """The CSV's rows with the journal applied; rows the journal adds come last, numbered -line."""
        return rows_with(self.path, self.journal.read())

    def _parse(
        self,
        layout: CsvLayout,
        rows: Rows,
        strict: bool,
        deliverability: bool,
        report: Callable[[RowProblem], None],
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
                    report(RowProblem(path, number, str(exc)))
                    continue
                yield subscriber

    def _where(self, line: int) -> tuple[Path, int]:
        return (self.path, line) if line > 0 else (self.journal.path, -line)

    def header(self) -> list[str]:
        """The file's columns in order, unknown ones included, for exports that keep them."""
        layout = read_layout(self.path)
        ensure_columns(layout, self.journal.read())
        return list(layout.header)

    def read(self) -> list[Subscriber]:
        """All valid rows at once, for small lists and commands that sort or count."""
        return list(self.iter_subscribers())

    def validate(self, deliverability: bool = False) -> list[RowProblem]:
        """Every problem in the file with its line, so one edit pass can fix them all."""
        problems: list[RowProblem] = []
        for _ in self.iter_subscribers(deliverability=deliverability, on_problem=problems.append):
            pass
        return problems

    def get(self, email: str) -> Subscriber | None:
        """One subscriber by address (any case), or None: through the address index when there is one.

        Without an index (a list it cannot read) this is a byte search, not a parse of the list.
        """
        key = email.strip().lower()
        if not key.isascii():
            return next((s for s in self.iter_subscribers(on_problem=_ignore) if s.key == key), None)
        found = self.index.find(key)
        if found is not None:
            layout, row = found.layout, apply_changes(found.layout, found.row, found.changes)
        else:
            # The journal first, as every reader: a compaction landing in between folds its records
            # into the CSV we then read (applied twice, no matter), never cuts ones we did not see.
            changes = [c for c in self.journal.read().changes if c.key == key]
            layout = read_layout(self.path)
            row = apply_changes(layout, find_row(self.path, layout, key), changes)
        return None if row is None else row_as_subscriber(layout, row)

    def is_active(self, email: str) -> bool:
        """Cheap enough per message: re-reads only when the list changed, so unsubscribes land mid-send."""
        return self.status_cache.statuses().get(email.strip().lower()) == SubscriberStatus.ACTIVE

    def version(self) -> Signature | None:
        """The list as it is now (file and journal), or None when written too recently to trust."""
        signature = self.status_cache.signature()
        return None if time.time_ns() - signature[1] < RACY_NS else signature

    def is_version(self, version: Signature | None) -> bool:
        """True while the list is still that version: nobody has changed it since."""
        return version is not None and self.status_cache.signature() == version

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
            "subscribed_at": utc_now().isoformat(timespec="seconds"),
            **fields,
        }
        self._append(Change(ChangeKind.ADD, email.strip(), row, {}, now()))

    def record_unsubscribe(self, email: str, when: datetime | None = None) -> None:
        """Journal an unsubscribe without reading the list: for the one-click endpoint."""
        stamp = (when or utc_now()).isoformat(timespec="seconds")
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
        """Fold the journal into the CSV under the lock; False when another process holds it.

        The rows stream from the old file through the journal into the new one, as every reader
        sees them: a send compacts before it reads, and a whole-list table would be the biggest
        thing in its memory. Also False when an editor saves the CSV during every try: the journal
        then waits, as readers apply it anyway.
        """
        if not self.path.exists() and not self.journal.size():
            return True
        timeout = None if wait else 0
        try:
            for attempt in range(EDITED_RETRIES):
                try:
                    if not self.path.exists():  # a list only the journal holds: small by definition
                        with self.editing(create=True, timeout=timeout):
                            pass
                    else:
                        with self._locked(timeout):
                            self._fold_journal()
                    return True
                except ListEditedError as exc:
                    if attempt == EDITED_RETRIES - 1:
                        log.warning("%s; the journal is folded in next time", exc.what)
        except ListLockedError:
            if wait:
                raise
        return False

    def _fold_journal(self) -> None:
        before = self._identity()
        snapshot = self.journal.read()
        if snapshot.changes:
            layout, rows = rows_with(self.path, snapshot)
            with contextlib.closing(rows):
                self._rewrite(layout, (fields for _, fields in rows), snapshot.end, before)
        elif snapshot.end:
            self.journal.discard(snapshot.end)

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
        with self._locked(timeout):
            before = self._identity()
            table = self._load_table(create)
            snapshot = self.journal.read()
            fold(table, snapshot)
            yield table
            if table.changed:
                self._rewrite(table.layout, table.rows, snapshot.end, before)
            elif snapshot.end:
                self.journal.discard(snapshot.end)

    def _rewrite(
        self, layout: CsvLayout, rows: Iterable[list[str]], journal_end: int, before: CsvSignature | None
    ) -> None:
        """Replace the CSV under the lock, cut the journal records it took in, and leave a fresh index.

        The index is written as the rows stream out and put in place last: killed before that,
        the old index no longer matches the new CSV and the next lookup rebuilds it. A CSV that
        is no longer the file `before` names (saved by an editor meanwhile, which takes no lock)
        is left as it is, and so is the journal: ListEditedError.
        """

        def ready(written: Path) -> None:
            if self._identity() != before:
                raise ListEditedError(
                    f"{self.path.name} was changed by another program while it was being rewritten",
                    where=str(self.path),
                    fix="nothing was lost (the edit is kept, the pending changes too): run the command again",
                )
            index.finish(written)

        with IndexWriter.start(self.index, layout) as index:
            atomic_write(self.path, lambda out: index.render(rows, out), ready=ready)
            if journal_end:
                self.journal.discard(journal_end)
            index.install()

    def _identity(self) -> CsvSignature | None:
        """The CSV's inode, size and mtime: an editor saving it changes at least one."""
        try:
            return signature_of(self.path)
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def _locked(self, timeout: float | None) -> Iterator[None]:
        """The list's lock, with any temp file a crashed writer left behind cleared."""
        from filelock import Timeout

        try:
            # Poll often: a change holds the lock only briefly, and filelock's 50 ms default would keep a
            # waiter asleep long after the lock is free.
            with self.lock.acquire(timeout=timeout, poll_interval=0.005):
                self._remove_stale_temp_files()
                yield
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
        self.index.remove_abandoned_writes()

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
            fields["unsubscribed_at"] = (when or utc_now()).isoformat(timespec="seconds")
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
    ) -> MergeResult:
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
            subscribed_at=to_the_second(utc_now()),
            extra=extra or {},
        )
        if not self.path.exists():
            with self.editing(create=True) as table:
                return merge_one(table, new, on_conflict, self.name)
        old = self.get(address)
        if old is None:
            self._append(Change(ChangeKind.ADD, address, cells(new), {}, now()))
            self._maybe_compact()
            return "added"
        return self._merge_existing(old, new, on_conflict)

    def _merge_existing(self, old: Subscriber, new: Subscriber, on_conflict: OnConflict) -> MergeResult:
        if on_conflict == "error":
            raise already_on_list(new.email, self.name)
        if on_conflict == "skip":
            return "skipped"
        before, after = cells(old), cells(updated(old, new))
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


class ListEditedError(SubscriberError):
    """The CSV was saved by someone else during a rewrite: the rewrite is dropped, not the edit."""


def _log_problem(problem: RowProblem) -> None:
    log.warning("%s (row skipped)", problem)


def _ignore(problem: RowProblem) -> None:
    return None


__all__ = ["ListEditedError", "ListLockedError", "NotOnListError", "SubscriberStore"]
