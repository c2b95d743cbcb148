"""SIGTERM (what systemd and `timeout` send) stops a run exactly the way Ctrl-C does."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_received: list[str] = []


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Hand over to whatever handles Ctrl-C now (asyncio's, inside a run), so both end alike."""
    _received.append("SIGTERM")
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
        return
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises KeyboardInterrupt (or cancels the running event loop's task)."""
    _received.clear()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stopped_by() -> str:
    """How the user asked us to stop, in their words."""
    return "SIGTERM" if _received else "Ctrl-C"
