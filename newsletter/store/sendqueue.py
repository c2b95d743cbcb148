"""An issue's deliveries as a queue that any number of `newsletter send` processes share.

Each sender queues the rows it finds owed (once per (issue, list, address, channel): repeating it
changes nothing), then claims batches of them: `FOR UPDATE SKIP LOCKED` on PostgreSQL, so two
senders never take the same row and never wait for each other; one immediate transaction on
SQLite. A claim writes the sender's id into `owner`; the sender holds a lease in `senders`,
renewed by heartbeats, on the database's clock only. Nothing is held open while a message is
built or sent. When a sender falls silent past its lease, the next claim by anyone returns its
rows: unsent ones to the queue, ones it handed to a server with no answer recorded either again
(same Message-ID) or held for the operator (`on_uncertain`).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, case, delete, func, literal, select, update

from ..statuses import DeliveryStatus
from . import ownedbatch
from .clock import database_later, database_now
from .database import FRESH_ROWS, Database
from .deliveries import Batched
from .reconnect import reconnecting
from .schema import deliveries, senders

log = logging.getLogger(__name__)

_d = deliveries
_s = senders
QUEUED = DeliveryStatus.QUEUED.value
SENDING = DeliveryStatus.SENDING.value
CLAIMABLE = (QUEUED, SENDING)  # unowned 'sending': handed over by a sender that is gone
RELEASED = (QUEUED, SENDING, DeliveryStatus.DEFERRED.value, DeliveryStatus.WITHDRAWN.value)
REQUEUED = (DeliveryStatus.DEFERRED.value, DeliveryStatus.WITHDRAWN.value)
_CHUNK = 500  # addresses per statement where a list of them is passed


@dataclass(frozen=True)
class Claim:
    """A row this sender now owns: who, and whether a sender before it had handed it over."""

    email: str
    status: DeliveryStatus  # QUEUED, or SENDING: sent again with the same Message-ID


def _each(values: tuple[str, ...]) -> list[Any]:
    """IN (...) as plain parameters: a statement run by `Batched` is compiled once, not expanded."""
    return [literal(value) for value in values]


def this_host() -> str:
    """The host as senders compare it: its name and PID namespace (containers share names)."""
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        namespace = "?"
    return f"{socket.gethostname()}/{namespace}"


def _process_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return False


class SendQueue:
    """One sender's view of one (issue, list, channel): queue, claim, heartbeat, release."""

    def __init__(
        self,
        db: Database,
        issue: str,
        list_name: str,
        channel: str,
        *,
        lease_seconds: int = 60,
        hold_uncertain: bool = False,
        shard: str | None = None,
    ) -> None:
        self.db = db
        self.issue = issue
        self.list_name = list_name
        self.channel = channel
        self.lease_seconds = lease_seconds
        self.hold_uncertain = hold_uncertain
        self.shard = shard
        self.host = this_host()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        queue = self._queue_statement()
        self._queue: Batched | Any = Batched(queue, db) if db.is_sqlite else queue
        self._next_reap = 0.0

    def _ours(self) -> ColumnElement[bool]:
        return and_(_d.c.issue == self.issue, _d.c.list == self.list_name, _d.c.channel == self.channel)

    def _of_issue(self) -> ColumnElement[bool]:
        return and_(_s.c.issue == self.issue, _s.c.list == self.list_name, _s.c.channel == self.channel)

    # --- this sender ----------------------------------------------------------------------

    def register(self) -> None:
        """Join the issue's senders with a fresh lease."""
        row = {
            "id": self.owner,
            "issue": self.issue,
            "list": self.list_name,
            "channel": self.channel,
            "host": self.host,
            "pid": os.getpid(),
            "started_at": database_now(),
            "lease_until": database_later(self.lease_seconds),
        }
        with self.db.write() as conn:
            conn.execute(_s.insert().values(row))

    def heartbeat(self) -> bool:
        """Renew the lease; False if this sender was finished meanwhile (nothing is renewed)."""
        renew = (
            update(_s)
            .where(_s.c.id == self.owner, _s.c.finished_at.is_(None))
            .values(lease_until=database_later(self.lease_seconds))
        )
        with self.db.write() as conn:
            return bool(conn.execute(renew).rowcount)

    @reconnecting
    def finish(self, completed: bool) -> None:
        """Leave the issue: the rest released for others, the lease ended. After a completed run
        the rows still only claimed were built into no message (nothing new for the reader, a bad
        address): they are dropped, and the next run builds them anew."""
        with self.db.write() as conn:
            if completed:
                conn.execute(delete(_d).where(self._ours(), _d.c.owner == self.owner, _d.c.status == QUEUED))
            self._release(conn, _d.c.owner == self.owner)
            conn.execute(update(_s).where(_s.c.id == self.owner).values(finished_at=database_now()))

    # --- the queue ------------------------------------------------------------------------

    def _queue_statement(self) -> Any:
        values: dict[str, ColumnElement[Any]] = {
            "issue": bindparam("issue"),
            "list": bindparam("list"),
            "channel": bindparam("channel"),
            "shard": bindparam("shard"),
            "status": literal(QUEUED),
            "attempts": literal(0),
            "message_id": literal(""),
            "papers": literal("[]"),
            "updated_at": database_now(),
        }
        insert = self.db.insert(_d)
        if self.db.is_sqlite:  # in-process: one statement run for each address costs nothing more
            insert = insert.values(email=bindparam("email"), **values)
        else:  # the page of addresses as one array: one statement, one plan (by row: 25 s per 100,000)
            emails = ownedbatch.rows("email")
            picked = select(emails.c.email, *(value.label(name) for name, value in values.items()))
            insert = insert.from_select(["email", *values], picked)
        # A row nobody owns that is not final joins this run (and its shard); final rows stay.
        return insert.on_conflict_do_update(
            index_elements=[_d.c.issue, _d.c.list, _d.c.email, _d.c.channel],
            set_={
                "status": case((_d.c.status.in_(_each(REQUEUED)), literal(QUEUED)), else_=_d.c.status),
                "shard": insert.excluded.shard,
            },
            where=and_(_d.c.owner.is_(None), _d.c.status.in_(_each(RELEASED))),
        )

    def fan_out(self, emails: Iterable[str]) -> None:
        """Queue a row for each address (once: repeated by every sender, it changes nothing new)."""
        page: list[str] = []
        queued = 0
        for email in emails:
            queued += 1
            page.append(email)
            if len(page) >= 5_000:
                self._write_queue(page)
                page = []
        self._write_queue(page)
        if queued >= FRESH_ROWS:
            with self.db.write() as conn:
                self.db.fresh_statistics(conn, _d)

    @reconnecting
    def _write_queue(self, page: list[str]) -> None:
        if not page:
            return
        key = {"issue": self.issue, "list": self.list_name, "channel": self.channel, "shard": self.shard}
        with self.db.write() as conn:
            if isinstance(self._queue, Batched):
                self._queue.run(conn, [key | {"email": email} for email in page])
            else:
                conn.execute(self._queue, key | {"a_email": page})

    def _claimable(self) -> ColumnElement[bool]:
        claimable = and_(self._ours(), _d.c.owner.is_(None), _d.c.status.in_(CLAIMABLE))
        return claimable if self.shard is None else and_(claimable, _d.c.shard == self.shard)

    @reconnecting
    def claim(self, size: int) -> list[Claim]:
        """Own up to `size` rows nobody owns, returning silent senders' rows to the queue first."""
        if time.monotonic() >= self._next_reap:
            self.reap()
        claimable = self._claimable()
        # In no particular order: the queue's index hands over the first rows it has, where an
        # ORDER BY would sort every claimable row again on each claim.
        picked = select(_d.c.email).where(claimable).limit(size).with_for_update(skip_locked=True)
        chosen: ColumnElement[bool]
        if self.db.is_sqlite:  # one writer at a time: the subquery runs once, nothing is skipped
            chosen = _d.c.email.in_(picked.scalar_subquery())
        else:
            # ARRAY(...) is evaluated once, then each row is found by its key. An IN (subquery)
            # may be run again per row, each time skipping other rows (a claim of 16 took 200),
            # and a CTE joined to the table was planned as a loop over both (2.6 s per claim).
            chosen = _d.c.email == func.any(func.array(picked.scalar_subquery()))
        # The rows picked are locked (PostgreSQL) or the database is (SQLite): still nobody's. Not
        # saying so again keeps the partial queue index out of this lookup by key, which
        # PostgreSQL's planner, with a freshly filled table, chose and scanned whole per claim.
        take = (
            update(_d).where(self._ours(), chosen).values(owner=self.owner).returning(_d.c.email, _d.c.status)
        )
        with self.db.write() as conn:
            if not self.db.is_sqlite:
                ownedbatch.by_key_plans(conn, no_scans=True)
            return [Claim(email, DeliveryStatus(status)) for email, status in conn.execute(take)]

    @reconnecting
    def reap(self) -> int:
        """Return the rows of senders whose lease ran out (or whose process on this host is gone)."""
        self._next_reap = time.monotonic() + self.lease_seconds / 4
        with self.db.write() as conn:
            self._bury_neighbours(conn)
            return self._release(conn, and_(_d.c.owner.is_not(None), _d.c.owner.not_in(self._live())))

    def _bury_neighbours(self, conn: Any) -> None:
        """A sender on this host whose process is gone (kill -9) is dead now, not at its lease's end."""
        query = select(_s.c.id, _s.c.pid).where(
            self._of_issue(), _s.c.host == self.host, _s.c.finished_at.is_(None), _s.c.id != self.owner
        )
        gone = [sender for sender, pid in conn.execute(query) if _process_is_gone(pid)]
        if gone:
            conn.execute(update(_s).where(_s.c.id.in_(gone)).values(finished_at=database_now()))

    def _release(self, conn: Any, whose: ColumnElement[bool]) -> int:
        """Rows not final of these owners become nobody's; handed-over ones are held if so set."""
        uncertain = DeliveryStatus.HELD.value if self.hold_uncertain else SENDING
        release = (
            update(_d)
            .where(self._ours(), whose, _d.c.status.in_(RELEASED))
            .values(
                owner=None,
                status=case((_d.c.status == SENDING, literal(uncertain)), else_=_d.c.status),
                updated_at=database_now(),
            )
        )
        return int(conn.execute(release).rowcount)

    @reconnecting
    def drop(self, emails: list[str]) -> None:
        """Rows this sender claimed and built into no message: each run builds them anew."""
        for start in range(0, len(emails), _CHUNK):
            chunk = emails[start : start + _CHUNK]
            with self.db.write() as conn:
                conn.execute(
                    delete(_d).where(
                        self._ours(), _d.c.owner == self.owner, _d.c.status == QUEUED, _d.c.email.in_(chunk)
                    )
                )

    @reconnecting
    def withdraw(self, emails: list[str], reason: str) -> None:
        """Rows this sender claimed whose reader left the list before their message was built."""
        with self.db.write() as conn:
            conn.execute(
                update(_d)
                .where(
                    self._ours(), _d.c.owner == self.owner, _d.c.status.in_(CLAIMABLE), _d.c.email.in_(emails)
                )
                .values(status=DeliveryStatus.WITHDRAWN.value, last_reply=reason, updated_at=database_now())
            )

    @reconnecting
    def return_unseen(self, seen: set[str]) -> int:
        """Rows this sender owns, still queued, that no claim of its returned: claimed by a COMMIT
        whose answer a lost connection took (store/reconnect.py). Back to the queue."""
        query = select(_d.c.email).where(self._ours(), _d.c.owner == self.owner, _d.c.status == QUEUED)
        with self.db.write() as conn:
            unseen = [email for email in conn.execute(query).scalars() if email not in seen]
            for start in range(0, len(unseen), _CHUNK):
                chunk = unseen[start : start + _CHUNK]
                mine = and_(self._ours(), _d.c.owner == self.owner, _d.c.email.in_(chunk))
                conn.execute(update(_d).where(mine).values(owner=None))
        return len(unseen)

    @reconnecting
    def resend_held(self) -> int:
        """The operator's word on held rows: send them again (same Message-ID), as in-flight ones."""
        held = and_(self._ours(), _d.c.status == DeliveryStatus.HELD.value)
        with self.db.write() as conn:
            return int(conn.execute(update(_d).where(held).values(status=SENDING, owner=None)).rowcount)

    @reconnecting
    def held_by_others(self) -> bool:
        """Whether a live sender other than this one holds rows not handed over or answered yet."""
        others = self._live().where(_s.c.id != self.owner)
        query = select(_d.c.email).where(self._ours(), _d.c.status.in_(CLAIMABLE), _d.c.owner.in_(others))
        with self.db.read() as conn:
            return conn.execute(query.limit(1)).first() is not None

    @staticmethod
    def _live() -> Any:
        return select(_s.c.id).where(_s.c.finished_at.is_(None), _s.c.lease_until > database_now())

    @reconnecting
    def remaining(self) -> int:
        """Rows still owed that nobody owns (a --limit run leaves them for the next)."""
        query = select(func.count()).where(self._claimable())
        with self.db.read() as conn:
            return int(conn.execute(query).scalar() or 0)


