"""A real uvicorn server for an ASGI app on 127.0.0.1 port 0, in a thread, for one test."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn


@contextlib.contextmanager
def serving(
    app: Any,
    on_exit: Callable[[], None] | None = None,
    config: Callable[[Any], uvicorn.Config] | None = None,
) -> Iterator[str]:
    """Serve `app` until the block ends; yields its base URL. `on_exit` ends long-lived streams;
    `config` makes the uvicorn Config (`serve`'s own, say) instead of a plain one."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    made = uvicorn.Config(app, log_level="warning") if config is None else config(app)
    made.timeout_graceful_shutdown = 1
    server = uvicorn.Server(made)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        if on_exit is not None:
            on_exit()
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
