"""A hand-kept subscribers/NAME.csv merged into the database by the next command after an edit.

`sync` merges an edited file into the database in one transaction, three-way against the copy
last synced (the `csv_base` rows): a row changed only in the file takes the file's values, one
changed only in the database keeps them, one changed in both is merged field by field, the
database winning on status. An unsubscribe or bounce is never undone by the file: such a row set
back to active, or a barred address added again, is reported with its line and ignored.

Finding what an edit changed takes one read of the file, not a parse of it: each line's digest
is compared with the digest of the line last synced at its place (most lines of an edited file
are where they were), one not there is looked up among all of them, and only the lines that
differ are parsed and merged. A file whose size and mtime are as last synced is not read at all. writeback.py
writes the database's view back into the file.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import time
import zlib
from array import array
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from ..errors import SubscriberError
from ..models import Subscriber
from ..store import schema
from ..store.csvstate import (
    BaseRow,
    CsvState,
    base_rows,
    based,
    csv_state,
    drop_base,
    has_base,
    has_rows,
    has_suppressions,
    indexes_after,
    record_csv,
    touch_csv,
    write_base,
)
from ..store.database import FRESH_ROWS
from ..store.subscriberrows import (
    SUPPRESSING,
    Suppression,
    as_values,
    barred_keys,
    delete_rows,
    insert_rows,
    rows_by_key,
    write_row,
)
from ..store.subscribers import SubscriberStore
from .csvfile import CsvLayout, RowError, open_lines, split_line, split_lines
from .rows import RowProblem, cells_of, from_cells, parse_row, read_subscribers, row_error

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)
BATCH = 2000  # changed rows merged per round of queries
KEEP_BYTES = 4 << 20  # changed lines kept from the scan; beyond that the merge reads them again
RACY_NS = 2 * 10**9  # a file written this recently may change again within its mtime tick
TRIES = 3


class Moved(Exception):
    """The file or the list changed while we worked: start again from what is there now."""


@dataclass
class Synced:
    """What the database knows of a list's file: its layout and the file as last synced."""

    layout: CsvLayout | None  # None: a list never kept as CSV
    signature: str | None  # "size mtime_ns sha256"
    digests: bytes  # every synced line's digest in file order, as little-endian int64
    last_issue: str = ""
    synced_at: str = ""  # when the work that synced it began

    def base(self, layout: CsvLayout) -> Lines | None:
        """The synced digests, when the file still has the header they were taken under."""
        import numpy as np

        old = self.layout
        same = old is not None and (old.header, old.delimiter) == (layout.header, layout.delimiter)
        return Lines.of(np.frombuffer(self.digests, "<i8")) if same else None


@dataclass
class Lines:
    """The digests of a file's lines: in file order, to compare each line with the one that was at
    its place, and sorted, to look up a line that is not."""

    in_order: np.ndarray
    ordered: np.ndarray

    @classmethod
    def of(cls, digests: np.ndarray) -> Lines:
        import numpy as np

        return cls(digests, np.sort(digests))


Changed = tuple[int, bytes, int]  # a line the last sync did not see: its number, text and digest


@dataclass
class Scan:
    """One read of the file: its layout and identity, every line's digest, the lines that differ."""

    layout: CsvLayout
    signature: str
    digests: np.ndarray
    changed: list[Changed] | None  # None: too many to keep, read them again
    last_issue: str


@dataclass
class SyncReport:
    """The rows a merge ignored, with the reason (file:line)."""

    ignored: list[RowProblem] = field(default_factory=list)


def sync(store: SubscriberStore, path: Path) -> SyncReport:
    """Merge the file into the database if it changed since it was last synced; errors name file:line."""
    for _ in range(TRIES):
        if not path.is_file() or _unchanged(path, state(store)):
            return SyncReport()
        synced = state(store, digests=True)
        found = scan(path, synced)
        if synced is not None and synced.signature and _same_content(synced, found):
            touch_csv(store.db, store.name, found.signature)  # saved again unchanged, or touched
            return SyncReport()
        try:
            report = merge(store, path, synced, found, adopt=False)
        except Moved:
            continue
        for problem in report.ignored:
            log.warning("%s", problem)
        return report
    raise SubscriberError(
        f"{path.name} kept changing while it was read", where=str(path), fix="run the command again"
    )


