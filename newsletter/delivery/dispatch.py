"""Deliver many messages over a few reused SMTP connections, recording every step in the ledger
(through record.py's DeliveryRecorder)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass

import aiosmtplib

from ..errors import NewsletterError
from ..mail.compose import ComposedMessage
from ..settings import SmtpSettings
from ..statuses import DeliveryStatus, ReplyClass
from ..store.deliveries import Attempt, DeliveryLedger, DeliveryResult
from .ratelimit import RateLimiter
from .record import DeliveryRecorder
from .smtp import Reply, ServerFailure, SmtpTarget, close_connection, open_connection, send_one


@dataclass
class Job:
    """One subscriber's message on its way, with how often it has been tried in this run."""

    key: str
    message: ComposedMessage
    papers: tuple[str, ...]
    tries: int = 0
    reader: str | None = None  # JSON of what the reader was sent beyond papers, for the ledger


@dataclass
class DispatchStats:
    """What happened to the messages handed to the dispatcher."""

    sent: int = 0
    failed: int = 0
    deferred: int = 0
    unsubscribed: int = 0
    taken_over: int = 0  # claimed by another sender after this one's lease ran out


class Dispatcher:
    """A pool of SMTP connections fed from one queue, with retries, a rate limit and a ledger."""

    def __init__(
        self,
        target: SmtpTarget,
        envelope_from: str,
        smtp: SmtpSettings,
        *,
        ledger: DeliveryLedger | None = None,
        still_wanted: Callable[[str], bool] | None = None,
        on_outcome: Callable[[Job, DeliveryStatus], None] | None = None,
    ) -> None:
        self.target = target
        self.envelope_from = envelope_from
        self.smtp = smtp
        self.recorder = DeliveryRecorder(ledger, outcome_batch=smtp.connections * 4, on_fault=self._stop)
        self.still_wanted = still_wanted
        self.on_outcome = on_outcome
        self.limiter = RateLimiter(smtp.rate_per_second, smtp.rate_per_hour)
        self.stats = DispatchStats()
        # Jobs are recorded as 'sending' a batch at a time when queued (one transaction for many),
        # which is still before their DATA; a crash re-sends at most the queue and what is in flight.
        self._batch = smtp.connections * 4
        self._queue: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=self._batch)
        self._pending = 0
        self._produced_all = False
        self._in_a_row = 0
        self._retry_tasks: set[asyncio.Task[None]] = set()
        self._producer: asyncio.Task[None] | None = None
        self._stopping = False  # the ledger failed: finish what is on the wire, send nothing more
        self._fault: NewsletterError | None = None  # the server's or the jobs' source's: raised last

    async def run(self, jobs: Iterable[Job] | AsyncIterator[Job]) -> DispatchStats:
        """Send every job; raise ServerFailure (after flushing the ledger) if the server fails."""
        source = jobs if isinstance(jobs, AsyncIterator) else _aiter(iter(jobs))
        head = await anext(source, None)
        if head is None:
            return self.stats  # nothing owed: no need to reach the server at all
        first = await open_connection(self.target)  # fail fast, before anyone is recorded
        self.recorder.start()
        try:
            async with asyncio.TaskGroup() as group:
                self._producer = group.create_task(self._produce(head, source))
                group.create_task(self._worker(first))
                for _ in range(self.smtp.connections - 1):
                    group.create_task(self._worker(None))
        except ExceptionGroup as group:
            raise _first_cause(group) from None
        finally:
            for task in self._retry_tasks:
                task.cancel()
            await self.recorder.close()
        if self._fault is not None:
            raise self._fault
        return self.stats

    async def _produce(self, head: Job, rest: AsyncIterator[Job]) -> None:
        batch = [head]
        try:
            async for job in rest:
                batch.append(job)
                if len(batch) >= self._batch:
                    if not await self._enqueue(batch):
                        return
                    batch = []
        except NewsletterError as exc:
            # The jobs' source writes too (a shared queue's claims): when it fails (a full disk),
            # the messages on the wire still get their answers recorded, as after a ledger fault.
            self._fault = exc
            self._stop()
            return
        if await self._enqueue(batch):
            self._produced_all = True
            self._maybe_finish()

    def _stop(self) -> None:
        """The ledger (or the outbox) cannot take any more: let each connection finish the message
        it is sending (its answer is still recorded), drop the queue (never sent) and stop."""
        if self._stopping:
            return
        self._stopping = True
        if self._producer is not None and self._producer is not asyncio.current_task():
            self._producer.cancel()
        while not self._queue.empty():
            self._queue.get_nowait()
        for _ in range(self.smtp.connections):
            self._queue.put_nowait(None)

    async def _enqueue(self, batch: list[Job]) -> bool:
        """Record a batch as 'sending' in one durable transaction, then hand it to the connections;
        False when the ledger cannot record it (the run stops, the recorder raises the error)."""
        self._pending += len(batch)
        # Unsubscribes are checked once, when a connection takes the job: the last moment that counts.
        refused = await self._recorded(
            [Attempt(j.key, j.message.message_id, j.papers, j.reader) for j in batch]
        )
        if refused is None:
            return False
        for job in batch:
            if job.key in refused:
                self._taken_over(job)
            else:
                await self._queue.put(job)
        return True

    async def _recorded(self, attempts: list[Attempt]) -> frozenset[str] | None:
        """The attempts on disk: the addresses refused (another sender's now), None if the ledger failed."""
        try:
            return await self.recorder.attempts(attempts)
        except Exception:
            if self.recorder.failed is None:
                raise
            self._stop()
            return None

    def _taken_over(self, job: Job) -> None:
        """Another sender owns this reader now (this one's lease ran out): it is theirs to send."""
        self.stats.taken_over += 1
        self._pending -= 1
        self._maybe_finish()

    def _wanted(self, job: Job) -> bool:
        """Someone who unsubscribed since the run began gets nothing more (checked at each step)."""
        if self.still_wanted is None or self.still_wanted(job.key):
            return True
        self._finish(job, DeliveryStatus.WITHDRAWN)
        return False

    def _maybe_finish(self) -> None:
        if self._produced_all and self._pending == 0:
            for _ in range(self.smtp.connections):
                self._queue.put_nowait(None)

    async def _worker(self, client: aiosmtplib.SMTP | None) -> None:
        used = 0
        try:
            while (job := await self._queue.get()) is not None:
                if self._stopping:
                    continue  # recorded as 'sending' but never sent: the next run sends it
                if not self._wanted(job):
                    self.recorder.outcome(
                        DeliveryResult(job.key, DeliveryStatus.WITHDRAWN, "unsubscribed during the run")
                    )
                    continue
                if client is None or used >= self.smtp.messages_per_connection:
                    if client is not None:
                        await close_connection(client)
                    client, used = await self._reconnect(), 0
                    _raise_if_cancelled()
                await self.limiter.acquire()
                sender = job.message.sender or self.envelope_from
                reply = await send_one(client, sender, job.message, self.target.where, self.target.pipelining)
                _raise_if_cancelled()
                used += 1
                if not client.is_connected:
                    client = None  # dropped, timed out or 421: the next message reconnects
                self._handle(job, reply)
        finally:
            if client is not None:
                await close_connection(client)

    async def _reconnect(self) -> aiosmtplib.SMTP:
        """A dropped connection is normal; a server that stays unreachable stops the run."""
        for attempt in range(self.smtp.max_attempts):
            try:
                return await open_connection(self.target)
            except ServerFailure:
                if attempt + 1 == self.smtp.max_attempts:
                    raise
                await asyncio.sleep(self._backoff(attempt + 1))
        raise AssertionError("unreachable")

    def _handle(self, job: Job, reply: Reply) -> None:
        fault = self.target.fault() if self.target.fault is not None else None
        if fault is not None and reply.kind is not ReplyClass.ACCEPTED:
            self._fault = fault  # raised once the connections finished and the ledger is written
            self._record(job, DeliveryStatus.DEFERRED, reply)
            self.stats.deferred += 1
            self._stop()
            return
        if reply.kind is ReplyClass.ACCEPTED:
            self._in_a_row = 0
            self.stats.sent += 1
            self._record(job, DeliveryStatus.DELIVERED, reply)
            self._finish(job, DeliveryStatus.DELIVERED)
            return
        self._in_a_row += 1
        if self._in_a_row >= self.smtp.max_failures_in_a_row:
            self._record(job, reply.kind.status, reply)
            raise ServerFailure(
                f"{self._in_a_row} deliveries in a row failed, the last with '{reply}'",
                where=self.target.where,
                fix="check the server's logs and limits, then run the same command again to resume",
            )
        if reply.kind is ReplyClass.PERMANENT:
            self.stats.failed += 1
            self._record(job, DeliveryStatus.FAILED, reply)
            self._finish(job, DeliveryStatus.FAILED)
            return
        self._retry_or_defer(job, reply)

    def _retry_or_defer(self, job: Job, reply: Reply) -> None:
        job.tries += 1
        self._record(job, DeliveryStatus.DEFERRED, reply)
        if job.tries >= self.smtp.max_attempts:
            self.stats.deferred += 1
            self._finish(job, DeliveryStatus.DEFERRED)
            return
        task = asyncio.create_task(self._requeue(job, self._backoff(job.tries)))
        self._retry_tasks.add(task)
        task.add_done_callback(self._retry_tasks.discard)

    async def _requeue(self, job: Job, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._stopping or not self._wanted(job):
            return
        attempt = Attempt(job.key, job.message.message_id, job.papers, job.reader)
        refused = await self._recorded([attempt])
        if refused is None or self._stopping:
            return  # still 'deferred': the next run tries again
        if refused:
            self._taken_over(job)
        else:
            await self._queue.put(job)

    def _backoff(self, tries: int) -> float:
        """Exponential backoff with jitter, so retries from many connections do not line up."""
        return float(self.smtp.backoff_seconds * (2 ** (tries - 1)) * random.uniform(0.5, 1.5))

    def _record(self, job: Job, status: DeliveryStatus, reply: Reply) -> None:
        self.recorder.outcome(DeliveryResult(job.key, status, str(reply)))

    def _finish(self, job: Job, kind: DeliveryStatus) -> None:
        if kind is DeliveryStatus.WITHDRAWN:
            self.stats.unsubscribed += 1
        if self.on_outcome is not None:
            self.on_outcome(job, kind)
        self._pending -= 1
        self._maybe_finish()


def _raise_if_cancelled() -> None:
    """Honour a cancel even when aiosmtplib's wait_for swallowed it (it can, on 3.11, if a reply races it)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def _aiter(jobs: Iterator[Job]) -> AsyncIterator[Job]:
    """Plain iterables are built in the loop's thread, one job at a time."""
    for job in jobs:
        yield job


def _first_cause(group: ExceptionGroup[Exception]) -> Exception:
    """The error worth one line to the user: a server failure first, then any other of ours."""
    flat: list[Exception] = []
    for exc in group.exceptions:
        if isinstance(exc, ExceptionGroup):
            flat.extend(exc.exceptions)
        else:
            flat.append(exc)
    for kind in (ServerFailure, NewsletterError, Exception):
        for exc in flat:
            if isinstance(exc, kind):
                return exc
    return flat[0]
