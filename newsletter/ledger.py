"""The SQLite record of who got which issue: what makes a repeated run resume, not re-send.

The file's shape is versioned with `PRAGMA user_version`. Each entry of `MIGRATIONS` moves a
ledger one version up; a ledger is brought to `SCHEMA_VERSION` in one transaction when a run
opens it, and one from a newer release is refused rather than guessed at. To change the
schema, append a `Migration` (never edit a released one): version N is `MIGRATIONS[:N]` applied.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sqlite3
import sys
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import LedgerError

try:
    import resource
except ImportError:  # Windows: no `ulimit -f`
    resource = None  # type: ignore[assignment]  # the module or nothing, checked where used
from .models import utc_now
from .safety.private import FILE_MODE, private_dir, private_file
from .statuses import STORED_STATUSES, DeliveryStatus

_STATUS_LIST = ", ".join(f"'{status}'" for status in STORED_STATUSES)
# What version 1 allowed, frozen: a released migration never changes.
_V1_STATUS_LIST = "'sending', 'delivered', 'failed', 'deferred'"
_TABLE = """(
                issue       TEXT NOT NULL,
                list        TEXT NOT NULL,
                email       TEXT NOT NULL,
                channel     TEXT NOT NULL,
                status      TEXT NOT NULL CHECK (status IN ({statuses})),
                attempts    INTEGER NOT NULL DEFAULT 0,
                last_reply  TEXT,
                message_id  TEXT NOT NULL,
                papers      TEXT NOT NULL DEFAULT '[]',
                updated_at  TEXT NOT NULL,
                PRIMARY KEY (issue, list, email, channel)
            )"""
_INDEX = "CREATE INDEX IF NOT EXISTS deliveries_by_address ON deliveries (list, channel, email)"


@dataclass(frozen=True)
class Migration:
    """One step of the schema: why it exists and the statements that take a ledger there."""

    why: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        # Ledgers written before versioning have these already (version 0 with the table present).
        "one row per (issue, list, address, channel)",
        (
            "CREATE TABLE IF NOT EXISTS deliveries " + _TABLE.format(statuses=_V1_STATUS_LIST),
            _INDEX,
        ),
    ),
    Migration(
        # SQLite cannot change a CHECK in place: copy into a table that allows the new status.
        "keep 'withdrawn' rows (readers who left mid-run) so `newsletter report` names them",
        (
            "CREATE TABLE deliveries_v2 " + _TABLE.format(statuses=_STATUS_LIST),
            "INSERT INTO deliveries_v2 SELECT issue, list, email, channel, status, attempts, last_reply,"
            " message_id, papers, updated_at FROM deliveries",
            "DROP TABLE deliveries",
            "ALTER TABLE deliveries_v2 RENAME TO deliveries",
            _INDEX,
        ),
    ),
    Migration(
        # `preview --issue` rebuilds a past message: `reader` is what the reader was sent beyond
        # paper ids (name, keywords, the keywords each paper matched; JSON), and the snapshot is
        # what the issue was built from (papers, templates, sender; see pipeline/snapshot.py).
        "what a message was built from, so a past one can be rebuilt",
        (
            "ALTER TABLE deliveries ADD COLUMN reader TEXT",
            """CREATE TABLE issue_snapshots (
                issue       TEXT NOT NULL,
                list        TEXT NOT NULL,
                channel     TEXT NOT NULL,
                snapshot    BLOB NOT NULL,
                updated_at  TEXT NOT NULL,
                PRIMARY KEY (issue, list, channel)
            )""",
        ),
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
_OUR_TABLES = frozenset({"deliveries"})
_FIX = "restore the file from a backup, or set 'ledger' in newsletter.toml to another file"
_RESUME = "run send again afterwards: it resumes, and nothing already recorded is lost"
_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
_LIMIT_SLACK = 256 * 1024  # a write that failed may have been this far below the limit (WAL frames)
_LOW_SPACE = 1024 * 1024
RESERVE_BYTES = 256 * 1024  # the last answers of a run take a few pages of write-ahead log


def _out_of_space(exc: sqlite3.Error | OSError, path: Path) -> LedgerError | None:
    """Disk full (ENOSPC, SQLITE_FULL) or the file size limit (EFBIG, `ulimit -f`), if it is either.

    SQLite reports a write refused with EFBIG or EDQUOT as a plain "disk I/O error" (and a short
    write as SQLITE_FULL whatever the cause), so its I/O errors are told apart by looking.
    """
    name = getattr(exc, "sqlite_errorname", "") or ""
    number = getattr(exc, "errno", None)
    if not (name.startswith(("SQLITE_FULL", "SQLITE_IOERR")) or number in _SPACE_ERRNOS):
        return None
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0] if resource is not None else -1
    if number == errno.EFBIG or (limit >= 0 and _largest(path) + _LIMIT_SLACK >= limit):
        return LedgerError(
            f"the delivery ledger reached the largest file this process may write ({limit} bytes, "
            "`ulimit -f`)",
            where=str(path),
            fix=f"raise the limit (`ulimit -f unlimited` in the job that runs send); {_RESUME}",
        )
    if number == errno.EDQUOT:
        return LedgerError(
            "the disk quota of this user is used up where the delivery ledger is",
            where=str(path),
            fix=f"free space under the quota (or set 'ledger' to a file on another disk); {_RESUME}",
        )
    if name.startswith("SQLITE_FULL") or number == errno.ENOSPC or _free(path) < _LOW_SPACE:
        return LedgerError(
            "the disk holding the delivery ledger is full",
            where=str(path),
            fix=f"free space there (or set 'ledger' to a file on another disk); {_RESUME}",
        )
    return None


def _largest(path: Path) -> int:
    """The largest of the ledger's files (the database, its -wal and -journal)."""
    sizes = [0]
    for name in (path.name, f"{path.name}-wal", f"{path.name}-journal"):
        try:
            sizes.append((path.parent / name).stat().st_size)
        except OSError:
            continue
    return max(sizes)