def state(store: SubscriberStore, conn: Connection | None = None, digests: bool = False) -> Synced | None:
    """The list's file as last synced (None: the list is not in the database yet)."""
    found = csv_state(store.db, store.name, conn, digests)
    if found is None:
        return None
    layout = CsvLayout.from_json(found.layout) if found.layout else None
    return Synced(layout, found.signature, found.digests, found.last_issue, found.synced_at)


def _unchanged(path: Path, synced: Synced | None) -> bool:
    if synced is None or not synced.signature:
        return False
    stat = path.stat()
    size, mtime, _ = synced.signature.split(" ")
    return (int(size), int(mtime)) == (stat.st_size, stat.st_mtime_ns)


def _same_content(synced: Synced, found: Scan) -> bool:
    same_text = (synced.signature or " ").rsplit(" ", 1)[1] == found.signature.rsplit(" ", 1)[1]
    return same_text and synced.layout is not None and synced.layout.to_json() == found.layout.to_json()


def _digests(layout: CsvLayout, lines: list[bytes]) -> tuple[np.ndarray, bytes]:
    """Each line's digest (CRC-32 and Adler-32 side by side, 64 bits), and the greatest last cell
    when that is `last_issue` (a send changes it on every row, so digests leave it out).

    Every step is a C loop (map over builtins, numpy): a million lines take a fraction of a second.
    """
    import numpy as np

    last = b""
    if layout.last_issue_last:
        parts = list(map(bytes.rpartition, lines, repeat(layout.delimiter.encode())))
        lines = list(map(itemgetter(0), parts))
        last = max(map(itemgetter(2), parts), default=b"")
    count = len(lines)
    crc = np.fromiter(map(zlib.crc32, lines), np.uint64, count)
    adler = np.fromiter(map(zlib.adler32, lines), np.uint64, count)
    return ((crc << np.uint64(32)) | adler).view(np.int64), last.rstrip(b"\r").strip()


def _chunks(path: Path, hasher: Any) -> Iterator[tuple[int, list[bytes]]]:
    """(number of the first line, the lines) of the file after its header, a chunk at a time,
    hashing the whole file on the way. Lines keep a `\r` before their `\n` (written back alike)."""
    with path.open("rb") as handle:
        carry, number = b"", 0
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
            lines = (carry + chunk).split(b"\n")
            carry = lines.pop()
            first, number = number + 1, number + len(lines)
            if first == 1:
                lines, first = lines[1:], 2  # the header
            yield first, lines
        if carry:
            yield number + 1, [carry]


def _unknown(base: Lines | None, digests: np.ndarray, at: int = 0) -> np.ndarray:
    """Indexes of the digests (of lines from line `at` of the file on) the last sync did not see;
    also, given the lines now as `base`, which of the last sync's digests are gone.

    A line equal to the one at its place is known without a lookup (a one-row edit of a million
    leaves one line to look up, not a million).
    """
    import numpy as np

    if base is None or not len(base.ordered):
        return np.arange(len(digests))
    there = base.in_order[at : at + len(digests)]
    moved = np.flatnonzero(there != digests[: len(there)])
    if len(there) < len(digests):
        moved = np.concatenate([moved, np.arange(len(there), len(digests))])
    found = np.minimum(base.ordered.searchsorted(digests[moved]), len(base.ordered) - 1)
    unknown: np.ndarray = moved[base.ordered[found] != digests[moved]]
    return unknown