class Heartbeat:
    """Renews a sender's lease from a thread of its own, every sixth of the lease, until stopped."""

    def __init__(self, queue: SendQueue) -> None:
        self.queue = queue
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="newsletter-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _beat(self) -> None:
        every = max(self.queue.lease_seconds / 6, 0.2)
        failed = 0
        while not self._stop.wait(every):
            try:
                self.queue.heartbeat()
                failed = 0
            except Exception as exc:  # the database is away: try again next beat, claims will tell
                failed += 1
                # Said once half the lease is gone: a blip (or a full disk, which the run's own
                # writes report in one line) is not worth a warning of its own.
                if failed == 3:
                    log.warning("heartbeat of sender %s failed 3 times: %s", self.queue.owner, exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


@dataclass(frozen=True)
class SenderProgress:
    """One sender of an issue as `report` and `send --json` show it: who, alive, what it holds."""

    id: str
    host: str
    pid: int
    started_at: str
    live: bool
    counts: dict[str, int]  # its rows by status: 'queued' and 'sending' are the ones it holds


def issue_senders(db: Database, issue: str, list_name: str, channel: str) -> list[SenderProgress]:
    """Every sender that worked on an issue, oldest first, with its rows by status (plain reads:
    a report never skips a locked row)."""
    ours = and_(_d.c.issue == issue, _d.c.list == list_name, _d.c.channel == channel)
    of_issue = and_(_s.c.issue == issue, _s.c.list == list_name, _s.c.channel == channel)
    live = and_(_s.c.finished_at.is_(None), _s.c.lease_until > database_now())
    counts: dict[str, dict[str, int]] = {}
    with db.read() as conn:
        for owner, status, n in conn.execute(
            select(_d.c.owner, _d.c.status, func.count()).where(ours).group_by(_d.c.owner, _d.c.status)
        ):
            counts.setdefault(owner or "", {})[status] = int(n)
        rows = conn.execute(
            select(_s.c.id, _s.c.host, _s.c.pid, _s.c.started_at, live)
            .where(of_issue)
            .order_by(_s.c.started_at, _s.c.id)
        ).all()
    return [
        SenderProgress(
            row[0], row[1].split("/")[0], int(row[2]), row[3], bool(row[4]), counts.get(row[0], {})
        )
        for row in rows
    ]
