"""A subscriber row as the store keeps it, and the statements that write rows and suppressions.

The store (subscribers.py) runs them one short transaction at a time; the CSV merge runs many in
one. A row holds what the CSV shows, as text; times are ISO 8601 in UTC.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Insert, RowMapping, and_, delete, select, update

from ..errors import SubscriberError
from ..models import Subscriber, utc_now
from ..statuses import SubscriberStatus
from .database import bulk_insert, copy_rows, dialect_insert
from .schema import subscribers, suppressions

# Columns a change may write, as text ('' or None clears the optional ones).
FIELDS = (
    "email",
    "name",
    "keywords",
    "status",
    "subscribed_at",
    "unsubscribed_at",
    "confirmed_at",
    "frequency",
    "pause_until",
)
SUPPRESSING = frozenset({SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED})


def key_of(email: str) -> str:
    """Addresses compare case-insensitively."""
    return email.strip().lower()


def utc_text(value: datetime | None) -> str | None:
    """A time as the store and the CSV keep it: ISO 8601 in UTC, to the second."""
    return value.astimezone(UTC).isoformat(timespec="seconds") if value else None


def now_text() -> str:
    """Now, as a time column holds it."""
    return utc_now().isoformat(timespec="seconds")


def change_stamp(at: datetime | None = None) -> str:
    """`changed_at`: to the microsecond, so a send that polls for changes misses none."""
    return (at or utc_now()).isoformat(timespec="microseconds")


def as_subscriber(row: RowMapping) -> Subscriber:
    """A stored row as the model the rest of the program uses."""
    return Subscriber(
        email=row["email"],
        name=row["name"],
        keywords=[k for k in row["keywords"].split("; ") if k],
        status=SubscriberStatus(row["status"]),
        subscribed_at=_when(row["subscribed_at"]),
        unsubscribed_at=_when(row["unsubscribed_at"]),
        frequency=row["frequency"],
        pause_until=date.fromisoformat(row["pause_until"]) if row["pause_until"] else None,
        confirmed_at=_when(row["confirmed_at"]),
        extra=json.loads(row["extra"]),
    )


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def as_values(subscriber: Subscriber) -> dict[str, Any]:
    """A subscriber as the columns of its row (without list and changed_at)."""
    email = subscriber.email.strip()
    return {  # str() of a member is its word, without the enum's slower `.value` (a million-row import)
        "email_key": email.lower(),
        "email": email,
        "name": subscriber.name,
        "keywords": "; ".join(subscriber.keywords),
        "status": str(subscriber.status),
        "subscribed_at": utc_text(subscriber.subscribed_at),
        "unsubscribed_at": utc_text(subscriber.unsubscribed_at),
        "confirmed_at": utc_text(subscriber.confirmed_at),
        "frequency": str(subscriber.frequency),
        "pause_until": subscriber.pause_until.isoformat() if subscriber.pause_until else None,
        # Empty cells are not kept: the file's header keeps their column.
        "extra": json.dumps({k: v for k, v in subscriber.extra.items() if v}, ensure_ascii=False)
        if subscriber.extra
        else "{}",
    }


def updated(old: Subscriber, new: Subscriber) -> Subscriber:
    """An existing subscriber with what a new entry for the same address brings.

    An import or a second `add` never re-subscribes someone who unsubscribed or bounced.
    """
    keep = old.status is not SubscriberStatus.ACTIVE and new.status is SubscriberStatus.ACTIVE
    status = old.status if keep else new.status
    return Subscriber(
        email=old.email,
        name=new.name or old.name,
        keywords=new.keywords or old.keywords,
        status=status,
        subscribed_at=old.subscribed_at,
        unsubscribed_at=old.unsubscribed_at if status in SUPPRESSING else None,
        frequency=old.frequency,
        pause_until=old.pause_until,
        confirmed_at=old.confirmed_at,
        extra={**old.extra, **{k: v for k, v in new.extra.items() if v}},
    )


@dataclass(frozen=True)
class Suppression:
    """Why an address must not be mailed on a list again, and since when."""

    reason: str
    since: str


# --- statements shared with the CSV sync, which runs many of them in one transaction -----------


def insert_rows(conn: Connection, list_name: str, new: Collection[Subscriber]) -> None:
    """Insert rows (addresses the list lacks), barring those that arrive unsubscribed or bounced."""
    if not new:
        return
    stamp = change_stamp()
    copy_rows(conn, subscribers, [{**as_values(s), "list": list_name, "changed_at": stamp} for s in new])
    now = now_text()
    barred = [
        {"list": list_name, "email_key": s.key, "reason": str(s.status)}
        | {"created_at": utc_text(s.unsubscribed_at) or now}
        for s in new
        if s.status in SUPPRESSING
    ]
    bulk_insert(conn, _suppress_statement(conn), barred)


def write_row(conn: Connection, list_name: str, key: str, changes: Mapping[str, Any]) -> None:
    """Update one row's columns and keep its suppression in step with a new status."""
    where = and_(subscribers.c.list == list_name, subscribers.c.email_key == key)
    conn.execute(update(subscribers).where(where).values(**changes, changed_at=change_stamp()))
    status = changes.get("status")
    if status in SUPPRESSING:
        suppress(conn, list_name, key, SubscriberStatus(status), changes.get("unsubscribed_at") or now_text())
    elif status == SubscriberStatus.ACTIVE:
        lift(conn, list_name, key)


