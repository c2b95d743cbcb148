"""How `serve` runs uvicorn: bounded waits for every request, a cap on connections, quiet logs.

uvicorn closes an idle keep-alive connection, but not one that never sends a request, nor one
that drips its headers or body a byte at a time (each byte used to cancel the keep-alive timer).
`BoundedH11Protocol` gives every request `request_timeout` seconds from the connection (or the
previous response) to arrive in full, head and body, and closes the connection otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from ..settings import ServeSettings

ACCESS_LOGGER = "uvicorn.access"
_QUERY = re.compile(r"\?.*")


@dataclass(frozen=True)
class ServeLimits:
    """What one client may hold ([serve] settings; the head size is h11's own bound)."""

    request_timeout: float = 10.0  # head and body of one request, from connect or the last response
    keep_alive: float = 5.0  # idle time allowed between requests on one connection
    max_connections: int = 200  # beyond this, new requests get 503 at once
    max_head_bytes: int = 16 * 1024  # request line and headers

    @classmethod
    def from_settings(cls, serve: ServeSettings) -> ServeLimits:
        return cls(serve.request_timeout, serve.keep_alive, serve.max_connections)


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request to arrive in full."""

    request_timeout = ServeLimits.request_timeout

    def __init__(self, config: Config, server_state: ServerState, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, server_state, *args, **kwargs)
        self._arrival: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.DONE:
            self._disarm()  # the whole request is here; the app's time is its own

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._arrival = self.loop.call_later(self.request_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._arrival is not None:
            self._arrival.cancel()
            self._arrival = None

    def _too_slow(self) -> None:
        self._arrival = None
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
            self.transport.close()


def bounded_protocol(limits: ServeLimits) -> type[BoundedH11Protocol]:
    """The protocol class with this run's request timeout (uvicorn builds one per connection)."""
    return type("BoundedH11Protocol", (BoundedH11Protocol,), {"request_timeout": limits.request_timeout})


class RedactAccessLog(logging.Filter):
    """Access log lines keep method, path and status; never the client's address or the query
    (tokens, and old links' email addresses)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            _client, method, path, version, status = args
            record.args = ("-", method, _QUERY.sub("?…", str(path)), version, status)
        return True


def server_config(
    app: Any,
    host: str,
    port: int,
    limits: ServeLimits,
    *,
    trusted_proxies: Sequence[str] = (),
    verbose: bool = False,
) -> Config:
    """The uvicorn Config `serve` and the tests run with.

    X-Forwarded-For names the client only when the peer is a configured proxy: uvicorn's default
    trusts any loopback peer, which let every client behind a local proxy (or on this machine)
    claim a new address per request and dodge the per-IP sign-up limit.
    """
    config = Config(
        app,
        host=host,
        port=port,
        http=bounded_protocol(limits),
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=list(trusted_proxies),
        timeout_keep_alive=int(max(1, limits.keep_alive)),
        limit_concurrency=limits.max_connections,
        h11_max_incomplete_event_size=limits.max_head_bytes,
        server_header=False,
        log_level="info" if verbose else "warning",
    )
    access = logging.getLogger(ACCESS_LOGGER)  # after Config, which sets up uvicorn's loggers
    if not any(isinstance(f, RedactAccessLog) for f in access.filters):
        access.addFilter(RedactAccessLog())
    return config
