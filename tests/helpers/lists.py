"""Subscriber list files as people leave them, and a look at the address index beside one."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import BinaryIO

import pytest

from newsletter.subscribers import SubscriberStore
from newsletter.subscribers.addressindex import AddressIndex, CsvSignature, signature_of
from newsletter.subscribers.csvfile import CsvLayout
from newsletter.subscribers.journal import ChangeJournal

AN_HOUR = 3600 * 10**9


def settle(path: Path, ago_ns: int = AN_HOUR) -> None:
    """Date the CSV in the past, as a list nobody has touched for a while is (a fresh one is not indexed)."""
    when = time.time_ns() - ago_ns
    os.utime(path, ns=(when, when))


def write(path: Path, text: str, *, settled: bool = True) -> Path:
    path.write_bytes(text.encode("utf-8"))
    if settled:
        settle(path)
    return path


def count_builds(monkeypatch: pytest.MonkeyPatch, index: Path) -> list[Path]:
    """Every build of this index from its CSV from now on: the rebuilds lookups pay for."""
    builds: list[Path] = []
    real_build = AddressIndex._build

    def counted(
        self: AddressIndex, handle: BinaryIO, layout: CsvLayout, signature: CsvSignature
    ) -> tuple[sqlite3.Connection, Path | None] | None:
        if self.path == index:
            builds.append(self.path)
        return real_build(self, handle, layout, signature)

    monkeypatch.setattr(AddressIndex, "_build", counted)
    return builds


def index_rows(index: Path) -> list[tuple[str, int]]:
    """What an index file maps, in order."""
    with sqlite3.connect(index) as db:
        rows = [(str(k), int(o)) for k, o in db.execute("SELECT key, offset FROM rows ORDER BY key, offset")]
    db.close()
    return rows


def index_stamp(index: Path) -> tuple[tuple[int, int, int], int, bytes, int]:
    """The CSV an index file says it describes (inode, size, mtime_ns), and its journal position."""
    with sqlite3.connect(index) as db:
        row = db.execute(
            "SELECT csv_inode, csv_size, csv_mtime_ns, journal_inode, journal_head, journal_applied "
            "FROM state"
        ).fetchone()
    db.close()
    inode, size, mtime, journal_inode, head, applied = row
    return (int(inode), int(size), int(mtime)), int(journal_inode), bytes(head), int(applied)


def rebuilt_rows(csv_path: Path, scratch: Path) -> list[tuple[str, int]]:
    """What a build from scratch maps for the same bytes (a settled copy elsewhere, indexed the usual way)."""
    scratch.mkdir()
    copy = scratch / csv_path.name
    shutil.copyfile(csv_path, copy)
    settle(copy)
    index = AddressIndex(copy, ChangeJournal.beside(copy))
    assert index.find("nobody@example.org") is not None, "a list the index cannot read"
    return index_rows(index.path)


def assert_fresh_index(store: SubscriberStore, scratch: Path) -> None:
    """The index on disk describes the CSV in place exactly as a rebuild from scratch would."""
    assert index_stamp(store.index.path)[0] == signature_of(store.path)
    assert index_rows(store.index.path) == rebuilt_rows(store.path, scratch)
