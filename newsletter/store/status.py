"""What `newsletter db status` and `doctor` say about a database, read without changing it."""

from __future__ import annotations

import stat
import tempfile
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, inspect, select

from ..errors import StoreError
from .database import Database, Place
from .migrations import SCHEMA_VERSION, check_version, current_version, upgrade
from .schema import metadata


class SchemaState(StrEnum):
    """How a database's schema stands against this release."""

    MISSING = "not created yet"  # a SQLite file that the first command will make
    CURRENT = "current"
    UPGRADABLE = "upgradable"  # older: `newsletter db upgrade`, or any command, brings it up
    NEWER = "newer than this release"


@dataclass(frozen=True)
class DatabaseStatus:
    """The engine, where the database is (no password), its schema version and rows per table."""

    engine: str
    where: str
    version: int | None  # None: not created yet
    tables: dict[str, int] = field(default_factory=dict)

    @property
    def state(self) -> SchemaState:
        if self.version is None:
            return SchemaState.MISSING
        if self.version > SCHEMA_VERSION:
            return SchemaState.NEWER
        return SchemaState.CURRENT if self.version == SCHEMA_VERSION else SchemaState.UPGRADABLE

    def as_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "where": self.where,
            "schema_version": self.version,
            "release_schema_version": SCHEMA_VERSION,
            "state": self.state.value,
            "tables": self.tables,
        }


def database_status(place: Place) -> DatabaseStatus:
    """Read the version and count the rows of every table of ours; a missing SQLite file stays missing."""
    if not place.exists():
        return DatabaseStatus(place.engine_name, place.shown, None)
    db = Database(place)
    try:
        with db.read() as conn:
            return DatabaseStatus(place.engine_name, place.shown, current_version(conn), row_counts(conn))
    finally:
        db.dispose()


def row_counts(conn: Connection) -> dict[str, int]:
    """Rows in each of the store's tables that this database has, by name."""
    present = set(inspect(conn).get_table_names())
    return {
        table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
        for table in sorted(metadata.sorted_tables, key=lambda t: t.name)
        if table.name in present
    }


def upgrade_database(place: Place) -> tuple[int, int]:
    """Apply the migrations this release brings, in one transaction: (version before, version now)."""
    db = Database(place)
    try:
        with db.write() as conn:
            return upgrade(conn, place.shown), SCHEMA_VERSION
    finally:
        db.dispose()


@dataclass(frozen=True)
class Health:
    """The doctor's view: a version that this release can use, and a write that really works."""

    version: int | None  # None: a SQLite file not made yet
    problem: StoreError | None = None
    mode: int | None = None  # the SQLite file's permission bits


def database_health(place: Place) -> Health:
    """Reach the database, check its version, write and roll back; nothing is created or upgraded."""
    path = Path(place.url.database or "") if place.engine_name == "sqlite" else None
    if path is not None and not path.exists():
        return Health(None, _cannot_create(path))
    db = Database(place)
    try:
        with db.write() as conn:
            version = check_version(conn, place.shown)
            conn.exec_driver_sql("CREATE TABLE doctor_probe (written INTEGER)")
            conn.exec_driver_sql("INSERT INTO doctor_probe VALUES (1)")
            conn.rollback()  # the whole transaction: on SQLite not even the file's change counter moves
    except StoreError as exc:
        return Health(None, exc)
    finally:
        db.dispose()
    return Health(version, None, stat.S_IMODE(path.stat().st_mode) if path is not None else None)


def _cannot_create(path: Path) -> StoreError | None:
    """Why the first command could not create the SQLite file, found by really writing beside it."""
    folder = next(parent for parent in path.absolute().parents if parent.exists())
    try:
        tempfile.TemporaryFile(dir=folder).close()  # permission bits do not tell (root, read-only mounts)
    except OSError as exc:
        return StoreError(
            f"cannot create the database file: {folder} is not writable ({exc.strerror})",
            where=str(path),
            fix="make that folder writable for this user, or set 'ledger' to a file elsewhere",
        )
    return None
