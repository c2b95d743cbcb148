"""An append-only log of field-level changes beside a list CSV: a change costs O(1) and is durable when made.

Each line is one JSON record: when (`t`), what (`op`: set, add or remove), whose (`email`), the
fields it writes (`set`) and, for a set, the values those fields must still have for it to apply
(`if`). Readers apply the records on top of the CSV in order; compaction writes them into the CSV
under the list lock and drops them from the journal. Because a record names only the fields it
changes, and only applies while its `if` still holds, a hand edit of the CSV made while records
are pending survives: other fields and other rows are untouched, and a field the person changed
no longer matches `if`, so their value wins.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from ..errors import SubscriberError
from ..files import atomic_write_bytes
from ..models import utc_now
from ..statuses import SubscriberStatus
from .csvfile import CsvLayout, canonical

log = logging.getLogger(__name__)

SUFFIX = ".journal"
TORN_AFTER = 2.0  # seconds: a partial last line younger than this may still be being written
MAX_RECORD_BYTES = 64 * 1024  # far beyond any real change; keeps one record one write
COLUMN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_ .-]{0,63}$")


class ChangeKind(StrEnum):
    """What a record does to the address's row."""

    SET = "set"  # write some fields of an existing row (nothing if there is none)
    ADD = "add"  # create the row (nothing if the address already has one)
    REMOVE = "remove"  # delete the address's rows


@dataclass(frozen=True)
class Change:
    """One journal record: a field-level change to the rows of one address."""

    kind: ChangeKind
    email: str
    fields: Mapping[str, str] = field(default_factory=dict)
    expect: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    at: float = 0.0
    line: int = 0  # where it was read from, for messages; not stored

    @property
    def key(self) -> str:
        """Addresses compare case-insensitively."""
        return self.email.strip().lower()

    def encode(self) -> bytes:
        """The record as one line of JSON, newline included."""
        record: dict[str, object] = {"t": round(self.at, 6), "op": self.kind.value, "email": self.email}
        if self.fields:
            record["set"] = dict(self.fields)
        if self.expect:
            record["if"] = {name: list(values) for name, values in self.expect.items()}
        return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")

    @classmethod
    def decode(cls, text: str, line: int) -> Change:
        """A record from one line; ValueError when it is not one we wrote."""
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("email"), str):
            raise ValueError("not a change record")
        fields = data.get("set", {})
        expect = data.get("if", {})
        if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
            raise ValueError("'set' must map columns to text")
        if not isinstance(expect, dict) or not all(isinstance(v, list) for v in expect.values()):
            raise ValueError("'if' must map columns to lists")
        return cls(
            kind=ChangeKind(str(data.get("op"))),
            email=data["email"],
            fields={str(k): v for k, v in fields.items()},
            expect={str(k): tuple(str(x) for x in v) for k, v in expect.items()},
            at=float(data.get("t", 0.0)),
            line=line,
        )


def normalized(column: str, value: str) -> str:
    """A cell as compared by `if`: trimmed; a status is lower-cased and empty means active."""
    value = value.strip()
    return (value.lower() or SubscriberStatus.ACTIVE.value) if canonical(column) == "status" else value


def check_fields(fields: Mapping[str, str]) -> None:
    """Refuse column names a CSV header could not carry and values that are not text."""
    for name, value in fields.items():
        if not COLUMN_NAME.match(name):
            raise SubscriberError(
                f"'{name}' is not a usable column name",
                fix="use letters, digits, spaces, '.', '_' or '-', starting with a letter",
            )
        if not isinstance(value, str):
            raise SubscriberError(f"the value of '{name}' must be text, not {type(value).__name__}")


@dataclass
class Snapshot:
    """The records of a journal up to `end`, the offset just past the last complete line."""

    changes: list[Change]
    end: int
    signature: tuple[int, int]

    def by_key(self) -> dict[str, list[Change]]:
        """The records of each address, in the order they were made."""
        grouped: dict[str, list[Change]] = {}
        for change in self.changes:
            grouped.setdefault(change.key, []).append(change)
        return grouped

    def columns(self) -> list[str]:
        """Every column a record writes, so a reader's header has them before the first row."""
        seen: dict[str, None] = {}
        for change in self.changes:
            seen.update(dict.fromkeys(change.fields))
        return list(seen)


