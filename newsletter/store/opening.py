"""Opening the database the way every command does: upgraded to this release's schema on first use."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from .database import Database, Place
from .migrations import SCHEMA_VERSION, upgrade

_opened: dict[str, Database] = {}


def open_database(place: Place) -> Database:
    """The database at `place`, one engine per process, its schema brought up to date if needed."""
    key = place.url.render_as_string(hide_password=False)
    db = _opened.get(key)
    if db is None:
        db = Database(place)
        if _version(db) != SCHEMA_VERSION:
            with db.write() as conn:
                upgrade(conn, place.shown)
        _opened[key] = db
    return db


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
    for db in _opened.values():
        db.dispose()
    _opened.clear()
