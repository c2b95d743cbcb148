"""A subscriber list in the database: every change one short transaction, O(1) however long the list.

A row per (list, address) holds what the CSV file shows (status, name, keywords, frequency, pause,
unknown columns); an unsubscribe or bounce also leaves a suppression (why and since when) that
outlives the row, so neither a hand edit of the CSV nor a re-added address mails them again; only
a resubscribe or a confirmed sign-up lifts it. Addresses compare case-insensitively (`email_key`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, RowMapping, Select, and_, delete, func, select, update

from ..errors import SubscriberError
from ..models import Subscriber, utc_now
from ..statuses import SubscriberStatus
from .database import Database, dialect_insert
from .schema import deliveries, lists, signups, subscribers, suppressions

OnConflict = Literal["error", "skip", "update"]
MergeResult = Literal["added", "updated", "skipped"]
PAGE = 1000  # rows read per transaction while streaming a list
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


class NotOnListError(SubscriberError):
    """The address has no row in the list: for the web endpoint this means 'already unsubscribed'."""


class UnknownListError(SubscriberError):
    """No list of that name, in the database or as a file."""


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
    return {
        "email_key": subscriber.key,
        "email": subscriber.email.strip(),
        "name": subscriber.name,
        "keywords": "; ".join(subscriber.keywords),
        "status": SubscriberStatus(subscriber.status).value,
        "subscribed_at": utc_text(subscriber.subscribed_at),
        "unsubscribed_at": utc_text(subscriber.unsubscribed_at),
        "confirmed_at": utc_text(subscriber.confirmed_at),
        "frequency": subscriber.frequency.value,
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


@dataclass
class StatusWatch:
    """Who left the list since a send began: asked before every message, the database polled at
    most every `every` seconds (one indexed range query), so a leaver is skipped within that."""

    store: SubscriberStore
    every: float = 0.05
    slack: timedelta = timedelta(seconds=60)  # a transaction in flight, clocks of other hosts
    left: set[str] = field(default_factory=set)
    _since: str = ""
    _next: float = 0.0

    def __post_init__(self) -> None:
        self._since = change_stamp(utc_now() - self.slack)

    def still_wanted(self, key: str) -> bool:
        """False once the reader is anything but active (unsubscribed, bounced, removed to pending)."""
        if time.monotonic() >= self._next:
            started = utc_now()
            for changed, status in self.store.changes_since(self._since):
                (self.left.discard if status == SubscriberStatus.ACTIVE else self.left.add)(changed)
            self._since = change_stamp(started - self.slack)
            self._next = time.monotonic() + self.every
        return key not in self.left


class SubscriberStore:
    """One list in the database: reads stream, each change is one short transaction.

    `csv_path` is where the list's hand-kept file is (or would be): messages name it.
    """

    def __init__(self, db: Database, name: str, csv_path: Path | None = None) -> None:
        self.db = db
        self.name = name
        self.csv_path = csv_path

    def _mine(self, key: str | None = None) -> Any:
        where = subscribers.c.list == self.name
        return where if key is None else and_(where, subscribers.c.email_key == key)

    # --- the list itself -------------------------------------------------------------------

    def exists(self) -> bool:
        """Whether the list is known (created by a sync, an add, an import or a sign-up)."""
        with self.db.read() as conn:
            return conn.execute(select(lists.c.name).where(lists.c.name == self.name)).first() is not None

    def create(self, conn: Connection | None = None) -> None:
        """Make the list known; nothing if it is."""
        statement = (
            self.db.insert(lists).values(name=self.name, created_at=now_text()).on_conflict_do_nothing()
        )
        if conn is not None:
            conn.execute(statement)
            return
        with self.db.write() as own:
            own.execute(statement)

    def missing_error(self) -> UnknownListError:
        """The one message for a list that does not exist."""
        return UnknownListError(
            f"subscriber list {self.name} not found",
            where=str(self.csv_path or self.db.place.shown),
            fix="create it with `newsletter subscribers add` or pass --list",
        )

    # --- reading ---------------------------------------------------------------------------

    def get(self, email: str) -> Subscriber | None:
        """One subscriber by address (any case), or None."""
        with self.db.read() as conn:
            row = conn.execute(select(subscribers).where(self._mine(key_of(email)))).mappings().first()
        return None if row is None else as_subscriber(row)

    def iter_subscribers(self, statuses: Collection[str] | None = None) -> Iterator[Subscriber]:
        """Every subscriber in order of arrival, a page per short transaction (a million rows stream)."""
        query = select(subscribers).where(self._mine())
        if statuses is not None:
            query = query.where(subscribers.c.status.in_([str(s) for s in statuses]))
        for row in self._pages(query):
            yield as_subscriber(row)

    def _pages(self, query: Select[Any]) -> Iterator[RowMapping]:
        """The rows of a query on the list, by id, PAGE at a time: no transaction outlives a page."""
        after = 0
        while True:
            with self.db.read() as conn:
                page = conn.execute(
                    query.where(subscribers.c.id > after).order_by(subscribers.c.id).limit(PAGE)
                )
                rows = page.mappings().all()
            yield from rows
            if len(rows) < PAGE:
                return
            after = rows[-1]["id"]

    def read(self) -> list[Subscriber]:
        """All subscribers at once, for small lists and tests."""
        return list(self.iter_subscribers())

    def iter_with_last_issue(self, channel: str) -> Iterator[tuple[Subscriber, str]]:
        """Every subscriber with the issue they were last delivered on `channel` ('' if none)."""
        last = (
            select(deliveries.c.issue)
            .where(
                deliveries.c.list == subscribers.c.list,
                deliveries.c.channel == channel,
                deliveries.c.email == subscribers.c.email_key,
                deliveries.c.status == "delivered",
            )
            .order_by(deliveries.c.updated_at.desc())
            .limit(1)
            .scalar_subquery()
        )
        query = select(subscribers, last.label("last_issue")).where(self._mine())
        for row in self._pages(query):
            yield as_subscriber(row), row["last_issue"] or ""

    def counts(self) -> dict[str, int]:
        """How many subscribers have each status (every status named, zero or not)."""
        query = select(subscribers.c.status, func.count()).where(self._mine()).group_by(subscribers.c.status)
        with self.db.read() as conn:
            found = {str(status): int(n) for status, n in conn.execute(query)}
        return {status.value: found.get(status.value, 0) for status in SubscriberStatus}

    def is_active(self, email: str) -> bool:
        """One indexed lookup: whether the address would get the next issue."""
        query = select(subscribers.c.status).where(self._mine(key_of(email)))
        with self.db.read() as conn:
            return conn.execute(query).scalar() == SubscriberStatus.ACTIVE

    def changes_since(self, since: str) -> list[tuple[str, str]]:
        """(address, status) of every row changed at or after `since` (a `change_stamp`)."""
        query = select(subscribers.c.email_key, subscribers.c.status).where(
            self._mine(), subscribers.c.changed_at >= since
        )
        with self.db.read() as conn:
            return [(str(key), str(status)) for key, status in conn.execute(query)]

    def watch(self) -> StatusWatch:
        """A check a send asks before each message: has this reader left since the run began?"""
        return StatusWatch(self)

    def suppression(self, email: str) -> Suppression | None:
        """Why and since when an address is barred from this list, if it is."""
        query = select(suppressions.c.reason, suppressions.c.created_at).where(
            suppressions.c.list == self.name, suppressions.c.email_key == key_of(email)
        )
        with self.db.read() as conn:
            row = conn.execute(query).first()
        return None if row is None else Suppression(str(row[0]), str(row[1]))

    # --- changing --------------------------------------------------------------------------

    def add(
        self, new: Subscriber, on_conflict: OnConflict = "error", resubscribe: bool = False
    ) -> MergeResult:
        """Add one subscriber; an address the list has, or has barred, follows on_conflict.

        Updating never re-subscribes (set_status does). A barred address (unsubscribed or
        bounced, its row since removed) is added again only with `resubscribe`, or as a pending
        sign-up, which stays barred until its owner confirms.
        """
        return self.add_many([new], on_conflict, resubscribe)[0]

    def add_many(
        self, new: list[Subscriber], on_conflict: OnConflict = "error", resubscribe: bool = False
    ) -> list[MergeResult]:
        """Add subscribers in one transaction (an import lands whole or not at all), as `add` does."""
        outcomes: list[MergeResult] = []
        with self.db.write() as conn:
            self.create(conn)
            for start in range(0, len(new), 500):
                part = new[start : start + 500]
                keys = [s.key for s in part]
                current = {
                    row["email_key"]: row
                    for row in conn.execute(
                        select(subscribers).where(self._mine(), subscribers.c.email_key.in_(keys))
                    ).mappings()
                }
                barred = barred_keys(conn, self.name, keys)
                inserts: list[Subscriber] = []
                for subscriber in part:
                    row, bar = current.get(subscriber.key), barred.get(subscriber.key)
                    outcomes.append(
                        self._add_one(conn, subscriber, row, bar, on_conflict, resubscribe, inserts)
                    )
                insert_rows(conn, self.name, inserts)
        return outcomes

    def _add_one(
        self,
        conn: Connection,
        new: Subscriber,
        row: RowMapping | None,
        barred: Suppression | None,
        on_conflict: OnConflict,
        resubscribe: bool,
        inserts: list[Subscriber],
    ) -> MergeResult:
        if row is None:
            if barred is not None and not resubscribe and new.status is not SubscriberStatus.PENDING:
                if on_conflict == "error":
                    raise barred_error(new.email, self.name, barred)
                return "skipped"
            inserts.append(new)  # inserted with the rest of its chunk
            if barred is not None and resubscribe:
                lift(conn, self.name, new.key)
            return "added"
        if on_conflict == "error":
            raise already_on_list(new.email, self.name)
        if on_conflict == "skip":
            return "skipped"
        merged = updated(as_subscriber(row), new)
        changes = {k: v for k, v in as_values(merged).items() if row[k] != v}
        if not changes:
            return "skipped"
        write_row(conn, self.name, new.key, changes)
        return "updated"

    def update(
        self,
        email: str,
        values: Mapping[str, str | None],
        expect: Mapping[str, str] | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> bool:
        """Write some fields of one row if it still has the `expect`ed values; True if it did.

        Pass the values the person saw (a status, say): a change made meanwhile, by hand or by
        another request, then wins instead of being overwritten. A status change keeps the
        suppressions in step.
        """
        unknown = set(values) - set(FIELDS)
        if unknown:
            raise ValueError(f"not a subscriber field: {', '.join(sorted(unknown))}")
        key = key_of(email)
        with self.db.write() as conn:
            query = select(subscribers.c.extra).where(self._mine(key))
            for column, value in (expect or {}).items():
                query = query.where(subscribers.c[column] == value)
            found = conn.execute(query).first()
            if found is None:
                return False
            changes: dict[str, Any] = {
                k: (v or None) if k.endswith(("_at", "_until")) else v for k, v in values.items()
            }
            if extra:
                changes["extra"] = json.dumps({**json.loads(found[0]), **extra}, ensure_ascii=False)
            write_row(conn, self.name, key, changes)
        return True

    def set_status(self, email: str, status: SubscriberStatus, when: datetime | None = None) -> bool:
        """Change one address's status; True if it changed, False if it already had it."""
        status = SubscriberStatus(status)
        current = self.get(email)
        if current is None:
            raise self.not_on_list(email)
        if current.status is status:
            return False
        values: dict[str, str | None] = {"status": status.value}
        if status is SubscriberStatus.UNSUBSCRIBED:
            values["unsubscribed_at"] = utc_text(when or utc_now())
        elif status is SubscriberStatus.ACTIVE:
            values["unsubscribed_at"] = None
        return self.update(email, values, expect={"status": current.status.value})

    def unsubscribe(self, email: str, when: datetime | None = None) -> bool:
        """Unsubscribe an active address: one transaction, for the one-click link.

        False when it was not active (repeated, bounced). An address the list does not have is
        barred all the same: whoever holds a genuine link asked never to be mailed.
        """
        stamp = utc_text(when) or now_text()
        key = key_of(email)
        with self.db.write() as conn:
            if conn.execute(select(lists.c.name).where(lists.c.name == self.name)).first() is None:
                raise self.missing_error()
            changed = conn.execute(
                update(subscribers)
                .where(self._mine(key), subscribers.c.status == SubscriberStatus.ACTIVE.value)
                .values(
                    status=SubscriberStatus.UNSUBSCRIBED.value,
                    unsubscribed_at=stamp,
                    changed_at=change_stamp(),
                )
            ).rowcount
            if changed or conn.execute(select(subscribers.c.id).where(self._mine(key))).first() is None:
                suppress(conn, self.name, key, SubscriberStatus.UNSUBSCRIBED, stamp)
        return bool(changed)

    def remove(self, email: str) -> bool:
        """Delete an address's row (its suppression, if any, stays: removing never re-subscribes)."""
        with self.db.write() as conn:
            return bool(conn.execute(delete(subscribers).where(self._mine(key_of(email)))).rowcount)

    def drop_pending(self, before: datetime) -> int:
        """Remove sign-ups nobody confirmed since `before`, and requests as old; how many rows went."""
        cutoff = utc_text(before)
        with self.db.write() as conn:
            dropped = conn.execute(
                delete(subscribers).where(
                    self._mine(),
                    subscribers.c.status == SubscriberStatus.PENDING.value,
                    func.coalesce(subscribers.c.subscribed_at, "") < cutoff,
                )
            ).rowcount
            conn.execute(delete(signups).where(signups.c.list == self.name, signups.c.requested_at < cutoff))
        return int(dropped)

    # --- sign-up requests, applied only once their owner confirms --------------------------

    def save_request(self, email: str, name: str, keywords: str, frequency: str) -> None:
        """Keep what someone asked for on the sign-up form until they confirm (the latest wins)."""
        values = {"email": email.strip(), "name": name, "keywords": keywords, "frequency": frequency}
        statement = self.db.insert(signups).values(
            list=self.name, email_key=key_of(email), requested_at=now_text(), **values
        )
        with self.db.write() as conn:
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["list", "email_key"],
                    set_={**values, "requested_at": statement.excluded.requested_at},
                )
            )

    def take_request(self, email: str) -> dict[str, str] | None:
        """The waiting sign-up request of an address (name, keywords, frequency), removed."""
        where = and_(signups.c.list == self.name, signups.c.email_key == key_of(email))
        with self.db.write() as conn:
            row = conn.execute(
                select(signups.c.name, signups.c.keywords, signups.c.frequency).where(where)
            ).first()
            conn.execute(delete(signups).where(where))
        return None if row is None else {"name": row[0], "keywords": row[1], "frequency": row[2]}

    def not_on_list(self, email: str) -> NotOnListError:
        """The one message for an address the list does not have."""
        return NotOnListError(
            f"{email} is not on list {self.name}",
            where=self.db.place.shown,
            fix="check the address with `newsletter subscribers list`",
        )


