"""Polite, bounded HTTP GETs: spacing, retries that honour Retry-After, and hard limits on what a
server can make us hold or wait for (bytes before and after decompression, an overall deadline per
request and per fetch, redirects only within the origin)."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Self

import httpx

from .. import __version__
from ..errors import SourceError
from ..models import utc_now
from .limits import BodyTooLarge, CappedBody

if TYPE_CHECKING:
    from ..settings import FetchSettings

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = f"paper-digest-newsletter/{__version__} (+https://pypi.org/project/paper-digest-newsletter/)"
MIB = 1024 * 1024
_SECONDS = re.compile(r"[0-9]{1,10}")
LIMITS_FIX = "raise it in the [fetch] settings if this source is genuinely that big or slow"


@dataclass
class FetchPolicy:
    """How patient to be with a server; sleep, clock and jitter are injectable for fast tests."""

    timeout: float = 30.0  # per network read or connect
    attempts: int = 4
    backoff: float = 2.0
    max_wait: float = 120.0
    spacing: float = 0.0
    max_bytes: int = 2 * MIB  # per response, counted on the wire and again after decompression
    request_deadline: float = 30.0  # one response, redirects included, from connect to last byte
    fetch_deadline: float = 600.0  # one whole fetch: every page, retry and pause
    max_redirects: int = 5
    allowed_hosts: tuple[str, ...] = ()  # other hosts a redirect may lead to (never https -> http)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    jitter: Callable[[], float] = field(default=random.random)

    @classmethod
    def from_settings(cls, limits: FetchSettings, **overrides: Any) -> FetchPolicy:
        """The policy the [fetch] settings describe, with per-source changes (e.g. arXiv's spacing)."""
        values: dict[str, Any] = {
            "max_bytes": limits.max_bytes,
            "request_deadline": limits.request_deadline,
            "fetch_deadline": limits.fetch_deadline,
            "timeout": limits.timeout,
            "allowed_hosts": tuple(host.lower() for host in limits.allowed_hosts),
        }
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class Page:
    """A complete, size-checked answer."""

    url: str
    status_code: int
    headers: httpx.Headers
    content: bytes

    @property
    def text(self) -> str:
        """The body as text: the declared charset when Python knows it, else UTF-8."""
        charset = httpx.Response(200, headers=self.headers).charset_encoding or "utf-8"
        try:
            return self.content.decode(charset, "replace")
        except LookupError:
            return self.content.decode("utf-8", "replace")


class PoliteClient:
    """Spaces requests and retries temporary failures with backoff, within hard limits."""

    def __init__(self, policy: FetchPolicy) -> None:
        self.policy = policy
        self._runner = asyncio.Runner()
        self._client: httpx.AsyncClient | None = None
        self._last: float | None = None
        self._started = time.monotonic()
        self._waited = 0.0  # pauses through policy.sleep count against the fetch deadline too

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._runner.run(self._client.aclose())
        self._runner.close()

    def get(self, url: str, params: Mapping[str, str | int]) -> Page:
        """GET with retries; raise SourceError naming the URL once the server keeps failing."""
        target = str(httpx.URL(url, params=dict(params)))
        for attempt in range(1, self.policy.attempts + 1):
            self._wait_for_turn()
            try:
                page = self._runner.run(self._bounded_get(target))
            except httpx.TransportError as exc:
                if _name_not_found(exc):  # no network, or a misspelt host: waiting will not help
                    raise _unresolved(target) from exc
                if attempt == self.policy.attempts:
                    raise _gave_up(target, f"{type(exc).__name__}: {exc}", attempt) from exc
                self._retry_later(self._backoff(attempt), target, f"{type(exc).__name__}: {exc}", attempt)
                continue
            if page.status_code not in RETRY_STATUSES:
                return _checked(page)
            asked, why = retry_after(page.headers.get("Retry-After", ""))
            if attempt == self.policy.attempts:
                raise _gave_up(target, f"HTTP {page.status_code}{why}", attempt)
            wait = asked if asked is not None else self._backoff(attempt)
            self._retry_later(wait, target, f"HTTP {page.status_code}{why}", attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _remaining(self) -> float:
        return self.policy.fetch_deadline - (time.monotonic() - self._started) - self._waited

    async def _bounded_get(self, url: str) -> Page:
        """One answer, redirects followed within the origin, all inside the request deadline."""
        remaining = self._remaining()
        if remaining <= 0:
            raise _fetch_too_long(url, self.policy.fetch_deadline)
        limit = min(self.policy.request_deadline, remaining)
        try:
            async with asyncio.timeout(limit):
                return await self._follow(url)
        except TimeoutError:
            if limit < self.policy.request_deadline:
                raise _fetch_too_long(url, self.policy.fetch_deadline) from None
            raise SourceError(
                f"the server did not answer in full within {limit:.0f} s",
                where=url,
                fix=f"try again later, or {LIMITS_FIX} (request_deadline)",
            ) from None

    async def _follow(self, url: str) -> Page:
        client = self._http()
        current = httpx.URL(url)
        seen = {str(current)}
        for _ in range(self.policy.max_redirects + 1):
            async with client.stream("GET", current) as response:
                if response.status_code not in REDIRECT_STATUSES or "Location" not in response.headers:
                    body = await _read_capped(response, self.policy.max_bytes, str(current))
                    return Page(str(current), response.status_code, response.headers, body)
                current = self._redirect_target(current, response.headers["Location"], url)
            if str(current) in seen:
                raise SourceError("the server redirects in a loop", where=url, fix="check --base-url")
            seen.add(str(current))
        raise SourceError(
            f"the server redirected more than {self.policy.max_redirects} times",
            where=url,
            fix="point --base-url at the final address",
        )

    def _redirect_target(self, current: httpx.URL, location: str, first: str) -> httpx.URL:
        """Where a redirect leads, if that is the same origin or an allowed host."""
        try:
            target = current.join(location)
        except httpx.InvalidURL as exc:
            raise SourceError(
                f"the server redirected to an invalid address ({exc})", where=first, fix="check --base-url"
            ) from exc
        same_origin = (target.scheme, target.host, target.port) == (
            current.scheme,
            current.host,
            current.port,
        )
        downgrade = current.scheme == "https" and target.scheme != "https"
        allowed = target.host in self.policy.allowed_hosts and not downgrade
        if not (same_origin or allowed):
            raise SourceError(
                f"the server redirected to another site ({target.scheme}://{target.host})",
                where=first,
                fix="use that address as --base-url, or add its host to [fetch] allowed_hosts if trusted",
            )
        return target

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.policy.timeout,
                headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"},
                follow_redirects=False,  # we follow them ourselves, within the origin
                trust_env=False,  # no proxy or .netrc from the environment for a fetch
            )
        return self._client

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

    def _retry_later(self, seconds: float, url: str, why: str, attempt: int) -> None:
        """Say that a retry is coming (a fetch without network is not silent for long), then wait."""
        log.warning(
            "%s: %s; attempt %d of %d in %.0f s", url, why, attempt + 1, self.policy.attempts, seconds
        )
        self._pause(seconds, url)

    def _pause(self, seconds: float, url: str) -> None:
        if seconds > self.policy.max_wait:
            raise SourceError(
                f"the server asked us to wait {seconds:.0f} s",
                where=url,
                fix="try again later or use --base-url to point at a mirror",
            )
        if seconds >= self._remaining():
            raise _fetch_too_long(url, self.policy.fetch_deadline)
        self.policy.sleep(seconds)
        self._waited += seconds


async def _read_capped(response: httpx.Response, limit: int, url: str) -> bytes:
    """The whole body, decompressed, failing as soon as either side passes `limit` bytes."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(url, limit)
    try:
        body = CappedBody(response.headers.get("Content-Encoding", ""), limit)
        async for chunk in response.aiter_raw():
            body.feed(chunk)
        return body.finish()
    except BodyTooLarge:
        raise _too_large(url, limit) from None
    except ValueError as exc:
        raise SourceError(
            f"the server's answer cannot be decoded ({exc})", where=url, fix="check --base-url"
        ) from None


def retry_after(value: str) -> tuple[float | None, str]:
    """Seconds the server asked us to wait (Retry-After as seconds or an HTTP date), and a note
    for the error message when the header was there but made no sense."""
    value = value.strip()
    if not value:
        return None, ""
    if _SECONDS.fullmatch(value):
        return float(value), ""
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None, f", unreadable Retry-After {value[:40]!r} ignored"
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return max(0.0, (when - utc_now()).total_seconds()), ""
    except OverflowError:
        return None, f", unreadable Retry-After {value[:40]!r} ignored"


def _checked(page: Page) -> Page:
    if 200 <= page.status_code < 300:
        return page
    raise SourceError(
        f"the server answered HTTP {page.status_code}",
        where=page.url,
        fix="check --date/--week/--query, or --base-url if you use a mirror",
    )


def _too_large(url: str, limit: int) -> SourceError:
    return SourceError(
        f"the server's answer is larger than {limit / MIB:g} MiB",
        where=url,
        fix=f"check --base-url, or {LIMITS_FIX} (max_bytes)",
    )


def _fetch_too_long(url: str, deadline: float) -> SourceError:
    return SourceError(
        f"fetching took longer than {deadline:.0f} s in all",
        where=url,
        fix=f"try again later, or {LIMITS_FIX} (fetch_deadline)",
    )


def _name_not_found(exc: BaseException) -> bool:
    """A failure to look the host up in DNS, somewhere in the chain httpx raises it with."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _unresolved(url: str) -> SourceError:
    host = httpx.URL(url).host
    return SourceError(
        f"cannot look up {host} (no network, or a misspelt host name)",
        where=url,
        fix="check the network connection and the URL, then run again",
    )


def _gave_up(url: str, why: str, attempts: int) -> SourceError:
    return SourceError(
        f"fetching failed after {attempts} attempts ({why})",
        where=url,
        fix="try again later, or use --base-url to point at a mirror",
    )
