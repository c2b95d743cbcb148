"""Polite HTTP GETs: timeouts, spacing between requests, and retries that honour Retry-After."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Self

import httpx

from .. import __version__
from ..errors import SourceError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = f"paper-digest-newsletter/{__version__} (+https://pypi.org/project/paper-digest-newsletter/)"


@dataclass
class FetchPolicy:
    """How patient to be with a server; sleep, clock and jitter are injectable for fast tests."""

    timeout: float = 30.0
    attempts: int = 4
    backoff: float = 2.0
    max_wait: float = 120.0
    spacing: float = 0.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    jitter: Callable[[], float] = field(default=random.random)


class PoliteClient:
    """An httpx client that spaces requests and retries temporary failures with backoff."""

    def __init__(self, policy: FetchPolicy, transport: httpx.BaseTransport | None = None) -> None:
        self.policy = policy
        self._client = httpx.Client(
            timeout=policy.timeout,
            transport=transport,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=True,
        )
        self._last: float | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def get(self, url: str, params: Mapping[str, str | int]) -> httpx.Response:
        """GET with retries; raise SourceError naming the URL once the server keeps failing."""
        for attempt in range(1, self.policy.attempts + 1):
            self._wait_for_turn()
            try:
                response = self._client.get(url, params=dict(params))
            except httpx.TransportError as exc:
                if attempt == self.policy.attempts:
                    raise _gave_up(url, f"{type(exc).__name__}: {exc}", attempt) from exc
                self._pause(self._backoff(attempt), url)
                continue
            if response.status_code not in RETRY_STATUSES:
                return _checked(response)
            if attempt == self.policy.attempts:
                raise _gave_up(url, f"HTTP {response.status_code}", attempt)
            self._pause(retry_after(response) or self._backoff(attempt), url)
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait_for_turn(self) -> None:
        """Keep at least `spacing` seconds between request starts (arXiv asks for 3)."""
        now = self.policy.clock()
        if self._last is not None and self.policy.spacing > 0:
            remaining = self._last + self.policy.spacing - now
            if remaining > 0:
                self.policy.sleep(remaining)
                now = self.policy.clock()
        self._last = now

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter so many clients do not retry in step."""
        return float(self.policy.backoff * (2 ** (attempt - 1)) * (0.5 + self.policy.jitter()))

    def _pause(self, seconds: float, url: str) -> None:
        if seconds > self.policy.max_wait:
            raise SourceError(
                f"the server asked us to wait {seconds:.0f} s",
                where=url,
                fix="try again later or use --base-url to point at a mirror",
            )
        self.policy.sleep(seconds)


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait, from Retry-After as seconds or an HTTP date."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _checked(response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    raise SourceError(
        f"the server answered HTTP {response.status_code}",
        where=str(response.url),
        fix="check --date/--week/--query, or --base-url if you use a mirror",
    )


def _gave_up(url: str, why: str, attempts: int) -> SourceError:
    return SourceError(
        f"fetching failed after {attempts} attempts ({why})",
        where=url,
        fix="try again later, or use --base-url to point at a mirror",
    )
