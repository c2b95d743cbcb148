"""Who got which issue: what makes a repeated run resume instead of sending again.

One row per (issue, list, address, channel) in the store's `deliveries` table, and what each
issue was built from in `issue_snapshots`. A run writes through one `DeliveryLedger` for its
(issue, list, channel): each attempt is committed before the message's data goes to the server,
each answer after it, in small batches (delivery/dispatch.py). Times that order deliveries come
from the database's clock, so hosts with clocks that disagree still agree on what is newest.
Reading past issues back (report, preview --issue, bounces) is store/history.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Executable, Select, and_, bindparam, func, select, update
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement, ColumnElement

from ..errors import StoreError
from ..safety.private import FILE_MODE
from ..statuses import DeliveryStatus
from . import ownedbatch
from .clock import database_now
from .database import Database
from .reconnect import reconnecting
from .schema import deliveries, issue_snapshots

RESERVE_BYTES = 256 * 1024  # the last answers of a run take a few pages of write-ahead log
_ROWS_PER_FETCH = 5_000  # big reads stream in pieces this size: memory stays flat at any list size
_REPLY_CHARS = 500

_d = deliveries
_s = issue_snapshots


@dataclass(frozen=True)
class LedgerEntry:
    """One subscriber's state for one issue, as far as the ledger knows."""

    email: str
    status: DeliveryStatus
    attempts: int
    message_id: str
    last_reply: str | None


@dataclass(frozen=True)
class Attempt:
    """A delivery about to be handed to the server, written before the DATA command."""

    email: str
    message_id: str
    papers: tuple[str, ...]
    reader: str | None = None


@dataclass(frozen=True)
class DeliveryResult:
    """What the server answered for one message (WITHDRAWN only replaces a 'sending' row)."""

    email: str
    status: DeliveryStatus
    reply: str


def _upsert_attempts(db: Database) -> ClauseElement:
    """A new attempt, or one more on an existing row: 'sending' again with this message's data."""
    given = ("issue", "list", "email", "channel", "message_id", "papers", "reader")
    insert = db.insert(_d).values(
        {name: bindparam(name) for name in given}
        | {"status": DeliveryStatus.SENDING.value, "attempts": 1, "updated_at": database_now()}
    )
    return insert.on_conflict_do_update(
        index_elements=[_d.c.issue, _d.c.list, _d.c.email, _d.c.channel],
        set_={
            "status": insert.excluded.status,
            "attempts": _d.c.attempts + 1,
            "message_id": insert.excluded.message_id,
            "papers": insert.excluded.papers,
            "reader": insert.excluded.reader,
            "updated_at": insert.excluded.updated_at,
        },
    )


_ANSWER = (
    update(_d)
    .where(ownedbatch.by_key(bindparam("k_email")))
    .values(status=bindparam("v_status"), last_reply=bindparam("v_reply"), updated_at=database_now())
)
# A reader who left mid-run replaces only a row still 'sending': an answer already recorded stays.
_WITHDRAWAL = _ANSWER.where(_d.c.status == DeliveryStatus.SENDING.value)

# A sender sharing the queue (store/sendqueue.py) writes only rows it still owns: once its lease
# ran out and another sender took them over, its late attempts and answers change nothing.
_OWNED = _d.c.owner == bindparam("k_owner")
_OWNED_ATTEMPT = (
    update(_d)
    .where(ownedbatch.by_key(bindparam("k_email")), _OWNED)
    .values(
        status=DeliveryStatus.SENDING.value,
        attempts=_d.c.attempts + 1,
        message_id=bindparam("v_message_id"),
        papers=bindparam("v_papers"),
        reader=bindparam("v_reader"),
        updated_at=database_now(),
    )
)


