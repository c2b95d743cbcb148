"""Record each delivery in the ledger as it happens: attempts before the data, outcomes soon after."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from ..errors import NewsletterError
from ..store.deliveries import Attempt, DeliveryLedger, DeliveryResult


class DeliveryRecorder:
    """Batch ledger writes from all connections into few transactions, without losing order.

    Attempts are written at once (the data waits for them). Outcomes ride along with the next
    write, or go alone once `outcome_batch` are waiting or the oldest is `outcome_delay` old:
    a crash in that window only re-sends those messages, with the same Message-ID.
    With no ledger (a `--to` test copy) nothing is recorded.
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
        self._attempts: list[tuple[list[Attempt], asyncio.Future[frozenset[str]]]] = []
        self._outcomes: list[DeliveryResult] = []
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._flush_outcomes = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.ledger is not None:
            self._task = asyncio.create_task(self._run(self.ledger))

    async def attempts(self, attempts: list[Attempt]) -> frozenset[str]:
        """Return once the attempts are on disk, so a crash after DATA can never skip anyone;
        the addresses refused (another sender owns them now), which must not be sent."""
        if self.ledger is None or not attempts:
            return frozenset()
        if self._failed is not None:
            raise self._failed  # nothing more may go out once the ledger cannot record it
        if self._task is not None and self._task.done():
            self._task.result()  # the recorder died: raise its error instead of waiting forever
            raise RuntimeError("the delivery recorder stopped")
        future: asyncio.Future[frozenset[str]] = asyncio.get_running_loop().create_future()
        self._attempts.append((attempts, future))
        self._wake.set()
        return await future

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

    async def _run(self, ledger: DeliveryLedger) -> None:
        """Write whatever is due, one transaction at a time, until closed or a write fails."""
        while await self._work_due():
            attempts, self._attempts = self._attempts, []
            outcomes, self._outcomes = self._outcomes, []
            self._flush_outcomes = False
            self._cancel_timer()
            if not await self._write(ledger, outcomes, attempts):
                return

    async def _work_due(self) -> bool:
        """Wait until attempts wait or outcomes are due; False once closed with nothing left to write."""
        # Check before waiting: close() may have fired while the last batch was written.
        while not (self._attempts or (self._outcomes and (self._flush_outcomes or self._closing))):
            if self._closing:
                return False
            await self._wake.wait()
            self._wake.clear()
        return True

    async def _write(
        self,
        ledger: DeliveryLedger,
        outcomes: list[DeliveryResult],
        attempts: list[tuple[list[Attempt], asyncio.Future[frozenset[str]]]],
    ) -> bool:
        """One durable transaction; its waiting attempts are released, or refused if it failed."""
        try:
            refused = await asyncio.to_thread(
                ledger.record, outcomes, [a for batch, _ in attempts for a in batch]
            )
        except Exception as exc:  # disk full, I/O error: stop, keeping what the server answered
            self._fail(exc, outcomes, [future for _, future in attempts])
            return False
        except BaseException as exc:
            for _, future in attempts:
                if not future.done():
                    future.set_exception(exc)
            raise
        for _, future in attempts:
            if not future.done():
                future.set_result(refused)
        return True

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def failed(self) -> Exception | None:
        """The error of the write that failed, once one has."""
        return self._failed

    def _fail(
        self,
        exc: Exception,
        outcomes: list[DeliveryResult],
        waiting: list[asyncio.Future[frozenset[str]]],
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
        self._cancel_timer()
        outcomes, self._outcomes = self._outcomes, []
        if outcomes and self.ledger is not None:
            with contextlib.suppress(NewsletterError):  # still no room: they are re-sent next run
                await asyncio.to_thread(self.ledger.record_after_fault, outcomes)
        raise self._failed
