"""What the store keeps of a list's hand-kept CSV file, and the queries a merge with it runs.

The `lists` row holds the file's layout, its identity as last synced (size, mtime, content hash)
and the digests of its lines; `csv_base` holds each of those lines' cells, the base of the
three-way merge, as the file had them (subscribers/csvsync.py decides what to merge; this module
only reads and writes).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, LargeBinary, delete, func, literal, select, update

from .database import Database, bulk_insert, copy_rows, dialect_insert
from .schema import csv_base, deliveries, lists, senders, subscribers, suppressions
from .subscriberrows import chunked

BaseRow = tuple[int, str]  # a line's digest and the line


@dataclass
class CsvState:
    """A list's file as last synced."""

    layout: str | None  # JSON of the file's layout; None: a list never kept as CSV
    signature: str | None  # "size mtime_ns sha256"
    digests: bytes  # every synced line's digest in file order, little-endian int64
    last_issue: str  # the newest last_issue the file named
    # When the last write-back began reading the database (ISO 8601 UTC): what the database
    # changed since then may not be in the file ('' : not known, write it back).
    synced_at: str = ""


def csv_state(
    db: Database, name: str, conn: Connection | None = None, digests: bool = False
) -> CsvState | None:
    """The state of a list's file (None: the list is not in the database); in `conn`, locked.

    The line digests (8 bytes a row) are read only when asked for: every command asks whether
    the file changed, and it usually has not.
    """
    wanted = lists.c.csv_digests if digests else literal(b"", LargeBinary)
    file = (lists.c.csv_layout, lists.c.csv_signature, wanted)
    query = select(*file, lists.c.csv_last_issue, lists.c.csv_synced_at).where(lists.c.name == name)
    if conn is None:
        with db.read() as own:
            row = own.execute(query).first()
    else:
        row = conn.execute(query.with_for_update()).first()  # merges of one list take turns
    return None if row is None else CsvState(row[0], row[1], row[2] or b"", row[3] or "", row[4] or "")


def record_csv(conn: Connection, name: str, state: CsvState) -> None:
    """Note the file as now synced, showing the database as of `state.synced_at` (None: unknown)."""
    values = {
        "csv_layout": state.layout,
        "csv_signature": state.signature,
        "csv_digests": state.digests,
        "csv_last_issue": state.last_issue,
        "csv_synced_at": state.synced_at or None,
    }
    conn.execute(update(lists).where(lists.c.name == name).values(**values))


def changed_since(db: Database, name: str, since: str, channel: str) -> bool:
    """Whether the database changed anything the list's file shows since `since`: a row added or
    changed, a row removed, or a reader delivered an issue (the file's last_issue).

    The first two are an index probe and two counts. For the last, the senders are asked, not the
    deliveries: every delivery is recorded by a sender whose lease was live (or which was still
    running) at the time, and a sender's row is one per run. An index of deliveries by status or
    time would let a write-back find them, but would cost every send: no recorded answer could then
    be rewritten in place on PostgreSQL (schema step 7).
    """
    mine = subscribers.c.list == name
    changed = select(subscribers.c.id).where(mine, subscribers.c.changed_at >= since).limit(1)
    rows = select(func.count()).select_from(subscribers).where(mine).scalar_subquery()
    lines = select(func.count()).select_from(csv_base).where(csv_base.c.list == name).scalar_subquery()
    sent = (
        select(senders.c.id)
        .where(senders.c.list == name, senders.c.channel == channel)
        .where(func.coalesce(senders.c.finished_at, senders.c.lease_until) >= since)
        .limit(1)
    )
    with db.read() as conn:
        if conn.execute(changed).first() is not None or conn.execute(select(rows != lines)).scalar():
            return True
        return conn.execute(sent).first() is not None


def touch_csv(db: Database, name: str, signature: str) -> None:
    """The file was saved again unchanged: only its identity is new."""
    with db.write() as conn:
        conn.execute(update(lists).where(lists.c.name == name).values(csv_signature=signature))


