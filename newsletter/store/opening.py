"""Opening the database the way every command does: upgraded to this release's schema on first use."""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from .database import Database, Place, place_of
from .migrations import SCHEMA_VERSION, upgrade

_opened: dict[str, tuple[Database, tuple[int, int] | None]] = {}
_scratch: list[Path] = []


def open_database(place: Place) -> Database:
    """The database at `place`, one engine per process, its schema brought up to date if needed.

    A SQLite file deleted or replaced since its engine was made (restored from a backup, say)
    gets a new engine: the old one's connections still read the file that was there.
    """
    key = place.url.render_as_string(hide_password=False)
    db, was = _opened.get(key, (None, None))
    if db is not None and _identity(place) == was:
        return db
    if db is not None:
        db.dispose()
    db = Database(place)
    if _version(db) != SCHEMA_VERSION:
        with db.write() as conn:
            upgrade(conn, place.shown)
    _opened[key] = (db, _identity(place))
    return db


def _identity(place: Place) -> tuple[int, int] | None:
    """Which SQLite file the place is now (device, inode); None for a server."""
    if place.engine_name != "sqlite":
        return None
    try:
        stat = os.stat(place.url.database or "")
    except OSError:
        return (0, 0)
    return (stat.st_dev, stat.st_ino)


def existing_database(place: Place) -> Database | None:
    """The database at `place` if there is one yet: reading history (a preview, a dry run, a
    report) creates no SQLite file, and nothing in one that does not exist was ever sent."""
    return open_database(place) if place.exists() else None


def _version(db: Database) -> int | None:
    """The recorded version, cheaply: one query, no catalogue reads (None when there is none yet)."""
    with db.read() as conn:
        try:
            with conn.begin_nested():
                found = conn.execute(text("SELECT max(version) FROM schema_migrations")).scalar()
        except DBAPIError:
            return None  # no such table: an empty database, or a ledger from before the store
    return int(found) if found is not None else None


def forget_databases() -> None:
    """Close every engine (tests that remove a database file, or a forked child starting over)."""
    for db, _ in _opened.values():
        db.dispose()
    _opened.clear()


def scratch_place(instead_of: Place) -> Place:
    """A throw-away SQLite file standing in for one that does not exist yet, removed at exit: for
    a preview or dry run, which must leave no database behind."""
    if not _scratch:
        _scratch.append(Path(tempfile.mkdtemp(prefix="newsletter-scratch-")))
        atexit.register(shutil.rmtree, _scratch[0], True)
    name = hashlib.sha256(instead_of.shown.encode()).hexdigest()[:16]
    return place_of(None, _scratch[0] / f"{name}.db")
