"""A persistent address index beside a list: is an address on it, and where its row starts.

`<list>.index` is a SQLite file (0600) mapping each address in the CSV to the byte offset of its
first row, plus the journal records applied since the CSV was last written, so `subscribers add`
on a million-row list looks one address up in O(log n) instead of scanning the whole file.

It is only a cache; the CSV stays the file people edit. The index names the CSV it was built
from (inode, size, mtime in ns) and is rebuilt when the CSV differs (a hand edit; a rewrite by
the store writes a new index as it streams the rows, see `indexwriter`);
it names how far into the journal it has applied (journal inode, first bytes, offset) and applies
the rest on use. An index built from a CSV written moments before is not kept (the next edit may
land in the same mtime tick, as git treats its index). A missing or damaged file is rebuilt
silently, and a row found through it is checked against the CSV before it is believed. When no
index can be had (a file that is not UTF-8, an unclosed quote) the caller scans the file as before.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import logging
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..files import atomic_install
from .csvfile import CsvLayout, detect_layout
from .journal import Change, ChangeJournal
from .statuscache import RACY_NS

log = logging.getLogger(__name__)

SUFFIX = ".index"
VERSION = 1
CHUNK = 8 << 20
HEAD_BYTES = 64  # the journal's first bytes: a new journal on a reused inode never matches them
BUSY_SECONDS = 2.0
STALE_BUILD_SECONDS = 3600.0  # a half-built temp file this old is from a crash
REPLACED_TRIES = 3  # a list rewritten this often during one lookup is scanned instead
WRITING = ".writing"  # the suffix of an index a rewrite is writing (`indexwriter`)
INSERT_ROW = "INSERT INTO rows VALUES (?, ?)"
SCHEMA = """
CREATE TABLE rows (key TEXT NOT NULL, offset INTEGER NOT NULL);
CREATE TABLE pending (seq INTEGER PRIMARY KEY, key TEXT NOT NULL, record TEXT NOT NULL);
CREATE INDEX pending_key ON pending (key);
CREATE TABLE state (
    version INTEGER NOT NULL, csv_inode INTEGER NOT NULL, csv_size INTEGER NOT NULL,
    csv_mtime_ns INTEGER NOT NULL, journal_inode INTEGER NOT NULL, journal_head BLOB NOT NULL,
    journal_applied INTEGER NOT NULL
);
"""
CsvSignature = tuple[int, int, int]  # inode, size, mtime_ns


@dataclass(frozen=True)
class State:
    """What an index was built from, and how far into the journal it has applied."""

    csv: CsvSignature
    journal_inode: int
    journal_head: bytes
    journal_applied: int


@dataclass(frozen=True)
class Found:
    """One address in a list: its first CSV row (before the journal) and its journal records."""

    layout: CsvLayout
    row: list[str] | None
    changes: list[Change]


class StaleIndexError(Exception):
    """The index disagrees with the CSV: it is thrown away."""


class ReplacedError(Exception):
    """The CSV was replaced during a lookup (a compaction): look again in the new one."""


class AddressIndex:
    """The `<list>.index` file of one list; safe to use from many threads and processes."""

    def __init__(self, csv_path: Path, journal: ChangeJournal) -> None:
        self.csv_path = Path(csv_path)
        self.journal = journal
        self.path = self.csv_path.with_name(self.csv_path.stem + SUFFIX)
        # One build at a time per index file in this process, however many stores point at it
        # (serve makes one store per request: 40 threads must not each index a big list).
        self._lock = _lock_for(self.path)

    def find(self, key: str) -> Found | None:
        """The address's row and records, or None when no index can be trusted (scan instead)."""
        with self._lock:
            stale = replaced = 0
            while stale < 2 and replaced < REPLACED_TRIES:
                try:
                    return self._find(key)
                except FileNotFoundError:
                    return None  # no list: the caller reports it
                except ReplacedError:
                    replaced += 1
                except (sqlite3.Error, StaleIndexError) as exc:
                    log.info("%s: rebuilding the address index (%s)", self.path, exc)
                    self.discard()  # a stale or damaged index is thrown away and built once more
                    stale += 1
                except (OSError, ValueError, csv.Error) as exc:
                    log.info("%s: no address index for this list (%s)", self.path, exc)
                    return None
        return None

    def discard(self) -> None:
        """Throw the index away (it is only a cache)."""
        for path in (self.path, self.path.with_name(self.path.name + "-journal")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _find(self, key: str) -> Found | None:
        with self.csv_path.open("rb") as handle:
            signature = _signature(handle)
            layout = layout_of(handle, self.csv_path)
            db, temporary = self._open(signature), None
            if db is None:
                # A rewrite that landed since we opened the CSV wrote its own index: use that one.
                _check_in_place(self.csv_path, signature)
                built = self._build(handle, layout, signature)
                if built is None:
                    return None
                db, temporary = built
            try:
                changes = self._catch_up(db, key)
                first = "SELECT offset FROM rows WHERE key = ? ORDER BY offset LIMIT 1"
                hit = db.execute(first, (key,)).fetchone()
                row = None if hit is None else _row_at(handle, int(hit[0]), layout, key)
            finally:
                db.close()
                if temporary is not None:
                    temporary.unlink(missing_ok=True)
        # A compaction between opening the CSV and reading the journal cut the records this
        # (old) file lacks: the answer would miss them, so it is asked of the new file instead.
        _check_in_place(self.csv_path, signature)
        return Found(layout, row, changes)

    # Opening and building

    def _open(self, signature: CsvSignature) -> sqlite3.Connection | None:
        """A connection to an index of exactly this CSV, or None when there is none."""
        if not self.path.exists():
            return None
        db = _connect(self.path)
        try:
            state = _state(db)
        except BaseException:
            db.close()
            raise
        if state.csv != signature:
            db.close()
            return None
        return db

    def _build(
        self, handle: BinaryIO, layout: CsvLayout, signature: CsvSignature
    ) -> tuple[sqlite3.Connection, Path | None] | None:
        """Index the CSV into a new file and swap it in; None when the file cannot be indexed.

        A CSV written moments ago is indexed for this lookup only (the file is not kept), and so is
        one that changed while it was read.
        """
        started = time.time_ns()
        self._remove_stale_builds()
        fd, name = tempfile.mkstemp(
            dir=self.csv_path.parent, prefix=f".{self.path.name}.", suffix=".building"
        )
        os.close(fd)
        temp = Path(name)
        try:
            entries = _entries(handle, layout)
            db = new_index(temp)
            try:
                db.executemany(INSERT_ROW, entries)
                seal(db, signature)
            finally:
                db.close()
            keep = (
                _signature(handle) == signature
                and started - signature[2] >= RACY_NS
                and _in_place(self.csv_path, signature)  # never over the index of a newer file
            )
            if keep:
                self._install(temp)
                return _connect(self.path), None
            return _connect(temp), temp
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def install_written(self, temp: Path) -> None:
        """Swap in an index a rewrite wrote and sealed (`indexwriter`), as a build's is swapped in."""
        with self._lock:
            self._install(temp)

    def remove_abandoned_writes(self) -> None:
        """Drop indexes a rewrite was writing when it died (only rewrites, under the list lock, make them)."""
        for abandoned in self.csv_path.parent.glob(f".{self.path.name}.*{WRITING}"):
            abandoned.unlink(missing_ok=True)

    def _install(self, temp: Path) -> None:
        # Hold the old index's write lock while swapping: a crash's leftover -journal is rolled
        # back into the old file first, never into the new one.
        old = None
        with contextlib.suppress(sqlite3.Error):
            if self.path.exists():
                old = _connect(self.path)
                old.execute("BEGIN EXCLUSIVE")
        try:
            if old is None:
                self.path.with_name(self.path.name + "-journal").unlink(missing_ok=True)
            atomic_install(temp, self.path)
        finally:
            if old is not None:
                with contextlib.suppress(sqlite3.Error):
                    old.execute("ROLLBACK")
                old.close()

    def _remove_stale_builds(self) -> None:
        cutoff = time.time() - STALE_BUILD_SECONDS
        for stale in self.csv_path.parent.glob(f".{self.path.name}.*.building"):
            with contextlib.suppress(OSError):
                if stale.stat().st_mtime < cutoff:
                    stale.unlink()

    # The journal

    def _catch_up(self, db: sqlite3.Connection, key: str) -> list[Change]:
        """Apply the journal's new records to the index; this address's records, in order."""
        state = _state(db)
        inode, head, start, data, same = self._journal_tail(state)
        complete = data.rfind(b"\n") + 1  # a torn last line waits for the next look
        fresh: list[tuple[str, str]] = []
        for raw in data[:complete].split(b"\n"):
            if raw.strip():
                with contextlib.suppress(ValueError, UnicodeDecodeError):
                    text = raw.decode("utf-8")
                    fresh.append((Change.decode(text, 0).key, text))
        reset = not same  # a new journal: the records the index holds were folded into the CSV
        stored = self._store_tail(db, state, State(state.csv, inode, head, start + complete), fresh, reset)
        records = [] if reset and not stored else self._pending(db, key)
        if not stored:
            records += [text for found, text in fresh if found == key]
        return [Change.decode(text, 0) for text in records]

    def _journal_tail(self, state: State) -> tuple[int, bytes, int, bytes, bool]:
        """(inode, first bytes, offset, bytes from there, same journal as the index has seen)."""
        try:
            handle = self.journal.path.open("rb")
        except FileNotFoundError:
            return 0, b"", 0, b"", state.journal_inode == 0
        with handle:
            stat = os.fstat(handle.fileno())
            head = handle.read(HEAD_BYTES)
            same = (
                stat.st_ino == state.journal_inode
                and stat.st_size >= state.journal_applied
                and head[: len(state.journal_head)] == state.journal_head
            )
            start = state.journal_applied if same else 0
            handle.seek(start)
            return stat.st_ino, head, start, handle.read(), same

    def _store_tail(
        self, db: sqlite3.Connection, was: State, now: State, fresh: list[tuple[str, str]], reset: bool
    ) -> bool:
        """Record the new records in the index; False when another process holds it (no matter)."""
        if now == was and not fresh:
            return True
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                if _state(db) != was:  # another process caught up meanwhile: its work stands
                    db.execute("ROLLBACK")
                    return True
                if reset:
                    db.execute("DELETE FROM pending")
                db.executemany("INSERT INTO pending (key, record) VALUES (?, ?)", fresh)
                db.execute(
                    "UPDATE state SET journal_inode = ?, journal_head = ?, journal_applied = ?",
                    (now.journal_inode, now.journal_head, now.journal_applied),
                )
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:  # busy, read-only folder, full disk
            log.debug("%s: journal records not stored in the index (%s)", self.path, exc)
            return False
        return True

    def _pending(self, db: sqlite3.Connection, key: str) -> list[str]:
        rows = db.execute("SELECT record FROM pending WHERE key = ? ORDER BY seq", (key,))
        return [str(record) for (record,) in rows]


_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    key = path.resolve()
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False)
    return db


