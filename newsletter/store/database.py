"""One database for all state: SQLite in a file by default, PostgreSQL when hosts share it.

Everything above this module speaks SQLAlchemy Core to a `Database`; the two engines differ only
in how a connection starts (SQLite's pragmas and `BEGIN IMMEDIATE`) and in how errors read.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from sqlalchemy import URL, Connection, Engine, Insert, Table, create_engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from ..errors import ConfigError, StoreError
from ..safety.private import private_dir, private_file
from .diskspace import out_of_space

SQLITE_BUSY_MS = 30_000  # a writer waits this long for another process's transaction
_BEGIN = "newsletter_begin"  # execution option: how a SQLite transaction starts
_OUR_MARKS = frozenset({"schema_migrations", "deliveries"})  # a store, or a ledger from before it
BULK_CACHE_KIB = 64 * 1024  # SQLite's page cache during a bulk write (a first import)
FRESH_ROWS = 1_000  # rows written at once that change how PostgreSQL should plan (fresh_statistics)
COPY_FROM = 100  # rows: fewer go as one INSERT, like any other write (a sign-up, an `add`)


@dataclass(frozen=True)
class Place:
    """Where the database is, as the user wrote it and as shown in messages (no password)."""

    url: URL
    shown: str

    @property
    def engine_name(self) -> str:
        return "postgresql" if self.url.get_backend_name() == "postgresql" else "sqlite"

    def exists(self) -> bool:
        """False for a SQLite file not made yet, which a preview or a dry run must not create."""
        return self.engine_name != "sqlite" or Path(self.url.database or "").is_file()


def place_of(database_url: str | None, sqlite_path: Path) -> Place:
    """The database a config names: `database_url` (libpq or SQLAlchemy form) or the SQLite file."""
    if not database_url or not database_url.strip():
        url = URL.create("sqlite+pysqlite", database=str(sqlite_path))
        return Place(url, str(sqlite_path))
    text = database_url.strip()
    try:
        url = make_url(text)
    except ArgumentError:
        raise ConfigError(
            f"database_url '{_without_password(text)}' is not a database address",
            where="database_url (NEWSLETTER_DATABASE_URL)",
            fix="use postgresql://user:password@host:5432/dbname, or leave it unset for SQLite",
        ) from None
    backend = url.get_backend_name()
    if backend == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    elif backend == "sqlite":
        url = url.set(drivername="sqlite+pysqlite")
    else:
        raise ConfigError(
            f"database_url names '{backend}', which newsletter does not support",
            where="database_url (NEWSLETTER_DATABASE_URL)",
            fix="use postgresql://... or leave it unset for the SQLite file",
        )
    # Shown as the user wrote it: no driver name, no password, the socket folder not %-encoded.
    shown = unquote(url.set(drivername=backend).render_as_string(hide_password=True))
    return Place(url, shown)


def _without_password(text: str) -> str:
    scheme, sep, rest = text.partition("://")
    if "@" in rest:
        rest = rest.split("@", 1)[1]
        return f"{scheme}{sep}***@{rest}"
    return text


class Database:
    """The engine, transactions that start the right way, and errors that name the database."""

    def __init__(self, place: Place) -> None:
        self.place = place
        self.engine = _engine(place)
        self.patience = 60.0  # seconds a sender waits for a PostgreSQL that went away (store/reconnect.py)
        # SQLite has one writer at a time. Threads of this process (serve's) queue for it here:
        # waiting in SQLite's busy handler, which sleeps up to 100 ms between tries, made 200
        # one-click POSTs at once take seconds where a queue takes a few milliseconds each.
        self._writer = threading.RLock() if self.is_sqlite else None

    @property
    def is_sqlite(self) -> bool:
        return self.place.engine_name == "sqlite"

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file (its -wal and -shm beside it), or None on PostgreSQL."""
        return Path(self.place.url.database or "newsletter.db") if self.is_sqlite else None

    def insert(self, table: Table) -> sqlite.Insert | postgresql.Insert:
        """An INSERT that can say ON CONFLICT DO UPDATE / DO NOTHING: the upsert of this engine."""
        return dialect_insert(self.place.engine_name, table)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One transaction that will write: SQLite takes its write lock at BEGIN, not mid-way."""
        with self._writer or nullcontext(), self._guarded("write to"), self.engine.connect() as conn:
            conn = conn.execution_options(**{_BEGIN: "IMMEDIATE"})
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """One transaction that only reads: a consistent view, and never blocks a writer."""
        with self._guarded("read"), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """One read transaction that sees a single moment across many queries (a whole copy)."""
        with self._guarded("read"), self.engine.connect() as conn:
            if not self.is_sqlite:  # SQLite's read transactions are snapshots already
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    @contextmanager
    def _guarded(self, doing: str) -> Iterator[None]:
        try:
            yield
        except DBAPIError as exc:
            raise self.error(exc, doing) from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot {doing} the database: {exc}", where=self.place.shown) from exc

    def error(self, exc: BaseException, doing: str = "use") -> StoreError:
        """A driver's failure as one line: what happened, which database, what to do."""
        cause = getattr(exc, "orig", None) or exc
        path = self.sqlite_path
        what, fix = _diagnosis(cause, doing) if path is None else _sqlite_diagnosis(cause, doing, path)
        error = StoreError(what, where=self.place.shown, fix=fix)
        error.conflict = path is None and str(getattr(cause, "sqlstate", "")) in _CONFLICT
        error.transient = error.conflict or (path is None and _connection_lost(cause))
        return error

    @contextmanager
    def roomy(self, conn: Connection) -> Iterator[None]:
        """A bigger page cache for one bulk write (SQLite): a million-row import touches index pages
        all over the file, and with the default 2 MiB each is read and written again and again."""
        if not self.is_sqlite:
            yield
            return
        conn.exec_driver_sql(f"PRAGMA cache_size = -{BULK_CACHE_KIB:d}")
        try:
            yield
        finally:
            conn.exec_driver_sql("PRAGMA cache_size = -2000")  # SQLite's default again

    def fresh_statistics(self, conn: Connection, *tables: Table) -> None:
        """After many rows were written at once. PostgreSQL plans each statement from statistics
        that know nothing of them until autovacuum comes by: with a freshly loaded list, looking up
        a claimed batch's 32 readers read all 10,000 rows (4.5 ms a batch, 0.14 ms after this), and
        a claim read every row of the issue. SQLite plans from its indexes alone."""
        if not self.is_sqlite:
            conn.exec_driver_sql(f"ANALYZE {', '.join(table.name for table in tables)}")

    def dispose(self) -> None:
        """Close pooled connections (before a fork, and at the end of a command)."""
        self.engine.dispose()


