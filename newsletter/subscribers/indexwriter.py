"""The address index of a CSV the store is rewriting, written as the rows stream out.

A compaction (every `newsletter send`) or any other whole-file rewrite under the list lock used to
leave the index describing the old file, so the next lookup rebuilt it, a whole-list read paid by
the next one-click unsubscribe or `subscribers add`. Instead the rewrite notes each row's
address and the byte offset it starts at, counted by `render` as it writes (a BOM, \\r\\n line
ends and quoted cells spanning lines are counted as the bytes they are), into a new index file.

Once the CSV is finished the index is stamped with that file's inode, size and mtime (a rename
keeps them) and "no journal record applied yet", and installed only after the CSV is in place and the
journal records it took in are cut: killed before that, the old index no longer matches the CSV
and is rebuilt as before. The CSV is renamed into place no sooner than RACY_NS after its last
write, so a hand edit after it cannot share its mtime. A header that would be read back as
another dialect, or any failure of the index, leaves the rebuild to the next lookup; the CSV is
written either way. Lists under MIN_BYTES are not indexed here (their rebuild is quick).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from ..errors import NewsletterError
from .addressindex import INSERT_ROW, WRITING, AddressIndex, CsvSignature, layout_of, new_index, seal
from .csvfile import CsvLayout, TextSink, render
from .statuscache import RACY_NS

log = logging.getLogger(__name__)

# A smaller list's rebuild at its next lookup is quick (benchmarks/bench_unsubscribe.py --rows 10000
# times it), so writing its index during the rewrite is not worth it.
MIN_BYTES = 1 << 20  # about 10,000 rows
BATCH = 20_000  # rows noted in memory before they go to SQLite


class IndexWriter:
    """One rewrite's index: `render` the rows through it, `finish` the CSV, then `install` it."""

    def __init__(self, index: AddressIndex, layout: CsvLayout) -> None:
        self.index = index
        self.layout = layout
        self.column = layout.index("email")
        self.temp: Path | None = None
        self.db: sqlite3.Connection | None = None
        self.sealed: CsvSignature | None = None  # the finished CSV the index describes

    @classmethod
    def start(cls, index: AddressIndex, layout: CsvLayout) -> IndexWriter:
        """A writer for a rewrite of the index's CSV; it writes nothing for a small list."""
        writer = cls(index, layout)
        try:
            big = os.stat(index.csv_path).st_size >= MIN_BYTES
        except FileNotFoundError:
            big = False
        if big and writer.column is not None:
            writer._open()
        return writer

    def _open(self) -> None:
        folder = self.index.csv_path.parent
        try:
            fd, name = tempfile.mkstemp(dir=folder, prefix=f".{self.index.path.name}.", suffix=WRITING)
            os.close(fd)
            self.temp = Path(name)
            self.db = new_index(self.temp)
        except (OSError, sqlite3.Error) as exc:  # the CSV is written all the same
            self._abandon(exc)

    def render(self, rows: Iterable[list[str]], out: TextSink) -> None:
        """Write the rows as `render` does, noting where each address's row starts."""
        if self.db is None or self.column is None:
            render(self.layout, rows, out)
            return
        column, batch = self.column, list[tuple[str, int]]()

        def note(row: list[str], offset: int) -> None:  # rows come padded to the header: the cell is there
            key = row[column].strip().lower()
            if key:
                batch.append((key, offset))
                if len(batch) >= BATCH:
                    self._insert(batch)

        render(self.layout, rows, out, note)
        self._insert(batch)

    def _insert(self, batch: list[tuple[str, int]]) -> None:
        if self.db is not None:
            try:
                self.db.executemany(INSERT_ROW, batch)
            except sqlite3.Error as exc:  # a full disk: the CSV matters, the cache does not
                self._abandon(exc)
        batch.clear()

    def finish(self, written: Path) -> None:
        """Seal the index for the finished CSV (given before its rename, which keeps its identity)."""
        if self.db is None:
            return
        try:
            with written.open("rb") as handle:
                signature = os.fstat(handle.fileno())
                reread = layout_of(handle, written)
            if (reread.delimiter, reread.index("email"), reread.bom) != (
                self.layout.delimiter,
                self.column,
                self.layout.bom,
            ):
                raise ValueError("its header would be read back as another dialect")
            sealed = (signature.st_ino, signature.st_size, signature.st_mtime_ns)
            seal(self.db, sealed)
            self.db.close()
            self.db = None
        except (sqlite3.Error, OSError, ValueError, NewsletterError) as exc:
            self._abandon(exc)
            return
        # An edit made after the rename must not get this mtime (a coarse clock tick): wait it out.
        wait = sealed[2] + RACY_NS - time.time_ns()
        if wait > 0:
            time.sleep(wait / 1e9)
        self.sealed = sealed

    def install(self) -> None:
        """Put the index in place, if the CSV there is still the one it describes."""
        if self.sealed is None or self.temp is None:
            return
        try:
            stat = os.stat(self.index.csv_path)
            if (stat.st_ino, stat.st_size, stat.st_mtime_ns) != self.sealed:
                return  # edited already: the next lookup rebuilds
            self.index.install_written(self.temp)
            self.temp = None
        except (OSError, sqlite3.Error) as exc:
            log.info("%s: the index written with the list was not installed (%s)", self.index.path, exc)

    def _abandon(self, exc: BaseException) -> None:
        log.info("%s: no index written with the list (%s)", self.index.path, exc)
        self.close()

    def close(self) -> None:
        """Drop whatever was not installed."""
        if self.db is not None:
            with contextlib.suppress(sqlite3.Error):
                self.db.close()
            self.db = None
        if self.temp is not None:
            self.temp.unlink(missing_ok=True)
            self.temp = None

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


__all__ = ["MIN_BYTES", "IndexWriter"]