def _free(path: Path) -> int:
    try:
        return shutil.disk_usage(path.parent).free
    except OSError:
        return _LOW_SPACE  # cannot look: not a reason to blame the disk


def ledger_error(exc: sqlite3.Error | OSError, path: Path, doing: str = "use") -> LedgerError:
    """What a SQLite or file-system failure means for the person running send, and what to do."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    space = _out_of_space(exc, path)
    if space is not None:
        return space
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return LedgerError(
            f"cannot {doing} the delivery ledger: it is damaged ({exc})",
            where=str(path),
            fix="restore it from a backup (`sqlite3 FILE 'PRAGMA integrity_check'` shows the damage); "
            "the file was left as it is",
        )
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")) or isinstance(exc, OSError):
        return LedgerError(
            f"cannot {doing} the delivery ledger ({exc})",
            where=str(path),
            fix=f"make {path.parent} writable by this user, or set 'ledger' in newsletter.toml to a "
            "writable place",
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return LedgerError(
            "the delivery ledger is busy in another process",
            where=str(path),
            fix=f"let the other run finish; {_RESUME}",
        )
    what = f"cannot {doing} the delivery ledger ({exc})"
    return LedgerError(what, where=str(path), fix=f"{_FIX}; {_RESUME}")


@contextmanager
def guarded(path: Path, doing: str) -> Iterator[None]:
    """Turn any SQLite or file error inside into the one-line LedgerError for this ledger."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise ledger_error(exc, path, doing) from exc


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
    reader: str | None = None


@dataclass(frozen=True)
class DeliveryRecord:
    """What the ledger knows about one reader's message of one issue: enough to rebuild it."""

    email: str
    channel: str
    status: str
    message_id: str
    papers: tuple[str, ...]
    reader: str | None
    updated_at: str


@dataclass(frozen=True)
class IssueRecord:
    """One issue of one list as the ledger has it, for pickers and reports."""

    issue: str
    channel: str
    readers: int
    delivered: int
    last_update: str


