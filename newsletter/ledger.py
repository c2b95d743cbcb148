"""The SQLite record of who got which issue: what makes a repeated run resume, not re-send."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .errors import LedgerError
from .statuses import STORED_STATUSES, DeliveryStatus

_STATUS_LIST = ", ".join(f"'{status}'" for status in STORED_STATUSES)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS deliveries (
    issue       TEXT NOT NULL,
    list        TEXT NOT NULL,
    email       TEXT NOT NULL,
    channel     TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ({_STATUS_LIST})),
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_reply  TEXT,
    message_id  TEXT NOT NULL,
    papers      TEXT NOT NULL DEFAULT '[]',
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (issue, list, email, channel)
);
CREATE INDEX IF NOT EXISTS deliveries_by_address ON deliveries (list, channel, email);
"""


@dataclass(frozen=True)
class LedgerEntry:
    """One subscriber's state for one issue, as far as the ledger knows."""

    email: str
    status: DeliveryStatus
    attempts: int
    message_id: str
    last_reply: str | None


@dataclass(frozen=True)
class Attempt:
    """A delivery about to be handed to the server, written before the DATA command."""

    email: str
    message_id: str
    papers: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    """What the server answered for one message."""

    email: str
    status: DeliveryStatus
    reply: str


_RECEIVED_SQL = (
    "SELECT email, papers FROM deliveries WHERE list = ? AND channel = ? AND issue != ? AND status = ?"
)


def _group_received(rows: Iterable[tuple[str, str]]) -> dict[str, frozenset[str]]:
    received: dict[str, set[str]] = {}
    for email, papers in rows:
        received.setdefault(email, set()).update(json.loads(papers))
    return {email: frozenset(ids) for email, ids in received.items()}


def _read_only(path: Path, sql: str, params: tuple[str, ...]) -> list[tuple]:  # type: ignore[type-arg]
    """Rows from a ledger opened read-only; a missing or unreadable ledger reads as empty."""
    if not path.is_file():
        return []
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return []  # unreadable or from an older version: assume nothing was sent