def dialect_insert(engine_name: str, table: Table) -> sqlite.Insert | postgresql.Insert:
    """The upsert-capable INSERT of an engine by name (`conn.dialect.name` where no Database is at hand)."""
    return sqlite.insert(table) if engine_name == "sqlite" else postgresql.insert(table)


def bulk_insert(conn: Connection, statement: Insert, rows: Sequence[Mapping[str, Any]]) -> None:
    """Many rows in one go: the statement as Core compiles it for this engine, the rows handed to
    the driver as they are (Core's per-row parameter handling is half the cost of an import).

    Only for plain values (text, numbers, bytes, None) that need no type conversion.
    """
    if not rows:
        return
    compiled = statement.compile(dialect=conn.dialect, column_keys=list(rows[0]))
    if compiled.positional:
        conn.exec_driver_sql(str(compiled), list(map(_picker(compiled.positiontup or []), rows)))
    else:
        conn.exec_driver_sql(str(compiled), [dict(row) for row in rows])


def copy_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Plain inserts of many new rows: PostgreSQL's COPY, as an executemany there costs a round of
    statement handling per row (a million-row import took 15 minutes); elsewhere `bulk_insert`.

    Only for plain values (text, numbers, None); a violated constraint is SQLAlchemy's error.
    """
    if len(rows) < COPY_FROM or conn.dialect.name != "postgresql":
        bulk_insert(conn, table.insert(), rows)
        return
    keys = list(rows[0])
    quote = conn.dialect.identifier_preparer.quote
    statement = f"COPY {quote(table.name)} ({', '.join(map(quote, keys))}) FROM STDIN"
    # Loaded already (the engine speaks through it); the base install, without the extra, has no stubs.
    import psycopg  # type: ignore[import-not-found, unused-ignore]

    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in map(_picker(keys), rows):
                copy.write_row(row)
    except psycopg.Error as exc:  # wrapped as SQLAlchemy wraps it: IntegrityError and kin
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from None


def _picker(keys: Sequence[str]) -> Any:
    """A row mapping's values in this order, as a tuple (one C call per row)."""
    pick = itemgetter(*keys)
    return pick if len(keys) > 1 else lambda row: (pick(row),)