def scan(path: Path, synced: Synced | None) -> Scan:
    """Read the file once: its layout, each line's digest, and the lines the last sync did not see.

    Blank lines are lines like any other here; the merge skips them.
    """
    import numpy as np

    layout, handle = open_lines(path)
    handle.close()
    base = synced.base(layout) if synced is not None else None
    hasher, parts = hashlib.sha256(), []
    changed: list[Changed] | None = []
    kept, last = 0, b""
    issue_at = None if layout.last_issue_last else layout.index("last_issue")
    for first, lines in _chunks(path, hasher):
        digests, greatest = _digests(layout, lines)
        parts.append(digests)
        last = max(
            last, greatest, *(_last_issue(layout, raw, issue_at) for raw in lines if issue_at is not None)
        )
        if changed is not None:
            for index in _unknown(base, digests, first - 2).tolist():
                changed.append((first + index, lines[index], int(digests[index])))
                kept += len(lines[index])
            if kept > KEEP_BYTES:
                changed = None
    stat = path.stat()
    # A file written moments ago may be edited again within its mtime tick: then the next
    # command compares its content, not its mtime.
    mtime = stat.st_mtime_ns if time.time_ns() - stat.st_mtime_ns >= RACY_NS else -1
    signature = f"{stat.st_size} {mtime} {hasher.hexdigest()}"
    everything = np.concatenate(parts) if parts else np.empty(0, np.int64)
    return Scan(layout, signature, everything, changed, last.decode("utf-8", "replace"))


def _last_issue(layout: CsvLayout, raw: bytes, at: int | None) -> bytes:
    """The last_issue cell of a line, where it is not the last column (read the long way)."""
    try:
        return split_line(layout, raw.removesuffix(b"\r"), Path(), 0)[at or 0].strip().encode()
    except (RowError, SubscriberError):
        return b""  # the merge reports the row


def _changed_lines(path: Path, found: Scan, base: Lines | None) -> Iterator[Changed]:
    """The lines that differ from the last sync: kept by the scan, or read again (and checked).

    Read again, a line's digest is the scan's: if the file changed since, its hash says so at the
    end, and the merge starts over.
    """
    if found.changed is not None:
        yield from found.changed
        return
    hasher = hashlib.sha256()
    for first, lines in _chunks(path, hasher):
        digests = found.digests[first - 2 : first - 2 + len(lines)]
        if len(digests) != len(lines):
            raise Moved  # longer than when scanned
        unknown = _unknown(base, digests, first - 2)
        yield from zip(
            (unknown + first).tolist(),
            map(lines.__getitem__, unknown.tolist()),
            digests[unknown].tolist(),
            strict=True,
        )
    if hasher.hexdigest() != found.signature.rsplit(" ", 1)[1]:
        raise Moved  # saved again since the scan: merge that version instead


@dataclass
class _Merge:
    """One merge in progress: its transaction, the file, the base rows whose lines changed or went."""

    conn: Connection
    store: SubscriberStore
    path: Path
    found: Scan
    adopt: bool  # a file we just wrote: only the base follows it
    gone: dict[str, BaseRow]
    base_layout: CsvLayout | None  # the layout the base lines were written in
    first: bool  # no base rows yet: plain inserts
    has_rows: bool
    has_suppressions: bool  # else no address in the file needs looking up as barred
    report: SyncReport = field(default_factory=SyncReport)
    keys: array[int] = field(default_factory=lambda: array("q"))  # every changed line's address, hashed
    back: set[str] = field(default_factory=set)  # addresses of `gone` whose line changed, not went