class Batched:
    """A Core statement compiled once for one engine and run for many rows by the driver itself.

    A run records every message twice; SQLAlchemy's own executemany would look the statement up
    and process each row's parameters again each time, which doubled the sender's cost of
    recording (benchmarks/bench_send.py prints it). The SQL is still the one Core statement's.
    """

    def __init__(self, statement: ClauseElement, db: Database) -> None:
        compiled = statement.compile(dialect=db.engine.dialect)
        assert isinstance(compiled, SQLCompiler)
        self.sql = str(compiled)
        # Values the statement itself holds (its literals), added to every row.
        self.fixed = {name: bind.value for bind, name in compiled.bind_names.items() if not bind.required}
        # SQLite's driver takes parameters by position, psycopg's by name.
        order = list(compiled.positiontup or ()) if compiled.positional else []
        self.in_order = itemgetter(*order) if len(order) > 1 else None

    def run(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        named = [{**self.fixed, **row} for row in rows]
        if self.in_order is None:
            conn.exec_driver_sql(self.sql, named)
        else:
            conn.exec_driver_sql(self.sql, [self.in_order(row) for row in named])


class DeliveryLedger:
    """Every write of one (issue, list, channel) goes through here; safe to call from threads."""

    def __init__(
        self, db: Database, issue: str, list_name: str, channel: str, owner: str | None = None
    ) -> None:
        self.db = db
        self.issue = issue
        self.list_name = list_name
        self.channel = channel
        self.owner = owner  # a sender of the shared queue: only rows it owns are written
        self._attempt = Batched(_upsert_attempts(db), db)
        self._owned_attempt = Batched(_OWNED_ATTEMPT, db)
        answer, withdrawal = (
            (_ANSWER, _WITHDRAWAL) if owner is None else (_ANSWER.where(_OWNED), _WITHDRAWAL.where(_OWNED))
        )
        self._answer = Batched(answer, db)
        self._withdrawal = Batched(withdrawal, db)

    def _ours(self) -> ColumnElement[bool]:
        return and_(_d.c.issue == self.issue, _d.c.list == self.list_name, _d.c.channel == self.channel)

    def close(self) -> None:
        """Give back the space `reserve` set aside (the database stays open for the process)."""
        self._release()

    def snapshot(self) -> bytes | None:
        """This issue's snapshot as recorded by an earlier run, if any."""
        query = select(_s.c.snapshot).where(
            _s.c.issue == self.issue, _s.c.list == self.list_name, _s.c.channel == self.channel
        )
        with self.db.read() as conn:
            found = conn.execute(query).scalar()
        return bytes(found) if found is not None else None

    def record_snapshot(self, snapshot: bytes) -> None:
        """Keep what this issue's messages are built from, durably, before any of them goes out."""
        insert = self.db.insert(_s).values(
            issue=self.issue,
            list=self.list_name,
            channel=self.channel,
            snapshot=snapshot,
            updated_at=database_now(),
        )
        upsert = insert.on_conflict_do_update(
            index_elements=[_s.c.issue, _s.c.list, _s.c.channel],
            set_={"snapshot": insert.excluded.snapshot, "updated_at": insert.excluded.updated_at},
        )
        with self.db.write() as conn:
            conn.execute(upsert)

    def entries(self) -> dict[str, LedgerEntry]:
        """Every recorded subscriber of this issue, keyed by lower-cased address."""
        columns = (_d.c.email, _d.c.status, _d.c.attempts, _d.c.message_id, _d.c.last_reply)
        with self.db.read() as conn:
            rows = _stream(conn, select(*columns).where(self._ours()))
            return {row[0]: LedgerEntry(row[0], DeliveryStatus(row[1]), *row[2:]) for row in rows}

    def statuses(self) -> dict[str, DeliveryStatus]:
        """Every recorded subscriber's status for this issue: all a run needs to skip or resume them.

        Not `entries`: a resumed run at 100,000 readers would hold every reply and Message-ID too.
        """
        known = {status.value: status for status in DeliveryStatus}
        with self.db.read() as conn:
            rows = _stream(conn, select(_d.c.email, _d.c.status).where(self._ours()))
            return {email: known[status] for email, status in rows}

    def papers_received_before(self, within: Collection[str] | None = None) -> dict[str, frozenset[str]]:
        """Paper ids each address already received in other issues, so they are not sent again.

        `within`: only these ids are kept (the issue's papers; the others cannot be picked anyway).
        """
        with self.db.read() as conn:
            return _group_received(_stream(conn, self._received()), within)

    def papers_received_by(self, email: str) -> frozenset[str]:
        """The paper ids one reader already received in other issues (a preview needs no more)."""
        with self.db.read() as conn:
            rows = conn.execute(self._received().where(_d.c.email == email.strip().lower()))
            return _group_received(rows).get(email.strip().lower(), frozenset())

    def _received(self) -> Select[tuple[str, str]]:
        return select(_d.c.email, _d.c.papers).where(
            _d.c.list == self.list_name,
            _d.c.channel == self.channel,
            _d.c.issue != self.issue,
            _d.c.status == DeliveryStatus.DELIVERED.value,
        )

    def counts(self) -> dict[str, int]:
        """How many subscribers of this issue are in each state."""
        query = select(_d.c.status, func.count()).where(self._ours()).group_by(_d.c.status)
        with self.db.read() as conn:
            return {status: count for status, count in conn.execute(query)}

    @reconnecting
    def record(
        self, outcomes: Iterable[DeliveryResult] = (), attempts: Iterable[Attempt] = ()
    ) -> frozenset[str]:
        """Write outcomes and new attempts in one durable transaction (one commit for the batch);
        the addresses whose attempts were refused (another sender owns them now): not to be sent."""
        outcomes, attempts = list(outcomes), list(attempts)
        if not (outcomes or attempts):
            return frozenset()
        with self.db.write() as conn:
            self._write_outcomes(conn, outcomes)
            return self._write_attempts(conn, attempts)

    def _write_attempts(self, conn: Connection, attempts: list[Attempt]) -> frozenset[str]:
        if not attempts:
            return frozenset()
        if self.owner is not None:
            return self._write_owned_attempts(conn, attempts)
        if attempts:
            self._attempt.run(
                conn,
                [
                    {
                        "issue": self.issue,
                        "list": self.list_name,
                        "email": a.email,
                        "channel": self.channel,
                        "message_id": a.message_id,
                        "papers": json.dumps(list(a.papers)),
                        "reader": a.reader,
                    }
                    for a in attempts
                ],
            )
        return frozenset()

    def _write_owned_attempts(self, conn: Connection, attempts: list[Attempt]) -> frozenset[str]:
        """Only rows still this sender's, locked until the commit so nobody takes them meanwhile."""
        wanted = [a.email for a in attempts]
        if not self.db.is_sqlite:
            columns: dict[str, Sequence[Any]] = {
                "email": wanted,
                "message_id": [a.message_id for a in attempts],
                "papers": [json.dumps(list(a.papers)) for a in attempts],
                "reader": [a.reader for a in attempts],
            }
            return frozenset(wanted) - ownedbatch.run(conn, ownedbatch.ATTEMPTS, self._owned_key(), columns)
        owned = select(_d.c.email).where(self._ours(), _d.c.owner == self.owner, _d.c.email.in_(wanted))
        mine = set(conn.execute(owned.with_for_update()).scalars())
        rows = [
            {
                "k_issue": self.issue,
                "k_list": self.list_name,
                "k_email": a.email,
                "k_channel": self.channel,
                "k_owner": self.owner,
                "v_message_id": a.message_id,
                "v_papers": json.dumps(list(a.papers)),
                "v_reader": a.reader,
            }
            for a in attempts
            if a.email in mine
        ]
        if rows:
            self._owned_attempt.run(conn, rows)
        return frozenset(wanted) - mine

    def _write_outcomes(self, conn: Connection, outcomes: list[DeliveryResult]) -> None:
        withdrawn = [o for o in outcomes if o.status == DeliveryStatus.WITHDRAWN]
        answered = [o for o in outcomes if o.status != DeliveryStatus.WITHDRAWN]
        if self.owner is not None and not self.db.is_sqlite:
            for batch, some in ((ownedbatch.WITHDRAWALS, withdrawn), (ownedbatch.ANSWERS, answered)):
                if some:
                    columns: dict[str, Sequence[Any]] = {
                        "email": [o.email for o in some],
                        "status": [str(o.status) for o in some],
                        "reply": [o.reply[:_REPLY_CHARS] for o in some],
                    }
                    ownedbatch.run(conn, batch, self._owned_key(), columns)
            return
        for statement, some in ((self._withdrawal, withdrawn), (self._answer, answered)):
            if some:
                statement.run(conn, [self._answer_row(o) for o in some])

    def _owned_key(self) -> dict[str, str]:
        assert self.owner is not None
        return {
            "k_issue": self.issue,
            "k_list": self.list_name,
            "k_channel": self.channel,
            "k_owner": self.owner,
        }

    def _answer_row(self, outcome: DeliveryResult) -> dict[str, Any]:
        return {
            "k_issue": self.issue,
            "k_list": self.list_name,
            "k_email": outcome.email,
            "k_channel": self.channel,
            "v_status": str(outcome.status),
            "v_reply": outcome.reply[:_REPLY_CHARS],
        } | ({} if self.owner is None else {"k_owner": self.owner})

    def reserve(self, size: int = RESERVE_BYTES) -> None:
        """Set aside disk space beside a SQLite file for the servers' last answers if the disk fills.

        Best effort: on a disk already that full, or under a small `ulimit -f`, there is none.
        PostgreSQL keeps its own disk: nothing to set aside here.
        """
        place = self._reserve_path
        if place is None:
            return
        try:
            descriptor = os.open(place, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            try:
                os.posix_fallocate(descriptor, 0, size)  # real blocks: a sparse file frees nothing
            finally:
                os.close(descriptor)
        except (OSError, AttributeError):  # AttributeError: no posix_fallocate (macOS)
            self._release()

    def record_after_fault(self, outcomes: Iterable[DeliveryResult]) -> None:
        """After a write failed for space, try the servers' answers alone once more, so nobody
        is sent the issue twice on the next run.

        First in the space `reserve` set aside (a full disk). Then, if that is not enough (the
        file size limit), after a checkpoint: it copies the write-ahead log into the database and
        makes the next write start the log at its beginning, in space the file already has.
        """
        outcomes = list(outcomes)
        self._release()
        try:
            self.record(outcomes)
            return
        except StoreError:
            if not self.db.is_sqlite:
                raise
        _checkpoint(self.db)
        self.record(outcomes)

    @property
    def _reserve_path(self) -> Path | None:
        path = self.db.sqlite_path
        return None if path is None else path.parent / f"{path.name}-reserve"

    def _release(self) -> None:
        if (place := self._reserve_path) is not None:
            with contextlib.suppress(OSError):
                place.unlink(missing_ok=True)


def _checkpoint(db: Database) -> None:
    """Copy SQLite's write-ahead log into the file and restart the log (outside any transaction)."""
    try:
        raw = db.engine.raw_connection()
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(RESTART)")
        finally:
            raw.close()
    except Exception as exc:  # the driver's own error: one line naming the file
        raise db.error(exc, "write to") from exc


def _stream(conn: Connection, query: Executable) -> Iterator[Sequence[Any]]:
    """Rows a few thousand at a time (a server-side cursor on PostgreSQL), never all at once."""
    return iter(conn.execution_options(yield_per=_ROWS_PER_FETCH).execute(query))


def _group_received(
    rows: Iterable[Sequence[Any]], within: Collection[str] | None = None
) -> dict[str, frozenset[str]]:
    """Address -> paper ids, kept only where `within` (the issue's papers) has them, if given.

    Without the filter a list's whole history is held at once (every paper each reader ever got,
    growing with every issue); only this issue's papers can be picked, so only they need leaving
    out, and a reader with none of them costs nothing.
    """
    received: dict[str, set[str]] = {}
    for email, papers in rows:
        ids = json.loads(papers)
        if within is not None:
            ids = [sys.intern(i) for i in ids if i in within]
            if not ids:
                continue
        received.setdefault(email, set()).update(ids)
    return {email: frozenset(ids) for email, ids in received.items()}
