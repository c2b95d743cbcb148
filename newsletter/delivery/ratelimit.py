"""Per-server sending limits: a token bucket per second and a sliding window per hour."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    """Wait until one more message is allowed under both limits (0 disables a limit)."""

    def __init__(
        self,
        per_second: float = 0.0,
        per_hour: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_second = per_second
        self.per_hour = per_hour
        self._clock = clock
        self._capacity = max(1.0, per_second)
        self._tokens = self._capacity
        self._last = clock()
        self._sent: deque[float] = deque()
        self._lock = asyncio.Lock()

    def delay(self) -> float:
        """Seconds to wait before the next message; 0 means send now (and take the slot)."""
        now = self._clock()
        wait = max(self._bucket_wait(now), self._window_wait(now))
        if wait == 0.0:
            if self.per_second:
                self._tokens -= 1.0
            if self.per_hour:
                self._sent.append(now)
        return wait

    def _bucket_wait(self, now: float) -> float:
        if not self.per_second:
            return 0.0
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self.per_second)
        self._last = now
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.per_second

    def _window_wait(self, now: float) -> float:
        if not self.per_hour:
            return 0.0
        while self._sent and now - self._sent[0] >= 3600.0:
            self._sent.popleft()
        return 0.0 if len(self._sent) < self.per_hour else 3600.0 - (now - self._sent[0])

    async def acquire(self) -> None:
        """Block this sender until the limits allow one more message."""
        async with self._lock:
            while (wait := self.delay()) > 0.0:
                await asyncio.sleep(wait)