@dataclass(frozen=True)
class DeliveryResult:
    """What the server answered for one message (WITHDRAWN only replaces a 'sending' row)."""

    email: str
    status: DeliveryStatus
    reply: str


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE, COMMIT inside the guarded block; roll back only if one is still open.

    The connection must be in autocommit mode (isolation_level=None). A failed COMMIT (disk full,
    busy) is rolled back and raised like any other error in the block.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def _check_version(db: sqlite3.Connection, path: Path) -> int:
    """The ledger's version, or a one-line error if it is newer than this release or not ours."""
    version = _version(db)
    if version > SCHEMA_VERSION:
        raise LedgerError(
            f"the delivery ledger has schema version {version}, newer than this release knows"
            f" ({SCHEMA_VERSION})",
            where=str(path),
            fix="upgrade newsletter to the release that wrote it, or set 'ledger' to another file",
        )
    if version == 0:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables - _OUR_TABLES:
            raise LedgerError(
                f"this SQLite file is not a delivery ledger (it has tables {', '.join(sorted(tables))})",
                where=str(path),
                fix="set 'ledger' in newsletter.toml to a file of its own, e.g. newsletter.db",
            )
    return version


def migrate(db: sqlite3.Connection, path: Path) -> int:
    """Bring an older ledger to SCHEMA_VERSION in one transaction; return the version it had."""
    if _check_version(db, path) == SCHEMA_VERSION:
        return SCHEMA_VERSION
    with transaction(db):
        version = _check_version(db, path)  # again under the write lock: another run may have done it
        for migration in MIGRATIONS[version:]:
            for statement in migration.statements:
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
    return version


_ENTRIES_SQL = (
    "SELECT email, status, attempts, message_id, last_reply FROM deliveries"
    " WHERE issue = ? AND list = ? AND channel = ?"
)
_STATUSES_SQL = "SELECT email, status FROM deliveries WHERE issue = ? AND list = ? AND channel = ?"
_RECEIVED_SQL = (
    "SELECT email, papers FROM deliveries WHERE list = ? AND channel = ? AND issue != ? AND status = ?"
)


def _group_received(
    rows: Iterable[tuple[str, str]], within: Collection[str] | None = None
) -> dict[str, frozenset[str]]:
    """Address -> paper ids, kept only where `within` (the issue's papers) has them, if given.

    Without the filter a list's whole history is held at once (every paper each reader ever got,
    growing with every issue); only this issue's papers can be picked, so only they need leaving
    out, and a reader with none of them costs nothing.
    """
    received: dict[str, set[str]] = {}
    for email, papers in rows:
        ids = json.loads(papers)
        if within is not None:
            ids = [sys.intern(i) for i in ids if i in within]
            if not ids:
                continue
        received.setdefault(email, set()).update(ids)
    return {email: frozenset(ids) for email, ids in received.items()}


def _entry(row: tuple[str, str, int, str, str | None]) -> LedgerEntry:
    email, status, attempts, message_id, last_reply = row
    return LedgerEntry(email, DeliveryStatus(status), attempts, message_id, last_reply)


def _read_only(path: Path, sql: str, params: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """Rows from a ledger read without changing it; no file means no history, a bad one is an error.

    An older ledger is migrated in a copy in memory, so a preview or dry run never writes.
    """
    if not path.exists():
        return []
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)) as db:
            if _check_version(db, path) < SCHEMA_VERSION:
                with closing(sqlite3.connect(":memory:", isolation_level=None)) as copy:
                    db.backup(copy)
                    migrate(copy, path)
                    return copy.execute(sql, params).fetchall()
            return db.execute(sql, params).fetchall()
    except ValueError as exc:  # a status this release does not know
        raise LedgerError(f"cannot read the delivery ledger ({exc})", where=str(path), fix=_FIX) from exc
    except sqlite3.Error as exc:
        raise ledger_error(exc, path, "read") from exc