def merge(
    store: SubscriberStore, path: Path, synced: Synced | None, found: Scan, adopt: bool, *, started: str = ""
) -> SyncReport:
    """Apply the file's changes in one transaction (`adopt`: only to the base, for a file we wrote).

    `started`: when the write-back that wrote the file began reading the database; a merge of a
    hand edit keeps the time of the last write-back, as the file still lacks what the database
    changed since then.
    """

    started = started or (synced.synced_at if synced is not None else "")

    with store.db.write() as conn:
        now = state(store, conn)
        if (now.signature if now else None) != (synced.signature if synced else None):
            raise Moved  # another process merged a version of the file meanwhile
        store.create(conn)
        base = synced.base(found.layout) if synced is not None else None
        gone = (
            None if base is None else base.in_order[_unknown(Lines.of(found.digests), base.in_order)].tolist()
        )
        if adopt and gone is None:  # a file we wrote with new columns: its lines are the whole base
            drop_base(conn, store.name, None)
        first, rows = not has_base(conn, store.name), has_rows(conn, store.name)
        old = synced.layout if synced is not None else None
        earlier = {} if adopt and gone is None else base_rows(conn, store.name, gone)
        barred = has_suppressions(conn, store.name)
        run = _Merge(conn, store, path, found, adopt, earlier, old, first, rows, barred)
        try:
            # Many lines to merge (a first import) get a bigger page cache; a send's write-back
            # stays within its memory instead.
            bulk = found.changed is None and not adopt
            with (
                store.db.roomy(conn) if bulk else nullcontext(),
                _no_cycle_collection() if bulk else nullcontext(),
                indexes_after(conn) if bulk and first and not rows else nullcontext(),
            ):
                _merge_lines(run, _changed_lines(path, found, base))
            if bulk or (first and not rows and len(found.digests) >= FRESH_ROWS):  # plans must know
                store.db.fresh_statistics(conn, schema.subscribers, schema.csv_base)
        except IntegrityError:
            list(read_subscribers(path))  # a second line for one address: this names both
            raise
        _drop_gone(run)
        shown = CsvState(
            found.layout.to_json(), found.signature, found.digests.tobytes(), found.last_issue, started
        )
        record_csv(conn, store.name, shown)
    return run.report


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """A bulk merge makes millions of short-lived objects that hold no cycles, and Python's cycle
    collector would walk them every few hundred allocations: a tenth of a first import's CPU."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _merge_lines(run: _Merge, changed: Iterator[Changed]) -> None:
    """Merge the changed lines a batch at a time; two lines of one address stop it."""
    import numpy as np

    batch: list[Changed] = []
    for line in changed:
        batch.append(line)
        if len(batch) >= BATCH:
            _merge_batch(run, batch)
            batch = []
    _merge_batch(run, batch)
    keys = np.sort(np.frombuffer(run.keys, np.int64))  # (np.unique would import numpy.ma: 0.1 s)
    if bool((keys[1:] == keys[:-1]).any()):
        raise IntegrityError("", None, ValueError("two changed lines of one address"))


class _Line(NamedTuple):
    """A changed line, parsed: where it is, whose it is, what it says, its digest."""

    number: int
    key: str
    subscriber: Subscriber
    text: str  # the line, as the base keeps it
    digest: int


def _key_hash(key: str) -> int:
    """An address as 64 bits (CRC-32 and Adler-32): to find two lines of one address in 8 bytes each."""
    data = key.encode()
    return ((zlib.crc32(data) << 32) | zlib.adler32(data)) - (1 << 63)


def _merge_batch(merge: _Merge, batch: list[Changed]) -> None:
    layout, path, gone = merge.found.layout, merge.path, merge.gone
    # Blank lines are nobody; a line keeps its digest, taken with any `\r` it ends in.
    batch = [(number, raw.removesuffix(b"\r"), digest) for number, raw, digest in batch if raw.strip()]
    # A damaged line: then each is split on its own, so the first bad one is named.
    split = split_lines(layout, [raw for _, raw, _ in batch])
    rows: list[list[str] | None] = list(split) if split is not None else [None] * len(batch)
    lines: list[_Line] = []
    for (number, raw, digest), cells in zip(batch, rows, strict=True):
        try:
            subscriber = parse_row(layout, split_line(layout, raw, path, number) if cells is None else cells)
        except RowError as exc:
            raise row_error(path, number, exc) from None
        key = subscriber.key
        merge.keys.append(_key_hash(key))
        if key in gone:
            merge.back.add(key)
        lines.append(_Line(number, key, subscriber, raw.decode(), digest))
    if not lines:
        return
    name = merge.store.name
    if not merge.first and based(
        merge.conn, name, [line.key for line in lines if line.key not in merge.gone]
    ):
        list(read_subscribers(path))  # a second row for an address an unchanged line has: names both
    if not merge.adopt:
        _merge_rows(merge, lines)
    write_base(merge.conn, name, [(line.key, line.digest, line.text) for line in lines], merge.first)


def _merge_rows(merge: _Merge, lines: list[_Line]) -> None:
    keys = [line.key for line in lines]
    name = merge.store.name
    current = rows_by_key(merge.conn, name, keys) if merge.has_rows else {}
    barred = {}
    if merge.has_suppressions:
        barred = barred_keys(merge.conn, name, [k for k in keys if k not in current])
    new: list[Subscriber] = []
    for line in lines:
        theirs, ours, base = line.subscriber, current.get(line.key), merge.gone.get(line.key)
        if ours is None and base is None and (line.key not in barred or theirs.status in SUPPRESSING):
            new.append(theirs)  # every line of a first import: nothing more to decide
            continue
        where = RowProblem(merge.path, line.number, "")
        if ours is not None:
            earlier = None if base is None else _base_subscriber(merge, base[1])
            changes = _three_way(where, theirs, earlier, ours, merge.report)
            if changes:
                write_row(merge.conn, name, line.key, changes)
        elif base is not None:
            _ignore(
                merge.report,
                where,
                f"{theirs.email} was removed from the list since the file was last synced",
            )
        else:
            _ignore(merge.report, where, _barred_note(theirs.email, barred[line.key]))
    insert_rows(merge.conn, name, new)


def _base_subscriber(merge: _Merge, line: str) -> Subscriber | None:
    """A base line, read in the layout it was written in (None if that cannot be done)."""
    if merge.base_layout is None:
        return None
    try:
        return parse_row(merge.base_layout, split_line(merge.base_layout, line.encode(), merge.path, 0))
    except (RowError, SubscriberError):
        return None


def _three_way(
    where: RowProblem, theirs: Subscriber, base: Subscriber | None, ours: Subscriber, report: SyncReport
) -> dict[str, Any]:
    """The changes the file brings to one row, field by field against the base, the database
    winning on status; an unsubscribe or bounce is never undone."""
    file, mine = cells_of(theirs), cells_of(ours)
    old = cells_of(base) if base is not None else None
    merged: dict[str, str] = {}
    for column in {**file, **mine, **(old or {})}:
        f, s = file.get(column, ""), mine.get(column, "")
        b = None if old is None else old.get(column, "")
        if f == s or (b is not None and f == b):
            merged[column] = s
        elif column == "status" and (b is None or s != b):
            merged[column] = s  # both changed it: the database's word stands
        elif b is None and not f:
            merged[column] = s
        else:
            merged[column] = f
    if ours.status in SUPPRESSING and merged["status"] not in SUPPRESSING:
        _ignore(
            report,
            where,
            f"{ours.email} is {ours.status}: the file's '{file['status']}' is ignored (only "
            "`newsletter subscribers add --resubscribe` or a confirmed sign-up brings it back)",
        )
        merged["status"], merged["unsubscribed_at"] = mine["status"], mine["unsubscribed_at"]
    before, after = as_values(ours), as_values(from_cells(merged))
    return {k: v for k, v in after.items() if before[k] != v}


def _ignore(report: SyncReport, where: RowProblem, reason: str) -> None:
    report.ignored.append(RowProblem(where.path, where.line, reason))


def _barred_note(email: str, barred: Suppression) -> str:
    return (
        f"{email} {barred.reason} on {barred.since[:10]}: adding it again in the file is ignored "
        "(only `newsletter subscribers add --resubscribe` or a confirmed sign-up brings it back)"
    )


def _drop_gone(merge: _Merge) -> None:
    """Rows whose line was deleted from the file leave the list (their suppressions stay)."""
    deleted = [key for key in merge.gone if key not in merge.back]
    if deleted and not merge.adopt:
        delete_rows(merge.conn, merge.store.name, deleted)
    drop_base(merge.conn, merge.store.name, deleted)


__all__ = ["Moved", "Scan", "SyncReport", "Synced", "merge", "scan", "state", "sync"]