def base_rows(conn: Connection, name: str, digests: Sequence[int] | None) -> dict[str, BaseRow]:
    """Base rows by address: those with these digests, or all of them (None)."""
    query = select(csv_base.c.email_key, csv_base.c.digest, csv_base.c.line).where(csv_base.c.list == name)
    if digests is None:
        rows = list(conn.execute(query))
    else:
        rows = []
        for start in range(0, len(digests), 500):
            rows += conn.execute(query.where(csv_base.c.digest.in_(list(digests[start : start + 500]))))
    return {str(key): (int(digest), str(line)) for key, digest, line in rows}


def based(conn: Connection, name: str, keys: Collection[str]) -> bool:
    """Whether any of these addresses has a base row."""
    query = select(csv_base.c.email_key).where(csv_base.c.list == name)
    return any(
        conn.execute(query.where(csv_base.c.email_key.in_(part))).first() for part in chunked(list(keys))
    )


def has_base(conn: Connection, name: str) -> bool:
    """Whether the list has any base row (else a merge inserts them plainly)."""
    return conn.execute(select(csv_base.c.digest).where(csv_base.c.list == name).limit(1)).first() is not None


def has_rows(conn: Connection, name: str) -> bool:
    """Whether the list has any subscriber (else nothing in a file can be on it already)."""
    return (
        conn.execute(select(subscribers.c.id).where(subscribers.c.list == name).limit(1)).first() is not None
    )


def has_suppressions(conn: Connection, name: str) -> bool:
    """Whether any address is barred from the list (else a merge need not look each one up)."""
    query = select(suppressions.c.email_key).where(suppressions.c.list == name).limit(1)
    return conn.execute(query).first() is not None


@contextmanager
def indexes_after(conn: Connection) -> Iterator[None]:
    """On SQLite with no list yet, load first and build the indexes after: a first import of a
    million rows then sorts each index once instead of growing it row by row (a third of its cost).

    Two lines of one address still fail the load: csv_base's primary key stays, and the merge
    compares the addresses it loaded (csvsync); so does building the unique index after. SQLite's
    DDL is transactional: if the load fails, the indexes come back with the rollback.
    """
    tables = (subscribers, csv_base)
    empty = all(conn.execute(select(literal(1)).select_from(t).limit(1)).first() is None for t in tables)
    later = [index for t in tables for index in t.indexes]
    if conn.dialect.name != "sqlite" or not empty:
        yield  # PostgreSQL would lock every list's readers out for the load; a full table is costly
        return
    for index in later:
        index.drop(conn)
    yield
    for index in later:
        index.create(conn)


def write_base(conn: Connection, name: str, rows: list[tuple[str, int, str]], first: bool) -> None:
    """Base rows (address, digest, line) as the file has them now."""
    values = [{"list": name, "email_key": key, "digest": digest, "line": line} for key, digest, line in rows]
    if not values:
        return
    if first:
        copy_rows(conn, csv_base, values)
        return
    statement = dialect_insert(conn.dialect.name, csv_base)
    excluded = statement.excluded
    upsert = statement.on_conflict_do_update(
        index_elements=["list", "email_key"], set_={"digest": excluded.digest, "line": excluded.line}
    )
    bulk_insert(conn, upsert, values)


def drop_base(conn: Connection, name: str, keys: Collection[str] | None) -> None:
    """Forget the base rows of addresses whose lines left the file (None: all of them)."""
    if keys is None:
        conn.execute(delete(csv_base).where(csv_base.c.list == name))
        return
    for part in chunked(sorted(keys)):
        conn.execute(delete(csv_base).where(csv_base.c.list == name, csv_base.c.email_key.in_(part)))


def has_deliveries(db: Database, name: str, channel: str) -> bool:
    """Whether the database has recorded any delivery of the list on this channel."""
    query = select(deliveries.c.issue).where(deliveries.c.list == name, deliveries.c.channel == channel)
    with db.read() as conn:
        return conn.execute(query.limit(1)).first() is not None