# --- statements shared with the CSV sync, which runs many of them in one transaction -----------


def insert_rows(conn: Connection, list_name: str, new: Collection[Subscriber]) -> None:
    """Insert rows (addresses the list lacks), barring those that arrive unsubscribed or bounced."""
    if not new:
        return
    stamp = change_stamp()
    conn.execute(
        subscribers.insert(), [{**as_values(s), "list": list_name, "changed_at": stamp} for s in new]
    )
    for subscriber in new:
        if subscriber.status in SUPPRESSING:
            when = utc_text(subscriber.unsubscribed_at) or now_text()
            suppress(conn, list_name, subscriber.key, subscriber.status, when)


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
        found.update((row["email_key"], as_subscriber(row)) for row in conn.execute(query).mappings())
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
    statement = dialect_insert(conn.dialect.name, suppressions).values(
        list=list_name, email_key=key, reason=str(reason), created_at=when
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["list", "email_key"],
            set_={"reason": statement.excluded.reason, "created_at": statement.excluded.created_at},
        )
    )


def _suppression(conn: Connection, list_name: str, key: str) -> Suppression | None:
    return barred_keys(conn, list_name, [key]).get(key)


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


__all__ = [
    "MergeResult",
    "NotOnListError",
    "OnConflict",
    "StatusWatch",
    "SubscriberStore",
    "Suppression",
    "UnknownListError",
]
