"""The one database: lists, subscribers, sign-ups, suppressions, feedback, limits and deliveries.

SQLite in a file beside the config by default; PostgreSQL (`database_url`) when several `serve` or
sending hosts share one list. One schema and one SQL code path (SQLAlchemy Core) for both.
"""

from __future__ import annotations

from .database import Database, Place, place_of
from .migrations import SCHEMA_VERSION, upgrade
from .opening import forget_databases, open_database, scratch_place

__all__ = [
    "SCHEMA_VERSION",
    "Database",
    "Place",
    "forget_databases",
    "open_database",
    "place_of",
    "scratch_place",
    "upgrade",
]