def ledger_version(path: Path) -> int | None:
    """The schema version of the ledger at `path` (None if there is none yet), read without writing.

    A file this release cannot use (newer, not a ledger, not SQLite) is a LedgerError, as it is
    for every command that reads it.
    """
    if not path.exists():
        return None
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)) as db:
            return _check_version(db, path)
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot read the delivery ledger ({exc})", where=str(path), fix=_FIX) from exc


def _now() -> str:
    """Now as the ledger stores it: ISO 8601 to the second."""
    return utc_now().isoformat(timespec="seconds")


class DeliveryLedger:
    """Durable delivery records for one (issue, list, channel), safe to call from threads."""

    def __init__(self, path: Path, issue: str, list_name: str, channel: str) -> None:
        self.path = path
        self.issue = issue
        self.list_name = list_name
        self.channel = channel
        self._lock = threading.Lock()
        self._db = self._connect(path)
        # Called once, after the first attempt is on disk and before its data goes out.
        self.on_first_attempt: Callable[[], None] | None = None

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        try:
            private_file(private_dir(path.parent) / path.name)  # -wal and -shm inherit its mode
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        except (OSError, sqlite3.Error) as exc:
            raise ledger_error(exc, path, "open") from exc
        try:
            _check_version(db, path)  # before WAL, which would change a file that is not ours
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed attempt survives a crash or power loss before the DATA command.
            db.execute("PRAGMA synchronous=FULL")
            migrate(db, path)
        except LedgerError:
            db.close()
            raise
        except sqlite3.Error as exc:
            db.close()
            raise ledger_error(exc, path, "open") from exc
        return db

    def close(self) -> None:
        self._release()
        with self._lock:
            self._db.close()

    @staticmethod
    def peek_entries(path: Path, issue: str, list_name: str, channel: str) -> dict[str, LedgerEntry]:
        """What a real run would find, read without creating or changing anything (for --dry-run)."""
        rows = _read_only(path, _ENTRIES_SQL, (issue, list_name, channel))
        return {row[0]: _entry(row) for row in rows}

    @staticmethod
    def peek_statuses(path: Path, issue: str, list_name: str, channel: str) -> dict[str, DeliveryStatus]:
        """`statuses`, read-only: a dry run changes nothing."""
        rows = _read_only(path, _STATUSES_SQL, (issue, list_name, channel))
        return {email: DeliveryStatus(status) for email, status in rows}

    @staticmethod
    def peek_received(
        path: Path, issue: str, list_name: str, channel: str, within: Collection[str] | None = None
    ) -> dict[str, frozenset[str]]:
        """Papers received in other issues, read-only: previews and dry runs change nothing."""
        rows = _read_only(path, _RECEIVED_SQL, (list_name, channel, issue, DeliveryStatus.DELIVERED))
        return _group_received(rows, within)

    @staticmethod
    def peek_issues(path: Path, list_name: str) -> list[IssueRecord]:
        """Every issue recorded for a list, newest first, read-only."""
        rows = _read_only(
            path,
            "SELECT issue, channel, COUNT(*), SUM(status = 'delivered'), MAX(updated_at) FROM deliveries"
            " WHERE list = ? GROUP BY issue, channel ORDER BY MAX(updated_at) DESC, issue DESC",
            (list_name,),
        )
        return [IssueRecord(*row) for row in rows]

    @staticmethod
    def peek_deliveries(path: Path, issue: str, list_name: str, email: str) -> list[DeliveryRecord]:
        """One reader's records of one issue (one per channel, real SMTP first), read-only."""
        rows = _read_only(
            path,
            "SELECT email, channel, status, message_id, papers, reader, updated_at FROM deliveries"
            " WHERE issue = ? AND list = ? AND email = ? ORDER BY channel = 'outbox', channel",
            (issue, list_name, email.strip().lower()),
        )
        return [DeliveryRecord(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), r[5], r[6]) for r in rows]

    @staticmethod
    def peek_snapshot(path: Path, issue: str, list_name: str, channel: str) -> bytes | None:
        """The issue's recorded papers and templates (see pipeline.snapshot), read-only."""
        rows = _read_only(
            path,
            "SELECT snapshot FROM issue_snapshots WHERE issue = ? AND list = ? AND channel = ?",
            (issue, list_name, channel),
        )
        return bytes(rows[0][0]) if rows else None

    def snapshot(self) -> bytes | None:
        """This issue's snapshot as recorded by an earlier run, if any."""
        with self._lock:
            row = self._db.execute(
                "SELECT snapshot FROM issue_snapshots WHERE issue = ? AND list = ? AND channel = ?",
                (self.issue, self.list_name, self.channel),
            ).fetchone()
        return bytes(row[0]) if row else None

    def record_snapshot(self, snapshot: bytes) -> None:
        """Keep what this issue's messages are built from, durably, before any of them goes out."""
        with self._lock, guarded(self.path, "write to"), transaction(self._db) as db:
            db.execute(
                "INSERT INTO issue_snapshots (issue, list, channel, snapshot, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (issue, list, channel) DO UPDATE SET"
                " snapshot = excluded.snapshot, updated_at = excluded.updated_at",
                (self.issue, self.list_name, self.channel, snapshot, _now()),
            )

    def entries(self) -> dict[str, LedgerEntry]:
        """Every recorded subscriber of this issue, keyed by lower-cased address."""
        with self._lock, guarded(self.path, "read"):
            rows = self._db.execute(_ENTRIES_SQL, (self.issue, self.list_name, self.channel)).fetchall()
        return {row[0]: _entry(row) for row in rows}

    def statuses(self) -> dict[str, DeliveryStatus]:
        """Every recorded subscriber's status for this issue: all a run needs to skip or resume them.

        Not `entries`: a resumed run at 100,000 readers would hold every reply and Message-ID too.
        """
        with self._lock, guarded(self.path, "read"):
            rows = self._db.execute(_STATUSES_SQL, (self.issue, self.list_name, self.channel))
            return {email: DeliveryStatus(status) for email, status in rows}

    def papers_received_before(self, within: Collection[str] | None = None) -> dict[str, frozenset[str]]:
        """Paper ids each address already received in other issues, so they are not sent again.

        `within`: only these ids are kept (the issue's papers; the others cannot be picked anyway).
        """
        params = (self.list_name, self.channel, self.issue, DeliveryStatus.DELIVERED)
        with self._lock, guarded(self.path, "read"):
            return _group_received(self._db.execute(_RECEIVED_SQL, params), within)

    def record(self, outcomes: Iterable[DeliveryResult] = (), attempts: Iterable[Attempt] = ()) -> None:
        """Write outcomes and new attempts in one durable transaction (one fsync for the batch)."""
        attempts = list(attempts)
        with self._lock, guarded(self.path, "write to"), transaction(self._db) as db:
            self._write_outcomes(db, outcomes)
            self._write_attempts(db, attempts)
        if attempts and self.on_first_attempt is not None:
            first, self.on_first_attempt = self.on_first_attempt, None
            first()

    def reserve(self, size: int = RESERVE_BYTES) -> None:
        """Set aside disk space beside the ledger for the servers' last answers if the disk fills.

        Best effort: on a disk already that full, or under a small `ulimit -f`, there is none.
        """
        place = self._reserve_path
        try:
            descriptor = os.open(place, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            try:
                os.posix_fallocate(descriptor, 0, size)  # real blocks: a sparse file frees nothing
            finally:
                os.close(descriptor)
        except (OSError, AttributeError):  # AttributeError: no posix_fallocate (macOS)
            self._release()

    def record_after_fault(self, outcomes: Iterable[DeliveryResult]) -> None:
        """After a write failed for space, try the servers' answers alone once more, so nobody
        is sent the issue twice on the next run.

        First in the space `reserve` set aside (a full disk). Then, if that is not enough (the
        file size limit), after a checkpoint: it copies the write-ahead log into the database and
        makes the next write start the log at its beginning, in space the file already has.
        """
        outcomes = list(outcomes)
        self._release()
        try:
            self.record(outcomes)
            return
        except LedgerError:
            pass
        with self._lock, guarded(self.path, "write to"):
            self._db.execute("PRAGMA wal_checkpoint(RESTART)")
        self.record(outcomes)

    @property
    def _reserve_path(self) -> Path:
        return self.path.parent / f"{self.path.name}-reserve"

    def _release(self) -> None:
        with contextlib.suppress(OSError):
            self._reserve_path.unlink(missing_ok=True)

    def _write_attempts(self, db: sqlite3.Connection, attempts: Iterable[Attempt]) -> None:
        now = _now()
        db.executemany(
            "INSERT INTO deliveries (issue, list, email, channel, status, attempts, message_id,"
            " papers, reader, updated_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?)"
            " ON CONFLICT (issue, list, email, channel) DO UPDATE SET status = excluded.status,"
            " attempts = attempts + 1, message_id = excluded.message_id,"
            " papers = excluded.papers, reader = excluded.reader, updated_at = excluded.updated_at",
            [
                (
                    self.issue,
                    self.list_name,
                    a.email,
                    self.channel,
                    DeliveryStatus.SENDING,
                    a.message_id,
                    json.dumps(list(a.papers)),
                    a.reader,
                    now,
                )
                for a in attempts
            ],
        )

    def _write_outcomes(self, db: sqlite3.Connection, outcomes: Iterable[DeliveryResult]) -> None:
        now = _now()
        outcomes = list(outcomes)
        db.executemany(
            "UPDATE deliveries SET status = ?, last_reply = ?, updated_at = ?"
            " WHERE issue = ? AND list = ? AND email = ? AND channel = ? AND status = ?",
            [
                (
                    o.status,
                    o.reply[:500],
                    now,
                    self.issue,
                    self.list_name,
                    o.email,
                    self.channel,
                    DeliveryStatus.SENDING,
                )
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
        with self._lock, guarded(self.path, "read"):
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
    status: DeliveryStatus
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
    return [LedgerRow(email, DeliveryStatus(status), *rest) for email, status, *rest in rows]


def latest_issue(path: Path, list_name: str, channel: str) -> str | None:
    """The issue of this list most recently worked on, for `report` without --issue."""
    rows = _read_only(
        path,
        "SELECT issue FROM deliveries WHERE list = ? AND channel = ? ORDER BY updated_at DESC LIMIT 1",
        (list_name, channel),
    )
    return str(rows[0][0]) if rows else None


def sent_messages(path: Path, message_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Message-ID -> (list, address) for the ones among these that we recorded sending, read-only."""
    wanted = sorted(set(message_ids))
    found: dict[str, tuple[str, str]] = {}
    for start in range(0, len(wanted), 500):  # SQLite's limit on ? parameters is 999 on old builds
        chunk = tuple(wanted[start : start + 500])
        marks = ", ".join("?" * len(chunk))
        sql = f"SELECT message_id, list, email FROM deliveries WHERE message_id IN ({marks})"
        found.update({mid: (name, email) for mid, name, email in _read_only(path, sql, chunk)})
    return found


def message_ids_by_key(path: Path, keys: Iterable[str]) -> dict[str, str]:
    """Delivery key (mail/verp.py: hex of the Message-ID's HMAC start) -> Message-ID, read-only."""
    wanted = sorted({key.lower() for key in keys if key.isalnum()})
    found: dict[str, str] = {}
    for start in range(0, len(wanted), 100):
        chunk = tuple(f".{key}" for key in wanted[start : start + 100])
        where = " OR ".join("instr(message_id, ?) > 0" for _ in chunk)
        for (mid,) in _read_only(path, f"SELECT DISTINCT message_id FROM deliveries WHERE {where}", chunk):
            key = next(k[1:] for k in chunk if k in mid)
            found.setdefault(key, mid)
    return found
