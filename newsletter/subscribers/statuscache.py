"""Every address's status, kept in memory between calls so a send can ask before each message."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..statuses import SubscriberStatus
from .csvfile import missing_list_error
from .journal import Change, ChangeJournal, ChangeKind, Snapshot
from .overlay import rows_with

RACY_NS = 100_000_000  # comfortably more than the coarse clock tick file mtimes are stamped with
Signature = tuple[int, int, int, int, int]  # CSV inode, mtime, size; journal inode, size


@dataclass(frozen=True)
class Loaded:
    """Every address's status as of one version of the file."""

    signature: Signature
    statuses: dict[str, str]
    racy: bool


class StatusCache:
    """The statuses of a list, re-read only when the file or its journal changed."""

    def __init__(self, path: Path, journal: ChangeJournal) -> None:
        self.path = path
        self.journal = journal
        self.loaded: Loaded | None = None
        self._offset = 0

    def signature(self) -> Signature:
        """The list as it is now: CSV inode, mtime, size; journal inode, size."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            raise missing_list_error(self.path) from None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size, *self.journal.signature())

    def statuses(self) -> dict[str, str]:
        """Address -> status as of now, from the cache when nothing has changed since."""
        signature = self.signature()
        cache = self.loaded
        if cache is not None and cache.signature == signature and not cache.racy:
            return cache.statuses
        if cache is not None and not cache.racy and _only_journal_grew(cache.signature, signature):
            # Only new records since the last look: apply them to the table we have.
            snapshot = self.journal.read(self._offset)
            if _apply_to_statuses(cache.statuses, snapshot.changes):
                self._offset = snapshot.end
                self.loaded = Loaded((*signature[:3], *snapshot.signature), cache.statuses, False)
                return cache.statuses
        loaded_at = time.time_ns()
        # As git does for its index: a file modified moments before we read it could change
        # again within the same mtime tick, so such a read is not trusted for the next call.
        racy = loaded_at - signature[1] < RACY_NS
        statuses, snapshot = self._load()
        self._offset = snapshot.end
        self.loaded = Loaded((*signature[:3], *snapshot.signature), statuses, racy)
        return statuses

    def _load(self) -> tuple[dict[str, str], Snapshot]:
        # Only two columns, no validation: this runs again after every change during a send.
        snapshot = self.journal.read()
        layout, rows = rows_with(self.path, snapshot)
        email, status = layout.index("email"), layout.index("status")
        statuses: dict[str, str] = {}
        for _, fields in rows:
            if email is not None and email < len(fields):
                value = fields[status].strip().lower() if status is not None and status < len(fields) else ""
                # One shared string per status, not one per row: the map holds every row of the list.
                statuses.setdefault(
                    fields[email].strip().lower(), sys.intern(value or SubscriberStatus.ACTIVE.value)
                )
        return statuses, snapshot


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


__all__ = ["RACY_NS", "Signature", "StatusCache"]
