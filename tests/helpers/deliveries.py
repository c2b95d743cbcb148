"""Delivery ledgers on either engine for tests, and what a database says was delivered."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from sqlalchemy import event, text

from newsletter.store import Database, open_database, place_of
from newsletter.store.deliveries import DeliveryLedger

# The ledger as released before versioning (user_version 0): files like this exist on disk. It
# is exactly version 1's table, so with user_version = 1 it is a version-1 ledger.
UNVERSIONED = """
CREATE TABLE deliveries (
    issue TEXT NOT NULL, list TEXT NOT NULL, email TEXT NOT NULL, channel TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('sending', 'delivered', 'failed', 'deferred')),
    attempts INTEGER NOT NULL DEFAULT 0, last_reply TEXT, message_id TEXT NOT NULL,
    papers TEXT NOT NULL DEFAULT '[]', updated_at TEXT NOT NULL,
    PRIMARY KEY (issue, list, email, channel)
);
CREATE INDEX deliveries_by_address ON deliveries (list, channel, email);
"""


def old_ledger(path: Path, version: int, *rows: tuple[str, ...]) -> str:
    """A ledger file as a release before the store left it (version 0 or 1), with these rows of
    (issue, list, email, channel, status, attempts, last_reply, message_id, papers, updated_at);
    its URL."""
    with closing(sqlite3.connect(path)) as db, db:
        db.executescript(UNVERSIONED)
        db.executemany("INSERT INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        db.execute(f"PRAGMA user_version = {version:d}")
    return f"sqlite:///{path}"


def database(url: str) -> Database:
    """The store at `url` (a sqlite:/// or postgresql:// URL), upgraded, as every command opens it."""
    return open_database(place_of(url, Path("unused.db")))


def ledger(
    url: str, issue: str = "2024-W11", list_name: str = "test", channel: str = "smtp"
) -> DeliveryLedger:
    """A run's ledger for one (issue, list, channel) in the database at `url`."""
    return DeliveryLedger(database(url), issue, list_name, channel)


def recorded(url: str) -> dict[str, tuple[str, str]]:
    """Address -> (status, Message-ID) of every delivery row, read in a connection of its own."""
    db = Database(place_of(url, Path("unused.db")))
    try:
        with db.read() as conn:
            rows = conn.execute(text("SELECT email, status, message_id FROM deliveries"))
            return {email: (status, message_id) for email, status, message_id in rows}
    finally:
        db.dispose()


def _query(url: str, sql: str) -> list[tuple[object, ...]]:
    db = Database(place_of(url, Path("unused.db")))
    try:
        with db.read() as conn:
            return [tuple(row) for row in conn.execute(text(sql))]
    finally:
        db.dispose()


def senders_of(url: str) -> int:
    """How many senders have joined any issue in the database at `url` (0 before it exists)."""
    try:
        return int(str(_query(url, "SELECT count(*) FROM senders")[0][0]))
    except Exception:  # no database, or no table yet: the first sender is still starting
        return 0


def owners_of(url: str) -> int:
    """How many senders have claimed rows of any issue in the database at `url`."""
    try:
        return int(str(_query(url, "SELECT count(DISTINCT owner) FROM deliveries")[0][0]))
    except Exception:  # no database, or no table yet: the first sender is still starting
        return 0


def sending_of(url: str, pid: int) -> int:
    """Rows handed to the server, with no answer yet, by the sender whose process is `pid`."""
    found = _query(
        url, f"SELECT count(*) FROM deliveries WHERE status = 'sending' AND owner LIKE '%:{pid:d}:%'"
    )
    return int(str(found[0][0]))


def attempted_twice(url: str) -> set[str]:
    """Addresses whose row was handed to a server more than once (a resumed delivery)."""
    return {str(email) for (email,) in _query(url, "SELECT email FROM deliveries WHERE attempts > 1")}


def statuses(url: str) -> dict[str, str]:
    """Address -> status of every delivery row."""
    return {email: status for email, (status, _) in recorded(url).items()}


def fill_after(db: Database, pages: int) -> None:
    """Make every SQLite connection of `db` refuse to grow the file by more than `pages` pages (of
    4 KiB) beyond what it has now: a disk that is about to be full."""
    with db.read() as conn:
        allowed = int(conn.exec_driver_sql("PRAGMA page_count").scalar() or 0) + pages
    db.dispose()

    def limit(dbapi_connection: object, _record: object) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count = {allowed:d}")  # type: ignore[attr-defined]

    event.listen(db.engine, "connect", limit)
