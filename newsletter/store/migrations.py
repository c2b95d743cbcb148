"""The store's shape, versioned: numbered steps that take any database to the newest schema.

Every database, new or old, SQLite or PostgreSQL, is built by the same steps in order, so a fresh
one and one upgraded from the first release end up alike (a test compares them with schema.py).
Steps 1-3 are the delivery ledger's, from before the store held anything else; SQLite files from
those releases carry their version in `PRAGMA user_version`. To change the schema, append a step
(never edit a released one). The version of each database is the highest row of
`schema_migrations`; on SQLite it is also written to `user_version`, so that an older release,
which reads only that, refuses a file from a newer one instead of guessing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, inspect, text

from ..errors import StoreError
from .schema import metadata

# A released step never changes: these are the statuses version 1 allowed, frozen.
_V1_STATUSES = "'sending', 'delivered', 'failed', 'deferred'"
_V2_STATUSES = "'sending', 'delivered', 'failed', 'deferred', 'withdrawn'"
_DELIVERIES = """(
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
# Version 6: 'queued' and 'held', and who claimed each row (many senders share the queue).
_V6_STATUSES = "'queued', 'sending', 'delivered', 'failed', 'deferred', 'withdrawn', 'held'"
_DELIVERIES_V6 = f"""(
    issue       TEXT NOT NULL,
    list        TEXT NOT NULL,
    email       TEXT NOT NULL,
    channel     TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ({_V6_STATUSES})),
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_reply  TEXT,
    message_id  TEXT NOT NULL,
    papers      TEXT NOT NULL DEFAULT '[]',
    updated_at  TEXT NOT NULL,
    reader      TEXT,
    owner       TEXT,
    shard       TEXT,
    PRIMARY KEY (issue, list, email, channel)
)"""
_BY_ADDRESS = "CREATE INDEX IF NOT EXISTS deliveries_by_address ON deliveries (list, channel, email)"
# Taken by every upgrade on PostgreSQL, so two hosts upgrading at once run the steps once.
_PG_UPGRADE_LOCK = 0x6E6C6472  # "nldr"


@dataclass(frozen=True)
class Migration:
    """One step of the schema: why it exists, and what it does on a connection in a transaction."""

    why: str
    apply: Callable[[Connection], None]


def _run(*statements: str) -> Callable[[Connection], None]:
    def apply(conn: Connection) -> None:
        for statement in statements:
            conn.exec_driver_sql(statement.replace("BLOB", _blob(conn)))

    return apply


def _blob(conn: Connection) -> str:
    return "BYTEA" if conn.dialect.name == "postgresql" else "BLOB"


def _steps(*steps: Callable[[Connection], None]) -> Callable[[Connection], None]:
    def apply(conn: Connection) -> None:
        for step in steps:
            step(conn)

    return apply


def _create(*names: str) -> Callable[[Connection], None]:
    # These tables are created as schema.py defines them. Before a later step changes one of
    # them, copy its definition as of this step in here: a released step must not change.
    def apply(conn: Connection) -> None:
        for name in names:
            metadata.tables[name].create(conn)

    return apply


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "one row per (issue, list, address, channel)",
        # Ledgers written before versioning have the table already (version 0 with it present).
        _run(
            "CREATE TABLE IF NOT EXISTS deliveries " + _DELIVERIES.format(statuses=_V1_STATUSES),
            _BY_ADDRESS,
        ),
    ),
    Migration(
        "keep 'withdrawn' rows (readers who left mid-run) so `newsletter report` names them",
        # SQLite cannot change a CHECK in place: copy into a table that allows the new status.
        _run(
            "CREATE TABLE deliveries_v2 " + _DELIVERIES.format(statuses=_V2_STATUSES),
            "INSERT INTO deliveries_v2 SELECT issue, list, email, channel, status, attempts, last_reply,"
            " message_id, papers, updated_at FROM deliveries",
            "DROP TABLE deliveries",
            "ALTER TABLE deliveries_v2 RENAME TO deliveries",
            _BY_ADDRESS,
        ),
    ),
    Migration(
        "what a message was built from, so a past one can be rebuilt",
        _run(
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
    Migration(
        "everything in one database: lists, subscribers, sign-ups, suppressions, feedback, limits",
        _create(
            "lists",
            "subscribers",
            "csv_base",
            "suppressions",
            "signups",
            "feedback",
            "feedback_papers",
            "rate_limits",
            "database_identity",
        ),
    ),
    Migration(
        "bounces and complaints per reader, for `report` and repeated policy blocks", _create("bounce_events")
    ),
    Migration(
        "deliveries as a queue any number of senders claim from, with their leases",
        _steps(
            _run(
                "CREATE TABLE deliveries_v6 " + _DELIVERIES_V6,
                "INSERT INTO deliveries_v6 SELECT issue, list, email, channel, status, attempts,"
                " last_reply, message_id, papers, updated_at, reader, NULL, NULL FROM deliveries",
                "DROP TABLE deliveries",
                "ALTER TABLE deliveries_v6 RENAME TO deliveries",
                _BY_ADDRESS,
                # Only rows nobody owns: what a claim looks for, and nothing a write by key could
                # be planned through (an index holding `owner` was, with stale statistics, for
                # every row a sender wrote: a scan of all its rows per row).
                "CREATE INDEX deliveries_queue ON deliveries (issue, list, channel, status)"
                " WHERE owner IS NULL",
            ),
            _create("senders"),
        ),
    ),
    Migration(
        "find what was delivered since a list's file was written without reading all its deliveries",
        _run(
            "CREATE INDEX deliveries_delivered ON deliveries (list, channel, updated_at)"
            " WHERE status = 'delivered'"
        ),
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
_VERSIONS = "schema_migrations"
# Tables a version-0 SQLite file may hold and still be ours (a ledger from before versioning).
_LEGACY_TABLES = frozenset({"deliveries"})


def current_version(conn: Connection) -> int:
    """The version a database is at: 0 for an empty one."""
    tables = set(inspect(conn).get_table_names())
    if _VERSIONS in tables:
        found = conn.execute(text(f"SELECT max(version) FROM {_VERSIONS}")).scalar()
        return int(found or 0)
    if conn.dialect.name == "sqlite":
        return int(conn.exec_driver_sql("PRAGMA user_version").scalar() or 0)
    return 0


def check_version(conn: Connection, where: str) -> int:
    """The database's version, or a one-line error if a newer release wrote it or it is not ours."""
    version = current_version(conn)
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the database has schema version {version}, newer than this release knows ({SCHEMA_VERSION})",
            where=where,
            fix="upgrade newsletter to the release that wrote it, or point it at another database",
        )
    if version == 0:
        foreign = set(inspect(conn).get_table_names()) - _LEGACY_TABLES
        if foreign:
            raise StoreError(
                f"this database is not newsletter's (it has tables {', '.join(sorted(foreign))})",
                where=where,
                fix="give newsletter a database of its own (an empty one is set up on first use)",
            )
    return version


def upgrade(conn: Connection, where: str) -> int:
    """Take the database to SCHEMA_VERSION inside the caller's write transaction; the old version."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_UPGRADE_LOCK})
    before = check_version(conn, where)  # under the write lock: another process may have done it
    if before == SCHEMA_VERSION:
        return before
    conn.exec_driver_sql(
        f"CREATE TABLE IF NOT EXISTS {_VERSIONS} (version INTEGER PRIMARY KEY, why TEXT NOT NULL,"
        " applied_at TEXT NOT NULL)"
    )
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    for number, migration in enumerate(MIGRATIONS[before:], start=before + 1):
        migration.apply(conn)
        conn.execute(
            text(f"INSERT INTO {_VERSIONS} (version, why, applied_at) VALUES (:v, :why, :at)"),
            {"v": number, "why": migration.why, "at": stamp},
        )
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
    return before
