"""`newsletter db copy --to URL`: every table of one database into another, e.g. SQLite to PostgreSQL.

The source is read in one snapshot and streamed in batches; the target is filled in one
transaction, so it holds either the whole copy or what it held before. The copy is repeatable:
the target must be empty or hold an earlier copy of the same source (known by the source's id in
`database_identity`), which is replaced. A target newer than this release is refused.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Table, delete, func, select, update

from ..errors import ConfigError, StoreError
from .database import Database, Place, place_of
from .feedback import now_text
from .migrations import upgrade
from .schema import database_identity, metadata
from .status import row_counts

BATCH = 2000  # rows per INSERT: few round trips, bounded memory whatever the table's size
COPIED = tuple(table for table in metadata.sorted_tables if table is not database_identity)


@dataclass(frozen=True)
class CopyResult:
    """Where from, where to, and the rows of each table on both sides."""

    source: str
    target: str
    counts: tuple[tuple[str, int, int], ...]  # table, rows in the source, rows in the target


def target_place(url: str) -> Place:
    """The database --to names; anything but a database URL is one line about --to."""
    if not url.strip():
        raise _not_a_url("--to needs a database URL")
    try:
        return place_of(url, Path("newsletter.db"))
    except ConfigError as exc:
        raise _not_a_url(exc.what.replace("database_url", "the URL", 1)) from None


def _not_a_url(why: str) -> ConfigError:
    return ConfigError(
        why,
        where="--to",
        fix="give postgresql://user:password@host:5432/dbname, or sqlite:////path/to/newsletter.db",
    )


def copy_database(source: Database, to: Place) -> CopyResult:
    """Copy every table of `source` (at this release's schema) into the database at `to`."""
    if _same(source.place, to):
        raise StoreError(
            "the target is the database in use", where=to.shown, fix="give --to another database"
        )
    source_id = _identity(source)
    target = Database(to)
    try:
        with target.write() as conn:
            upgrade(conn, to.shown)  # refuses a newer or foreign database before anything changes
            _make_room(conn, source_id, to.shown)
            copied = _copy_tables(source, conn)
            if not target.is_sqlite:
                _restart_sequences(conn)
            _mark_copy(conn, source_id)
            counts = row_counts(conn)
    finally:
        target.dispose()
    rows = tuple((table.name, copied[table.name], counts[table.name]) for table in COPIED)
    return CopyResult(source.place.shown, to.shown, rows)


def _same(one: Place, other: Place) -> bool:
    if one.engine_name == other.engine_name == "sqlite":
        return Path(one.url.database or "").resolve() == Path(other.url.database or "").resolve()
    return one.url.render_as_string(hide_password=True) == other.url.render_as_string(hide_password=True)


def _identity(db: Database) -> str:
    """The database's id, made the first time a copy asks for it."""
    with db.write() as conn:
        found = conn.execute(select(database_identity.c.id)).scalar()
        if found is None:
            found = uuid.uuid4().hex
            conn.execute(database_identity.insert().values(id=found, created_at=now_text()))
    return str(found)


def _make_room(conn: Connection, source_id: str, where: str) -> None:
    """Empty the target's tables if they hold an earlier copy of this source; refuse anything else."""
    held = {name: rows for name, rows in row_counts(conn).items() if rows and name != database_identity.name}
    copy_of = conn.execute(select(database_identity.c.copy_of)).scalar()
    if held and copy_of != source_id:
        shown = ", ".join(f"{rows} in {name}" for name, rows in sorted(held.items()))
        raise StoreError(
            f"the target already holds rows that are not a copy of this database ({shown})",
            where=where,
            fix="copy into an empty database (createdb a new one), or point database_url at that one instead",
        )
    for table in reversed(COPIED):
        conn.execute(delete(table))


def _copy_tables(source: Database, target: Connection) -> dict[str, int]:
    """Stream every table from one snapshot of the source into the target: rows copied per table."""
    copied: dict[str, int] = {}
    with source.snapshot() as conn:
        for table in COPIED:
            copied[table.name] = _copy_table(conn, target, table)
    return copied


def _copy_table(source: Connection, target: Connection, table: Table) -> int:
    done = 0
    result = source.execution_options(yield_per=BATCH).execute(select(table))
    for batch in result.partitions():
        target.execute(table.insert(), [dict(row._mapping) for row in batch])
        done += len(batch)
    return done


def _restart_sequences(conn: Connection) -> None:
    """PostgreSQL hands out ids from a sequence, which copied rows did not advance."""
    for table in COPIED:
        column = table.autoincrement_column
        if column is not None:
            sequence = func.pg_get_serial_sequence(table.name, column.name)
            conn.execute(select(func.setval(sequence, func.coalesce(func.max(column), 0) + 1, False)))


def _mark_copy(conn: Connection, source_id: str) -> None:
    """Note in the target which database it is a copy of, so that the next copy may replace it."""
    marked = conn.execute(update(database_identity).values(copy_of=source_id, copied_at=now_text()))
    if not marked.rowcount:
        conn.execute(
            database_identity.insert().values(
                id=uuid.uuid4().hex, created_at=now_text(), copy_of=source_id, copied_at=now_text()
            )
        )
