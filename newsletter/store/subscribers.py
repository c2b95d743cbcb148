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
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, RowMapping, Select, and_, case, delete, func, select, update
from sqlalchemy.sql.elements import ColumnElement

from ..errors import StoreError, SubscriberError
from ..models import Subscriber, utc_now
from ..statuses import SubscriberStatus
from .database import Database
from .schema import deliveries, lists, signups, subscribers, suppressions
from .subscriberrows import (
    FIELDS,
    Suppression,
    already_on_list,
    as_subscriber,
    as_values,
    barred_error,
    barred_keys,
    change_stamp,
    insert_rows,
    key_of,
    lift,
    now_text,
    suppress,
    updated,
    utc_text,
    write_row,
)

OnConflict = Literal["error", "skip", "update"]
MergeResult = Literal["added", "updated", "skipped"]
PAGE = 1000  # rows read per transaction while streaming a list


class NotOnListError(SubscriberError):
    """The address has no row in the list: for the web endpoint this means 'already unsubscribed'."""


class UnknownListError(SubscriberError):
    """No list of that name, in the database or as a file."""


_LEFT = tuple(status.value for status in SubscriberStatus if status is not SubscriberStatus.ACTIVE)


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
            # While nobody has left, active rows change nothing: a list imported at the start of
            # the run (all of it changed within `slack`) is then not read back at every poll.
            try:
                changes = self.store.changes_since(self._since, leavers_only=not self.left)
            except StoreError as exc:
                if not exc.transient:
                    raise
                # The server is away a moment (a restart): ask again, from the same point, next poll.
                self._next = time.monotonic() + self.every
                return key not in self.left
            for changed, status in changes:
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

    def by_keys(self, keys: Collection[str]) -> dict[str, Subscriber]:
        """The subscribers with these folded addresses (a sender's claimed batch), by key."""
        query = select(subscribers).where(self._mine(), subscribers.c.email_key.in_(sorted(keys)))
        with self.db.read() as conn:
            return {row["email_key"]: as_subscriber(row) for row in conn.execute(query).mappings()}

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

    def changes_since(self, since: str, *, leavers_only: bool = False) -> list[tuple[str, str]]:
        """(address, status) of every row changed at or after `since` (a `change_stamp`);
        with `leavers_only`, of those no longer active."""
        changed: ColumnElement[Any] = subscribers.c.changed_at
        if leavers_only:
            # Through the status index, the few who left, not the change index's every row changed
            # (a list imported as the run began): wrapped in a function, `changed_at` uses no index.
            changed = func.coalesce(changed, "")
        query = select(subscribers.c.email_key, subscribers.c.status).where(self._mine(), changed >= since)
        if leavers_only:
            query = query.where(subscribers.c.status.in_(_LEFT))
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
                        select(subscribers)
                        .where(self._mine(), subscribers.c.email_key.in_(keys))
                        .with_for_update()
                    ).mappings()
                }
                barred = barred_keys(conn, self.name, keys)
                inserts: list[Subscriber] = []
                for subscriber in part:
                    row, bar = current.get(subscriber.key), barred.get(subscriber.key)
                    outcomes.append(
                        self._add_one(
                            conn,
                            subscriber,
                            row=row,
                            barred=bar,
                            on_conflict=on_conflict,
                            resubscribe=resubscribe,
                            inserts=inserts,
                        )
                    )
                insert_rows(conn, self.name, inserts)
        return outcomes

    def _add_one(
        self,
        conn: Connection,
        new: Subscriber,
        *,
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
            found = conn.execute(query.with_for_update()).first()  # held until the write (PostgreSQL)
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
            changed = conn.execute(
                update(subscribers)
                .where(self._mine(key), subscribers.c.status == SubscriberStatus.ACTIVE.value)
                .values(
                    status=SubscriberStatus.UNSUBSCRIBED.value,
                    unsubscribed_at=stamp,
                    changed_at=change_stamp(),
                )
            ).rowcount
            if not changed:  # the usual one-click is two statements; this path is the rare one
                if conn.execute(select(subscribers.c.id).where(self._mine(key))).first() is not None:
                    return False  # not active: bounced, or unsubscribed already
                if conn.execute(select(lists.c.name).where(lists.c.name == self.name)).first() is None:
                    raise self.missing_error()
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
        with self.db.write() as conn:
            conn.execute(self._request(email, name, keywords, frequency))

    def _request(self, email: str, name: str, keywords: str, frequency: str) -> Any:
        values = {"email": email.strip(), "name": name, "keywords": keywords, "frequency": frequency}
        statement = self.db.insert(signups).values(
            list=self.name, email_key=key_of(email), requested_at=now_text(), **values
        )
        return statement.on_conflict_do_update(
            index_elements=["list", "email_key"],
            set_={**values, "requested_at": statement.excluded.requested_at},
        )

    def record_signup(self, new: Subscriber) -> SubscriberStatus | None:
        """A web sign-up in one transaction, the same statements whatever the address's state.

        The request is kept apart (for every address, so no state answers faster than another),
        a new address is added `pending`, a pending one's week starts again. Returns the status
        the address had (None: not on the list), which decides only which mail goes out.
        """
        key = new.key
        with self.db.write() as conn:
            self.create(conn)
            status = select(subscribers.c.status).where(self._mine(key)).with_for_update()
            row = conn.execute(status).first()
            conn.execute(self._request(new.email, new.name, "; ".join(new.keywords), new.frequency.value))
            if row is None and not self._insert_pending(conn, new):
                # Another serve added the address since our SELECT (PostgreSQL: nothing to lock
                # then); its row is committed now, so this is an update like any other.
                row = conn.execute(status).one()
            if row is not None:  # one statement for every state; only a pending row's values change
                pending = subscribers.c.status == SubscriberStatus.PENDING.value
                since = utc_text(new.subscribed_at)
                conn.execute(
                    update(subscribers)
                    .where(self._mine(key))
                    .values(
                        subscribed_at=case((pending, since), else_=subscribers.c.subscribed_at),
                        changed_at=case((pending, change_stamp()), else_=subscribers.c.changed_at),
                    )
                )
        return None if row is None else SubscriberStatus(row[0])

    def _insert_pending(self, conn: Connection, new: Subscriber) -> bool:
        """Add a sign-up's row unless the address arrived meanwhile; False if it did.

        ON CONFLICT waits for the other transaction and then does nothing, where a plain INSERT
        failed on the unique index: two serves taking the same address at once answered 503.
        """
        values = {**as_values(new), "list": self.name, "changed_at": change_stamp()}
        statement = self.db.insert(subscribers).values(values).on_conflict_do_nothing()
        return bool(conn.execute(statement).rowcount)

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


__all__ = [
    "MergeResult",
    "NotOnListError",
    "OnConflict",
    "StatusWatch",
    "SubscriberStore",
    "Suppression",
    "UnknownListError",
]
