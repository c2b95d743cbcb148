"""One database for all state: SQLite in a file by default, PostgreSQL when hosts share it.

Everything above this module speaks SQLAlchemy Core to a `Database`; the two engines differ only
in how a connection starts (SQLite's pragmas and `BEGIN IMMEDIATE`) and in how errors read.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from sqlalchemy import URL, Connection, Engine, Insert, Table, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from ..errors import ConfigError, StoreError
from ..safety.private import private_dir, private_file

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

SQLITE_BUSY_MS = 30_000  # a writer waits this long for another process's transaction
BULK_CACHE_KIB = 64 * 1024  # SQLite's page cache during a bulk write (a first import)
_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
_BEGIN = "newsletter_begin"  # execution option: how a SQLite transaction starts


@dataclass(frozen=True)
class Place:
    """Where the database is, as the user wrote it and as shown in messages (no password)."""

    url: URL
    shown: str

    @property
    def engine_name(self) -> str:
        return "postgresql" if self.url.get_backend_name() == "postgresql" else "sqlite"


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
        # SQLite has one writer at a time. Threads of this process (serve's) queue for it here:
        # waiting in SQLite's busy handler, which sleeps up to 100 ms between tries, made 200
        # one-click POSTs at once take seconds where a queue takes a few milliseconds each.
        self._writer = threading.RLock() if self.is_sqlite else None

    @property
    def is_sqlite(self) -> bool:
        return self.place.engine_name == "sqlite"

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
    def _guarded(self, doing: str) -> Iterator[None]:
        try:
            yield
        except DBAPIError as exc:
            raise self.error(exc, doing) from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot {doing} the database: {exc}", where=self.place.shown) from exc

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

    def insert(self, table: Table) -> sqlite.Insert | postgresql.Insert:
        """An INSERT in this engine's dialect, so it can say what to do on a conflict (upserts)."""
        return dialect_insert(self.place.engine_name, table)

    def error(self, exc: BaseException, doing: str = "use") -> StoreError:
        """A driver's failure as one line: what happened, which database, what to do."""
        cause = getattr(exc, "orig", None) or exc
        what, fix = _diagnosis(cause, doing, self.is_sqlite)
        return StoreError(what, where=self.place.shown, fix=fix)

    def dispose(self) -> None:
        """Close pooled connections (before a fork, and at the end of a command)."""
        self.engine.dispose()


def dialect_insert(engine_name: str, table: Table) -> sqlite.Insert | postgresql.Insert:
    """An INSERT of the engine's own dialect (`conn.dialect.name`): the one place upserts differ."""
    if engine_name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    from sqlalchemy.dialects.postgresql import insert as postgresql_insert

    return postgresql_insert(table)


def bulk_insert(conn: Connection, statement: Insert, rows: Sequence[Mapping[str, Any]]) -> None:
    """Many rows in one go: the statement as Core compiles it for this engine, the rows handed to
    the driver as they are (Core's per-row parameter handling is half the cost of an import).

    Only for plain values (text, numbers, bytes, None) that need no type conversion.
    """
    if not rows:
        return
    compiled = statement.compile(dialect=conn.dialect, column_keys=list(rows[0]))
    if compiled.positional:
        order = compiled.positiontup or []
        conn.exec_driver_sql(str(compiled), [tuple(row[key] for key in order) for row in rows])
    else:
        conn.exec_driver_sql(str(compiled), [dict(row) for row in rows])


def _diagnosis(cause: BaseException, doing: str, sqlite: bool) -> tuple[str, str | None]:
    """What went wrong and how to fix it, from the driver's own exception."""
    said = str(cause).strip()
    if (isinstance(cause, OSError) and cause.errno in _SPACE_ERRNOS) or "database or disk is full" in said:
        return (
            f"no space left to {doing} the database",
            "free some disk space and run the command again: nothing recorded is lost",
        )
    if sqlite and ("not a database" in said or "malformed" in said):
        return (
            "the database file is damaged or is not a database",
            "restore it from a backup (`sqlite3 FILE 'PRAGMA integrity_check'` shows the damage)",
        )
    if sqlite and "locked" in said:
        return (
            "the database is locked by another process",
            "wait for the other command to finish and run this one again",
        )
    if not sqlite and type(cause).__name__ in {"OperationalError", "ConnectionTimeout"}:
        return (
            "cannot reach the PostgreSQL server",
            "check database_url, and that the server is running and lets this user in",
        )
    first_line = said.splitlines()[0] if said else type(cause).__name__
    return f"cannot {doing} the database: {first_line}", None


def _engine(place: Place) -> Engine:
    if place.engine_name == "sqlite":
        return _sqlite_engine(place)
    try:
        # prepare_threshold=None: no server-side prepared statements, which break behind PgBouncer.
        return create_engine(
            place.url, pool_pre_ping=True, connect_args={"prepare_threshold": None, "connect_timeout": 10}
        )
    except (NoSuchModuleError, ModuleNotFoundError):
        raise ConfigError(
            "database_url names PostgreSQL, but its driver (psycopg) is not installed",
            where=place.shown,
            fix="install it: ./install.sh '.[postgres]' (or pip install 'psycopg[binary]')",
        ) from None


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
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer
        # FULL: a committed attempt survives a crash or power loss before the DATA command.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS:d}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock now, so two writers queue instead of one failing as "busy"
    # when both try to upgrade a read lock.
    mode = conn.get_execution_options().get(_BEGIN, "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")