def lift(conn: Connection, list_name: str, key: str) -> None:
    """Let an address be mailed again (its owner came back)."""
    conn.execute(
        delete(suppressions).where(suppressions.c.list == list_name, suppressions.c.email_key == key)
    )


def delete_rows(conn: Connection, list_name: str, keys: Collection[str]) -> None:
    """Delete rows by address (suppressions stay)."""
    for chunk in chunked(sorted(keys)):
        conn.execute(
            delete(subscribers).where(subscribers.c.list == list_name, subscribers.c.email_key.in_(chunk))
        )


def rows_by_key(conn: Connection, list_name: str, keys: Collection[str]) -> dict[str, Subscriber]:
    """The rows of some addresses, as subscribers."""
    found: dict[str, Subscriber] = {}
    for chunk in chunked(sorted(keys)):
        query = select(subscribers).where(subscribers.c.list == list_name, subscribers.c.email_key.in_(chunk))
        # Locked (on PostgreSQL) until the caller's transaction ends: what it writes next is
        # decided on these values, and a one-click meanwhile must not be overwritten.
        found.update(
            (row["email_key"], as_subscriber(row)) for row in conn.execute(query.with_for_update()).mappings()
        )
    return found


def barred_keys(conn: Connection, list_name: str, keys: Collection[str]) -> dict[str, Suppression]:
    """The suppressions of some addresses."""
    found: dict[str, Suppression] = {}
    for chunk in chunked(sorted(keys)):
        query = select(suppressions).where(
            suppressions.c.list == list_name, suppressions.c.email_key.in_(chunk)
        )
        found.update(
            (row["email_key"], Suppression(row["reason"], row["created_at"]))
            for row in conn.execute(query).mappings()
        )
    return found


def suppress(conn: Connection, list_name: str, key: str, reason: str, when: str) -> None:
    """Bar an address from a list (again: the newest reason and time win)."""
    values = {"list": list_name, "email_key": key, "reason": str(reason), "created_at": when}
    conn.execute(_suppress_statement(conn), values)


def _suppress_statement(conn: Connection) -> Insert:
    """Bar addresses (again: the newest reason and time win), given their rows as parameters."""
    statement = dialect_insert(conn.dialect.name, suppressions)
    return statement.on_conflict_do_update(
        index_elements=["list", "email_key"],
        set_={"reason": statement.excluded.reason, "created_at": statement.excluded.created_at},
    )


def chunked(items: list[str], size: int = 500) -> Iterator[list[str]]:
    """Bound IN lists: SQLite allows a few thousand parameters per statement."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def already_on_list(email: str, list_name: str) -> SubscriberError:
    """The one message for adding an address the list has."""
    return SubscriberError(
        f"{email} is already on list {list_name}",
        fix="see it with `newsletter subscribers list`, or add it with --resubscribe to make it active again",
    )


def barred_error(email: str, list_name: str, barred: Suppression) -> SubscriberError:
    """The one message for adding an address that unsubscribed or bounced."""
    return SubscriberError(
        f"{email} {barred.reason} from list {list_name} on {barred.since[:10]}",
        fix="add it with --resubscribe only if its owner asked to come back",
    )