def _entry(row: tuple[str, str, int, str, str | None]) -> LedgerEntry:
    email, status, attempts, message_id, last_reply = row
    return LedgerEntry(email, DeliveryStatus(status), attempts, message_id, last_reply)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class DeliveryLedger:
    """Durable delivery records for one (issue, list, channel), safe to call from threads."""

    def __init__(self, path: Path, issue: str, list_name: str, channel: str) -> None:
        self.path = path
        self.issue = issue
        self.list_name = list_name
        self.channel = channel
        self._lock = threading.Lock()
        self._db = self._connect(path)

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed attempt survives a crash or power loss before the DATA command.
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise LedgerError(
                f"cannot open the delivery ledger ({exc})",
                where=str(path),
                fix="check that the folder is writable or set 'ledger' in newsletter.toml",
            ) from exc
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @staticmethod
    def peek_entries(path: Path, issue: str, list_name: str, channel: str) -> dict[str, LedgerEntry]:
        """What a real run would find, read without creating or changing anything (for --dry-run)."""
        rows = _read_only(
            path,
            "SELECT email, status, attempts, message_id, last_reply FROM deliveries"
            " WHERE issue = ? AND list = ? AND channel = ?",
            (issue, list_name, channel),
        )
        return {row[0]: _entry(row) for row in rows}

    @staticmethod
    def peek_received(path: Path, issue: str, list_name: str, channel: str) -> dict[str, frozenset[str]]:
        """Papers received in other issues, read-only: previews and dry runs change nothing."""
        rows = _read_only(path, _RECEIVED_SQL, (list_name, channel, issue, DeliveryStatus.DELIVERED))
        return _group_received(rows)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def entries(self) -> dict[str, LedgerEntry]:
        """Every recorded subscriber of this issue, keyed by lower-cased address."""
        with self._lock:
            rows = self._db.execute(
                "SELECT email, status, attempts, message_id, last_reply FROM deliveries"
                " WHERE issue = ? AND list = ? AND channel = ?",
                (self.issue, self.list_name, self.channel),
            ).fetchall()
        return {row[0]: _entry(row) for row in rows}

    def papers_received_before(self) -> dict[str, frozenset[str]]:
        """Paper ids each address already received in other issues, so they are not sent again."""
        with self._lock:
            rows = self._db.execute(
                _RECEIVED_SQL, (self.list_name, self.channel, self.issue, DeliveryStatus.DELIVERED)
            )
            return _group_received(rows)

    def record(self, outcomes: Iterable[Outcome] = (), attempts: Iterable[Attempt] = ()) -> None:
        """Write outcomes and new attempts in one durable transaction (one fsync for the batch)."""
        with self._transaction() as db:
            self._write_outcomes(db, outcomes)
            self._write_attempts(db, attempts)

    def record_attempts(self, attempts: Iterable[Attempt]) -> None:
        """Write 'sending' rows; they must be durable before the data goes out."""
        self.record(attempts=attempts)

    def record_outcomes(self, outcomes: Iterable[Outcome]) -> None:
        """Write the server's answers."""
        self.record(outcomes=outcomes)

    def _write_attempts(self, db: sqlite3.Connection, attempts: Iterable[Attempt]) -> None:
        now = _now()
        db.executemany(
            "INSERT INTO deliveries (issue, list, email, channel, status, attempts, message_id,"
            " papers, updated_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)"
            " ON CONFLICT (issue, list, email, channel) DO UPDATE SET status = excluded.status,"
            " attempts = attempts + 1, message_id = excluded.message_id,"
            " papers = excluded.papers, updated_at = excluded.updated_at",
            [
                (
                    self.issue,
                    self.list_name,
                    a.email,
                    self.channel,
                    DeliveryStatus.SENDING,
                    a.message_id,
                    json.dumps(list(a.papers)),
                    now,
                )
                for a in attempts
            ],
        )

    def _write_outcomes(self, db: sqlite3.Connection, outcomes: Iterable[Outcome]) -> None:
        now = _now()
        outcomes = list(outcomes)
        db.executemany(
            "DELETE FROM deliveries WHERE issue = ? AND list = ? AND email = ? AND channel = ?"
            " AND status = ?",
            [
                (self.issue, self.list_name, o.email, self.channel, DeliveryStatus.SENDING)
                for o in outcomes
                if o.status == DeliveryStatus.WITHDRAWN
            ],
        )
        outcomes = [o for o in outcomes if o.status != DeliveryStatus.WITHDRAWN]
        db.executemany(
            "UPDATE deliveries SET status = ?, last_reply = ?, updated_at = ?"
            " WHERE issue = ? AND list = ? AND email = ? AND channel = ?",
            [
                (o.status, o.reply[:500], now, self.issue, self.list_name, o.email, self.channel)
                for o in outcomes
            ],
        )

    def counts(self) -> dict[str, int]:
        """How many subscribers of this issue are in each state."""
        with self._lock:
            rows = self._db.execute(
                "SELECT status, COUNT(*) FROM deliveries WHERE issue = ? AND list = ? AND channel = ?"
                " GROUP BY status",
                (self.issue, self.list_name, self.channel),
            ).fetchall()
        return {status: count for status, count in rows}


@dataclass(frozen=True)
class LedgerRow:
    """One subscriber's record for one issue, as `newsletter report` shows it."""

    email: str
    status: str
    attempts: int
    last_reply: str | None
    updated_at: str


def read_issue(path: Path, issue: str, list_name: str, channel: str) -> list[LedgerRow]:
    """Every row of one issue, read-only, in the order they were last touched."""
    rows = _read_only(
        path,
        "SELECT email, status, attempts, last_reply, updated_at FROM deliveries"
        " WHERE issue = ? AND list = ? AND channel = ? ORDER BY updated_at, email",
        (issue, list_name, channel),
    )
    return [LedgerRow(*row) for row in rows]


def latest_issue(path: Path, list_name: str, channel: str) -> str | None:
    """The issue of this list most recently worked on, for `report` without --issue."""
    rows = _read_only(
        path,
        "SELECT issue FROM deliveries WHERE list = ? AND channel = ? ORDER BY updated_at DESC LIMIT 1",
        (list_name, channel),
    )
    return str(rows[0][0]) if rows else None
