"""Finding one address's row in a big list without parsing the whole file."""

from __future__ import annotations

import csv
import mmap
from collections.abc import Iterator
from pathlib import Path

from .csvfile import CsvLayout, missing_list_error

CHUNK = 8 << 20


def find_row(path: Path, layout: CsvLayout, email: str) -> list[str] | None:
    """The first row whose email cell is `email` (any case), or None.

    A byte search for the address, then a parse of only the lines it occurs on: a big list is
    scanned in C instead of being parsed row by row (benchmarks/bench_unsubscribe.py times it).
    Only ASCII addresses take this path (bytes.lower is ASCII-only); callers parse the file for
    the others.
    """
    key = email.strip().lower()
    needle = key.encode("ascii")
    column = layout.index("email")
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise missing_list_error(path) from None
    with handle:
        if column is None or handle.seek(0, 2) == 0:
            return None
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            for hit in _hits(data, needle):
                row = _row_at(data, hit, layout.delimiter)
                if column < len(row) and row[column].strip().lower() == key:
                    return row
    return None


def _hits(data: mmap.mmap, needle: bytes) -> Iterator[int]:
    """Offsets where the needle occurs, case-insensitively, lowering one chunk at a time."""
    size, start = len(data), 0
    while start < size:
        # Overlap by the needle's length so a match across a chunk edge is still found.
        base = max(0, start - len(needle) + 1)
        chunk = data[base : start + CHUNK].lower()
        found = chunk.find(needle)
        while found >= 0:
            yield base + found
            found = chunk.find(needle, found + 1)
        start += CHUNK


def _row_at(data: mmap.mmap, offset: int, delimiter: str) -> list[str]:
    start = data.rfind(b"\n", 0, offset) + 1
    end = data.find(b"\n", offset)
    line = data[start : end if end >= 0 else len(data)].decode("utf-8", errors="replace")
    return next(csv.reader([line.lstrip("\ufeff")], delimiter=delimiter), [])