def _sqlite_diagnosis(cause: BaseException, doing: str, path: Path) -> tuple[str, str | None]:
    """What went wrong with the SQLite file and how to fix it, from SQLite's own error name."""
    space = out_of_space(cause, path)
    if space is not None:
        return space
    name = getattr(cause, "sqlite_errorname", "") or ""
    said = str(cause).strip()
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "not a database" in said:
        return (
            f"cannot {doing} the database: it is damaged or is not a database ({said})",
            "restore it from a backup (`sqlite3 FILE 'PRAGMA integrity_check'` shows the damage);"
            " the file was left as it is",
        )
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")) or isinstance(cause, OSError):
        return (
            f"cannot {doing} the database ({said})",
            f"make {path.parent} writable by this user, or set 'ledger' in newsletter.toml to a "
            "writable place",
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in said:
        return (
            "the database is locked by another process",
            "wait for the other command to finish and run this one again",
        )
    return _as_said(cause, doing)


def _diagnosis(cause: BaseException, doing: str) -> tuple[str, str | None]:
    """What went wrong with PostgreSQL and how to fix it, from psycopg's exception."""
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate == "53100":  # disk_full
        return (
            f"no space left on the PostgreSQL server to {doing} the database",
            "free space on the server, then run the same command again: nothing already recorded is lost",
        )
    if sqlstate is None and type(cause).__name__ in {"OperationalError", "ConnectionTimeout"}:
        return (
            "cannot reach the PostgreSQL server",
            "check database_url, and that the server is running and lets this user in",
        )
    return _as_said(cause, doing)


# The connection failed or the server is shutting down, starting up or in recovery (SQLSTATE class
# 08, and 57P01-57P03): nothing of the transaction was kept, so doing it again is safe.
_LOST = ("08", "57P01", "57P02", "57P03")
# A deadlock's victim or a serialization failure: rolled back whole, to be run again.
_CONFLICT = ("40P01", "40001")


def _connection_lost(cause: BaseException) -> bool:
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate is None:
        return type(cause).__name__ in {"OperationalError", "ConnectionTimeout", "InterfaceError"}
    return str(sqlstate).startswith(_LOST)


def _as_said(cause: BaseException, doing: str) -> tuple[str, str | None]:
    said = str(cause).strip()
    first_line = said.splitlines()[0] if said else type(cause).__name__
    return f"cannot {doing} the database: {first_line}", None


def _engine(place: Place) -> Engine:
    if place.engine_name == "sqlite":
        return _sqlite_engine(place)
    try:
        # prepare_threshold=None: no server-side prepared statements, which break behind PgBouncer.
        engine = create_engine(
            place.url, pool_pre_ping=True, connect_args={"prepare_threshold": None, "connect_timeout": 10}
        )
    except (NoSuchModuleError, ModuleNotFoundError):
        raise ConfigError(
            "database_url names PostgreSQL, but its driver (psycopg) is not installed",
            where=place.shown,
            fix="install it: ./install.sh '.[postgres]' (or pip install 'psycopg[binary]')",
        ) from None
    event.listen(engine, "connect", _postgresql_connected)
    return engine


def _postgresql_connected(driver: Any, _record: Any) -> None:
    """Lists go to the server as binary arrays: a batch's addresses and answers travel as arrays
    (store/ownedbatch.py), and psycopg's text form quotes each element with a regular expression
    in Python, a fifth of a sender's CPU for the queue (benchmarks/bench_senders.py)."""
    from psycopg.types.array import ListBinaryDumper  # type: ignore[import-not-found, unused-ignore]

    driver.adapters.register_dumper(list, ListBinaryDumper)


def _sqlite_engine(place: Place) -> Engine:
    path = Path(place.url.database or "newsletter.db")
    try:
        private_file(private_dir(path.parent) / path.name)  # -wal and -shm inherit its mode
    except OSError as exc:
        raise StoreError(
            f"cannot create the database file: {exc.strerror}",
            where=str(path),
            fix="check that its folder exists and is writable, or set 'ledger' to another file",
        ) from None
    engine = create_engine(
        place.url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_MS / 1000}
    )
    event.listen(engine, "connect", _sqlite_connected)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connected(dbapi_connection: Any, _record: Any) -> None:
    # We issue BEGIN ourselves (below): pysqlite's own would be a deferred one, taken too late.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS:d}")
        # WAL (readers never wait for a writer) changes the file: only an empty file or ours. A
        # file of someone else's is refused by the version check, and stays as it was.
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal" and _ours_or_empty(cursor):
            _switch_to_wal(cursor)
        # FULL: a committed attempt survives a crash or power loss before the DATA command.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """Switching needs the file to itself, and SQLite answers "locked" at once (no busy wait) while
    another connection is in a transaction: several processes opening a new file together retry."""
    deadline = time.monotonic() + SQLITE_BUSY_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _ours_or_empty(cursor: Any) -> bool:
    tables = {row[0] for row in cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return not tables or bool(tables & _OUR_MARKS)


def _sqlite_begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock now, so two writers queue instead of one failing as "busy"
    # when both try to upgrade a read lock.
    mode = conn.get_execution_options().get(_BEGIN, "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")