def new_index(path: Path) -> sqlite3.Connection:
    """An empty index file being filled, in a transaction: no rollback journal, no syncs until sealed."""
    db = _connect(path)
    try:
        db.executescript("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
        db.execute("PRAGMA cache_size = -16384")
        db.executescript(SCHEMA)
        db.execute("BEGIN")
    except BaseException:
        db.close()
        raise
    return db


def seal(db: sqlite3.Connection, signature: CsvSignature) -> None:
    """Finish a filled index: stamped with the CSV it describes and no journal record applied yet."""
    # Indexed after the rows are in: one sort, however the list is ordered.
    db.execute("CREATE INDEX rows_key ON rows (key, offset)")
    db.execute("INSERT INTO state VALUES (?, ?, ?, ?, 0, x'', 0)", (VERSION, *signature))
    db.execute("COMMIT")
    db.execute("PRAGMA journal_mode = DELETE")


def _state(db: sqlite3.Connection) -> State:
    rows = db.execute(
        "SELECT version, csv_inode, csv_size, csv_mtime_ns, journal_inode, journal_head, journal_applied "
        "FROM state"
    ).fetchall()
    if len(rows) != 1 or rows[0][0] != VERSION:
        raise StaleIndexError("not an index this version wrote")
    _, inode, size, mtime, journal_inode, head, applied = rows[0]
    return State((int(inode), int(size), int(mtime)), int(journal_inode), bytes(head), int(applied))


def _signature(handle: BinaryIO) -> CsvSignature:
    stat = os.fstat(handle.fileno())
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def signature_of(path: Path) -> CsvSignature:
    """The identity of the file at `path` now (FileNotFoundError when there is none)."""
    stat = os.stat(path)
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _in_place(path: Path, signature: CsvSignature) -> bool:
    try:
        return signature_of(path) == signature
    except FileNotFoundError:
        return False


def _check_in_place(path: Path, signature: CsvSignature) -> None:
    if not _in_place(path, signature):
        raise ReplacedError(f"{path.name} was replaced during the lookup")


def layout_of(handle: BinaryIO, path: Path) -> CsvLayout:
    """The layout of an open CSV, read from its first line as the store reads it."""
    handle.seek(0)
    first = handle.readline()
    bom = first.startswith(b"\xef\xbb\xbf")
    return detect_layout(first.decode("utf-8-sig"), bom, path)


def _entries(handle: BinaryIO, layout: CsvLayout) -> Iterator[tuple[str, int]]:
    """(address, offset of its row) for every row; ValueError when the store would not read it."""
    column = layout.index("email")
    if column is None:
        raise ValueError("no email column")
    handle.seek(0)
    body = len(handle.readline())
    plain = _check_body(handle, body)
    handle.seek(body)
    if plain:
        yield from _plain_keys(handle, body, layout.delimiter.encode("utf-8"), column)
        return
    for offset, cells in _quoted_rows(handle, body, layout):
        if column < len(cells):
            key = cells[column].strip().lower()
            if key:
                yield key, offset


def _check_body(handle: BinaryIO, start: int) -> bool:
    """UTF-8 throughout (else ValueError); True when no quote or lone CR makes a line not a row."""
    utf8 = codecs.getincrementaldecoder("utf-8")()
    handle.seek(start)
    plain, carried = True, b""
    while chunk := handle.read(CHUNK):
        utf8.decode(chunk)
        data = carried + chunk
        carried = b"\r" if data.endswith(b"\r") else b""  # its \n may start the next chunk
        core = data[: len(data) - len(carried)]
        if plain and (b'"' in core or core.count(b"\r") != core.count(b"\r\n")):
            plain = False
    utf8.decode(b"", final=True)
    return plain and not carried


def _plain_keys(handle: BinaryIO, start: int, separator: bytes, column: int) -> Iterator[tuple[str, int]]:
    """Addresses of a file without quotes: every line is one row, its cells split on the delimiter."""
    offset, rest = start, b""
    while True:
        chunk = handle.read(CHUNK)
        data = rest + chunk
        if chunk:
            cut = data.rfind(b"\n") + 1
            lines, rest = data[:cut].split(b"\n")[:-1], data[cut:]
        else:
            lines, rest = ([data] if data else []), b""
        for line in lines:
            cells = line.split(separator, column + 1)
            if len(cells) > column:
                key = cells[column].decode("utf-8").strip().lower()
                if key:
                    yield key, offset
            offset += len(line) + 1
        if not chunk:
            return


def _quoted_rows(handle: BinaryIO, start: int, layout: CsvLayout) -> Iterator[tuple[int, list[str]]]:
    """Rows through the csv module (quoted cells may span lines), each with its first line's offset."""
    starts: list[int] = []

    def lines() -> Iterator[str]:
        position = start
        for raw in handle:
            starts.append(position)
            position += len(raw)
            yield raw.decode("utf-8")

    reader = csv.reader(lines(), delimiter=layout.delimiter, strict=False)
    for cells in reader:  # csv.Error (an unclosed quote) means no index: the store reports it
        spanned, first = len(starts), starts[0]
        starts.clear()
        if spanned > 1 and cells and cells[-1].endswith(("\n", "\r")):
            raise ValueError("a quoted field runs to the end of the file")
        yield first, cells


def _row_at(handle: BinaryIO, offset: int, layout: CsvLayout, key: str) -> list[str]:
    """The row starting at `offset`, which must be the address's: else the index is stale."""
    handle.seek(offset)
    text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
    try:
        row = next(csv.reader(text, delimiter=layout.delimiter, strict=False), [])
    finally:
        text.detach()
    column = layout.index("email")
    if column is None or column >= len(row) or row[column].strip().lower() != key:
        raise StaleIndexError(f"the row at byte {offset} is not {key}'s")
    return row


__all__ = ["AddressIndex", "Found"]
