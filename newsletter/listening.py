"""Whether `serve` and `preview --serve` can listen where asked, checked before they say they do."""

from __future__ import annotations

import errno
import socket

from .errors import NewsletterError


def check_can_listen(host: str, port: int) -> None:
    """Bind HOST:PORT as uvicorn will (and let go): a port in use is one line, not uvicorn's log.

    Every address the host name resolves to is tried, as asyncio's create_server binds them all.
    """
    if port == 0:
        return  # the system picks a free port
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise NewsletterError(
            f"cannot listen on {host} ({exc.strerror})", fix="pass --host with an address of this machine"
        ) from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio does
            try:
                probe.bind(address)
            except OSError as exc:
                raise _cannot_listen(host, port, exc) from None


def _cannot_listen(host: str, port: int, exc: OSError) -> NewsletterError:
    if exc.errno == errno.EADDRINUSE:
        return NewsletterError(
            f"port {port} on {host} is in use",
            fix="pass --port with a free one (or stop the program that holds it)",
        )
    if exc.errno == errno.EACCES:
        return NewsletterError(
            f"port {port} on {host} needs privileges this user does not have",
            fix="pass --port 1024 or above (and put a reverse proxy in front)",
        )
    return NewsletterError(
        f"cannot listen on port {port} of {host} ({exc.strerror})",
        fix="pass --host with an address of this machine, or another --port",
    )
