"""Deliver many messages over a few reused SMTP connections, recording every step in the ledger."""

from __future__ import annotations

import asyncio
import contextlib
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


class LedgerWriter:
    """Batch ledger writes from all connections into few transactions, without losing order.

    Attempts are written at once (the data waits for them). Outcomes ride along with the next
    write, or go alone once `outcome_batch` are waiting or the oldest is `outcome_delay` old:
    a crash in that window only re-sends those messages, with the same Message-ID.
    """

    def __init__(
        self,
        ledger: DeliveryLedger | None,
        outcome_batch: int = 16,
        outcome_delay: float = 0.05,
        on_fault: Callable[[], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.outcome_batch = outcome_batch
        self.outcome_delay = outcome_delay
        self.on_fault = on_fault  # told once when a write fails, so no more data goes out
        self._failed: Exception | None = None
        self._attempts: list[tuple[list[Attempt], asyncio.Future[None]]] = []
        self._outcomes: list[DeliveryResult] = []
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._flush_outcomes = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.ledger is not None:
            self._task = asyncio.create_task(self._run())

    async def attempts(self, attempts: list[Attempt]) -> None:
        """Return once the attempts are on disk, so a crash after DATA can never skip anyone."""
        if self.ledger is None or not attempts:
            return
        if self._failed is not None:
            raise self._failed  # nothing more may go out once the ledger cannot record it
        if self._task is not None and self._task.done():
            self._task.result()  # the writer died: raise its error instead of waiting forever
            raise RuntimeError("the ledger writer stopped")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._attempts.append((attempts, future))
        self._wake.set()
        await future

    def outcome(self, outcome: DeliveryResult) -> None:
        if self.ledger is None:
            return
        self._outcomes.append(outcome)
        if len(self._outcomes) >= self.outcome_batch:
            self._outcomes_due()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.outcome_delay, self._outcomes_due)

    def _outcomes_due(self) -> None:
        self._flush_outcomes = True
        self._wake.set()

    async def _run(self) -> None:
        assert self.ledger is not None
        while True:
            if not (self._attempts or (self._outcomes and (self._flush_outcomes or self._closing))):
                # Check before waiting: close() may have fired while the last batch was written.
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            attempts, self._attempts = self._attempts, []
            outcomes, self._outcomes = self._outcomes, []
            self._flush_outcomes = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            try:
                await asyncio.to_thread(
                    self.ledger.record, outcomes, [a for batch, _ in attempts for a in batch]
                )
            except Exception as exc:  # disk full, I/O error: stop, keeping what the server answered
                self._fail(exc, outcomes, [future for _, future in attempts])
                return
            except BaseException as exc:
                for _, future in attempts:
                    if not future.done():
                        future.set_exception(exc)
                raise
            for _, future in attempts:
                if not future.done():
                    future.set_result(None)

    @property
    def failed(self) -> Exception | None:
        """The error of the write that failed, once one has."""
        return self._failed

    def _fail(
        self, exc: Exception, outcomes: list[DeliveryResult], waiting: list[asyncio.Future[None]]
    ) -> None:
        """A write failed: its attempts are refused (those messages stay unsent), its outcomes are
        kept for one more try at close, and the dispatcher is told to send nothing more."""
        self._failed = exc
        self._outcomes = outcomes + self._outcomes
        for future in waiting + [future for _, future in self._attempts]:
            if not future.done():
                future.set_exception(exc)
        self._attempts = []
        if self.on_fault is not None:
            self.on_fault()

    async def close(self) -> None:
        """Flush whatever is queued; called on success and on abort alike. After a failed write,
        the answers the server gave since are written once more (most often that succeeds: see
        `DeliveryLedger.record_after_fault`), then the write's error is raised."""
        if self._task is None:
            return
        self._closing = True
        self._wake.set()
        await self._task
        if self._failed is None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        outcomes, self._outcomes = self._outcomes, []
        if outcomes and self.ledger is not None:
            with contextlib.suppress(NewsletterError):  # still no room: they are re-sent next run
                await asyncio.to_thread(self.ledger.record_after_fault, outcomes)
        raise self._failed


class Dispatcher:
    """A pool of SMTP connections fed from one queue, with retries, a rate limit and a ledger."""

    def __init__(
        self,
        target: SmtpTarget,
        envelope_from: str,
        smtp: SmtpSettings,
        ledger: DeliveryLedger | None = None,
        still_wanted: Callable[[str], bool] | None = None,
        on_outcome: Callable[[Job, DeliveryStatus], None] | None = None,
    ) -> None:
        self.target = target
        self.envelope_from = envelope_from
        self.smtp = smtp
        self.writer = LedgerWriter(ledger, outcome_batch=smtp.connections * 4, on_fault=self._stop)
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
        self._fault: NewsletterError | None = None  # the embedded server's, raised at the end

    async def run(self, jobs: Iterable[Job] | AsyncIterator[Job]) -> DispatchStats:
        """Send every job; raise ServerFailure (after flushing the ledger) if the server fails."""
        source = jobs if isinstance(jobs, AsyncIterator) else _aiter(iter(jobs))
        head = await anext(source, None)
        if head is None:
            return self.stats  # nothing owed: no need to reach the server at all
        first = await open_connection(self.target)  # fail fast, before anyone is recorded
        self.writer.start()
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
            await self.writer.close()
        if self._fault is not None:
            raise self._fault
        return self.stats

    async def _produce(self, head: Job, rest: AsyncIterator[Job]) -> None:
        batch = [head]
        async for job in rest:
            batch.append(job)
            if len(batch) >= self._batch:
                if not await self._enqueue(batch):
                    return
                batch = []
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
        False when the ledger cannot record it (the run stops, the writer raises the error)."""
        self._pending += len(batch)
        # Unsubscribes are checked once, when a connection takes the job: the last moment that counts.
        if not await self._recorded(
            [Attempt(j.key, j.message.message_id, j.papers, j.reader) for j in batch]
        ):
            return False
        for job in batch:
            await self._queue.put(job)
        return True

    async def _recorded(self, attempts: list[Attempt]) -> bool:
        try:
            await self.writer.attempts(attempts)
        except Exception:
            if self.writer.failed is None:
                raise
            self._stop()
            return False
        return True

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
                    self.writer.outcome(
                        DeliveryResult(job.key, DeliveryStatus.WITHDRAWN, "unsubscribed during the run")
                    )
                    continue
                if client is None or used >= self.smtp.messages_per_connection:
                    if client is not None:
                        await close_connection(client)
                    client, used = await self._reconnect(), 0
                    _raise_if_cancelled()
                await self.limiter.acquire()
                reply = await send_one(
                    client, job.message.sender or self.envelope_from, job.message, self.target.where
                )
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
        if await self._recorded([attempt]) and not self._stopping:  # else still 'deferred': next run
            await self._queue.put(job)

    def _backoff(self, tries: int) -> float:
        """Exponential backoff with jitter, so retries from many connections do not line up."""
        return float(self.smtp.backoff_seconds * (2 ** (tries - 1)) * random.uniform(0.5, 1.5))

    def _record(self, job: Job, status: DeliveryStatus, reply: Reply) -> None:
        self.writer.outcome(DeliveryResult(job.key, status, str(reply)))

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