class ChangeJournal:
    """The `<list>.journal` file: appends from any number of processes and threads, never torn."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def beside(cls, csv_path: Path) -> ChangeJournal:
        """The journal of a list file: same folder, same name, `.journal` instead of `.csv`."""
        return cls(csv_path.with_name(csv_path.stem + SUFFIX))

    def size(self) -> int:
        """Bytes in the journal (0 when there is none): cheap enough to ask before every message."""
        try:
            return os.stat(self.path).st_size
        except FileNotFoundError:
            return 0

    def signature(self) -> tuple[int, int]:
        """(inode, size): changes whenever a record is added or the journal is compacted."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return (0, 0)
        return (stat.st_ino, stat.st_size)

    def append(self, change: Change) -> None:
        """Write one record and fsync it: once this returns, the change survives a crash."""
        data = change.encode()
        if len(data) > MAX_RECORD_BYTES:
            raise SubscriberError(
                f"a change of {len(data)} bytes is too large for the journal",
                where=str(self.path),
                fix=f"keep the values of one change under {MAX_RECORD_BYTES // 1024} KiB",
            )
        try:
            with self._open_for_append() as fd:
                size = os.fstat(fd).st_size
                # A crash can leave a torn last line; start on a fresh one so this record stays whole.
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data
                written = os.write(fd, data)  # O_APPEND: one write is one record, never interleaved
                if written != len(data):
                    raise OSError(28, "short write (is the disk full?)")
                os.fsync(fd)
                if size == 0:
                    _fsync_dir(self.path.parent)
        except OSError as exc:
            raise SubscriberError(
                f"cannot record the change ({exc.strerror or exc})",
                where=str(self.path),
                fix="check that the folder is writable and the disk is not full, then try again",
            ) from exc

    @contextlib.contextmanager
    def _open_for_append(self) -> Iterator[int]:
        # A shared flock: appends run side by side, compaction waits for them (and they for it).
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                if _same_file(fd, self.path):
                    yield fd
                    return
            finally:
                os.close(fd)  # closing drops the flock too
            # Compaction replaced the file while we waited: append to the new one.

    def read(self, start: int = 0) -> Snapshot:
        """Every complete record from `start` on; a torn last line is ignored with a warning."""
        try:
            with self.path.open("rb") as handle:
                stat = os.fstat(handle.fileno())
                handle.seek(start)
                data = handle.read()
        except FileNotFoundError:
            return Snapshot([], 0, (0, 0))
        except OSError as exc:
            raise SubscriberError(
                f"cannot read the change journal ({exc.strerror})",
                where=str(self.path),
                fix="check its permissions",
            ) from exc
        complete = data.rfind(b"\n") + 1
        if complete < len(data) and time.time() - stat.st_mtime > TORN_AFTER:
            log.warning(
                "%s: ignoring an incomplete last record (%d bytes, an interrupted write)",
                self.path,
                len(data) - complete,
            )
        first_line = 1 + (self._count_lines(start) if start else 0)
        changes = list(self._decode(data[:complete], first_line))
        return Snapshot(changes, start + complete, (stat.st_ino, start + complete))

    def _count_lines(self, upto: int) -> int:
        with self.path.open("rb") as handle:
            return handle.read(upto).count(b"\n")

    def _decode(self, data: bytes, first_line: int) -> Iterator[Change]:
        for number, raw in enumerate(data.split(b"\n"), start=first_line):
            if not raw.strip():
                continue
            try:
                yield Change.decode(raw.decode("utf-8"), number)
            except (ValueError, UnicodeDecodeError) as exc:
                log.warning("%s:%d: record ignored (%s)", self.path, number, exc)

    def discard(self, upto: int) -> None:
        """Drop the records before `upto` (they are in the CSV now), keeping any appended since."""
        if not self.path.exists():
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # no append is half done while we cut
            size = os.fstat(fd).st_size
            if size <= upto:
                # Gone rather than emptied: appenders waiting on it notice and start a new file.
                self.path.unlink()
                _fsync_dir(self.path.parent)
                return
            rest = os.pread(fd, size - upto, upto)
            # Replaced, not cut in place: appenders waiting on the old file notice and reopen.
            atomic_write_bytes(self.path, rest)
        finally:
            os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        here = os.stat(path)
    except FileNotFoundError:
        return False
    there = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def apply_changes(layout: CsvLayout, row: list[str] | None, changes: Iterable[Change]) -> list[str] | None:
    """One address's row after its records, in order (None: no row). Grows the header as needed."""
    for change in changes:
        if change.kind is ChangeKind.REMOVE:
            row = None
        elif change.kind is ChangeKind.ADD:
            if row is None:
                row = _write(layout, [], {"email": change.email, **change.fields})
        elif row is not None and _holds(layout, row, change.expect):
            row = _write(layout, row, change.fields)
    return row


def _holds(layout: CsvLayout, row: list[str], expect: Mapping[str, tuple[str, ...]]) -> bool:
    for column, allowed in expect.items():
        position = layout.index(canonical(column))
        if position is None:
            position = _exact(layout, column)
        value = row[position] if position is not None and position < len(row) else ""
        if normalized(column, value) not in {normalized(column, a) for a in allowed}:
            return False
    return True


def _exact(layout: CsvLayout, column: str) -> int | None:
    return layout.header.index(column) if column in layout.header else None


def _write(layout: CsvLayout, row: list[str], fields: Mapping[str, str]) -> list[str]:
    row = list(row)
    for column, value in fields.items():
        position = ensure_column(layout, column)
        row += [""] * (position + 1 - len(row))
        row[position] = value
    return row


def ensure_column(layout: CsvLayout, column: str) -> int:
    """Where a column a record writes is, appending it to the header when the file lacks it."""
    position = layout.index(canonical(column))
    if position is None:
        position = _exact(layout, column)
    if position is None:
        layout.header.append(column)
        position = len(layout.header) - 1
    return position


def now() -> float:
    """The timestamp stored with a record."""
    return utc_now().timestamp()


__all__ = [
    "Change",
    "ChangeJournal",
    "ChangeKind",
    "Snapshot",
    "apply_changes",
    "check_fields",
    "ensure_column",
    "normalized",
]
