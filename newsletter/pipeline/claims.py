"""A recorded run's share of an issue: queue who is owed, claim batches, hand them to the builders.

Any number of `newsletter send` processes, on one host or many, run this against one database:
each queues the readers it finds owed (repeating that changes nothing), then claims batches until
the queue is empty and no live sender holds unfinished rows (it waits for those: a sender that
dies mid-batch leaves them to the others). store/sendqueue.py holds the SQL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..errors import NewsletterError
from ..models import Subscriber
from ..settings import Settings
from ..statuses import DeliveryStatus
from ..store.database import Database
from ..store.deliveries import DeliveryLedger
from ..store.reconnect import reconnecting
from ..store.sendqueue import Heartbeat, SendQueue
from ..store.subscribers import SubscriberStore

log = logging.getLogger(__name__)

CLAIMS_PER_CONNECTION = 8  # a claim is a few seconds of sending: what a killed sender leaves behind
Owed = Callable[[Iterator[Subscriber], Mapping[str, DeliveryStatus]], Iterator[Subscriber]]


@dataclass
class ClaimedRun:
    """This sender's queue, its ledger (writing only rows it owns) and what it has claimed."""

    queue: SendQueue
    ledger: DeliveryLedger
    store: SubscriberStore
    limit: int | None = None
    batch: int = 32
    statuses: dict[str, DeliveryStatus] = field(default_factory=dict)  # claimed: queued or sending
    claimed: int = 0
    passed_over: list[str] = field(default_factory=list)  # claimed, built into no message
    withdrawn: set[str] = field(default_factory=set)  # claimed, and left the list since the run began

    def pass_over(self, key: str) -> None:
        """A claimed reader gets no message (nothing new, a bad address, left the list): the row
        is given up at the next claim, so no sender waits on it."""
        self.passed_over.append(key)

    def fan_out(self, owed: Owed) -> None:
        """Queue a row for every reader this run finds owed the issue (`owed` filters the list)."""
        self.queue.fan_out(s.key for s in owed(self.store.iter_subscribers(), self.ledger.statuses()))

    def subscribers(self) -> Iterator[Subscriber]:
        """The readers of each claimed batch, claimed only once the last one was taken up."""
        while self.limit is None or self.claimed < self.limit:
            size = self.batch if self.limit is None else min(self.batch, self.limit - self.claimed)
            self._give_up_passed_over()
            claims = self.queue.claim(size)
            if not claims:
                return
            self.claimed += len(claims)
            self.statuses.update((claim.email, claim.status) for claim in claims)
            found = self._readers([claim.email for claim in claims])
            self.passed_over.extend(claim.email for claim in claims if claim.email not in found)
            self._withdraw([s.key for s in found.values() if not s.is_active])
            yield from (s for s in found.values() if s.is_active)

    @property
    def db(self) -> Database:
        return self.queue.db

    @reconnecting
    def _readers(self, keys: list[str]) -> dict[str, Subscriber]:
        return self.store.by_keys(keys)

    def _withdraw(self, keys: list[str]) -> None:
        """Readers queued when the run began who have left the list since: recorded as withdrawn,
        as the dispatcher records one who leaves while their message waits."""
        if keys:
            self.queue.withdraw(keys, "unsubscribed during the run")
            self.withdrawn.update(keys)

    def _give_up_passed_over(self) -> None:
        given_up, self.passed_over = self.passed_over, []
        self.queue.drop(given_up)

    def more_to_claim(self) -> bool:
        """After this sender's claims ran dry: wait while another live sender holds rows it may
        yet give up (it could die mid-batch); True once some are claimable again."""
        while self.limit is None or self.claimed < self.limit:
            self._give_up_passed_over()
            self.queue.reap()
            self.queue.return_unseen(set(self.statuses))
            if self.queue.remaining():
                return True
            if not self.queue.held_by_others():
                return False
            time.sleep(min(1.0, self.queue.lease_seconds / 10))
        return False


@contextmanager
def claimed_run(
    settings: Settings,
    ledger: DeliveryLedger,
    store: SubscriberStore,
    *,
    limit: int | None,
    shard: tuple[int, int] | None,
) -> Iterator[ClaimedRun]:
    """Join the issue's senders for the run: a lease kept alive by heartbeats, left at the end.

    Rows this sender claimed and built into no message (nothing new, a bad address) are dropped
    when it completes: the next run builds them anew, as every run did before the queue.
    """
    db = ledger.db
    db.patience = settings.reconnect_seconds
    queue = SendQueue(
        db,
        ledger.issue,
        ledger.list_name,
        ledger.channel,
        lease_seconds=settings.lease_seconds,
        hold_uncertain=settings.on_uncertain == "hold",
        shard=None if shard is None else f"{shard[0]}/{shard[1]}",
    )
    queue.register()
    heartbeat = Heartbeat(queue)
    heartbeat.start()
    owned = DeliveryLedger(db, ledger.issue, ledger.list_name, ledger.channel, owner=queue.owner)
    run = ClaimedRun(queue, owned, store, limit, batch=settings.smtp.connections * CLAIMS_PER_CONNECTION)
    completed = False
    try:
        yield run
        completed = True
    finally:
        heartbeat.stop()
        _leave(queue, completed)


def _leave(queue: SendQueue, completed: bool) -> None:
    """Give back this sender's rows; if the database cannot take even that (a full disk), the
    lease runs out instead and the next sender takes them over, so the run's own error is shown."""
    try:
        queue.finish(completed=completed)
    except NewsletterError as exc:
        log.info("sender %s could not give back its deliveries: %s", queue.owner, exc.message)
