"""The database's clock, for times that decide an order: hosts whose clocks disagree still agree.

A sending host whose clock is minutes off must not make its deliveries look newer or older than
another host's (the latest issue, and later the leases of issue 28). So such times are taken from
the database server's clock, written as the ISO 8601 UTC text every other time in the store uses.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, Text, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement


class database_now(FunctionElement[str]):  # a SQL function, so named like one
    """Now on the database's clock, as '2026-03-14T10:00:00+00:00' (seconds, UTC)."""

    type = Text()
    inherit_cache = True
    name = "database_now"


@compiles(database_now, "sqlite")
def _sqlite_now(element: database_now, compiler: Any, **kw: Any) -> str:
    return "strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now')"


@compiles(database_now, "postgresql")
def _postgresql_now(element: database_now, compiler: Any, **kw: Any) -> str:
    # clock_timestamp(), not now(): a long transaction still writes when each row was written.
    return "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00:00\"')"


class database_later(FunctionElement[str]):  # a SQL function, so named like one
    """`seconds` from now on the database's clock, as database_now writes it: when a lease ends."""

    type = Text()
    inherit_cache = True
    name = "database_later"

    def __init__(self, seconds: int) -> None:
        super().__init__(literal(int(seconds), Integer()))


@compiles(database_later, "sqlite")
def _sqlite_later(element: database_later, compiler: Any, **kw: Any) -> str:
    seconds = compiler.process(element.clauses, **kw)
    return f"strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now', ({seconds}) || ' seconds')"


@compiles(database_later, "postgresql")
def _postgresql_later(element: database_later, compiler: Any, **kw: Any) -> str:
    seconds = compiler.process(element.clauses, **kw)
    return (
        f"to_char(clock_timestamp() AT TIME ZONE 'UTC' + make_interval(secs => {seconds}),"
        ' \'YYYY-MM-DD"T"HH24:MI:SS"+00:00"\')'
    )
