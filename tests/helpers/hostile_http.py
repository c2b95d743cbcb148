"""A hostile HTTP server on 127.0.0.1: each path prefix is one attack on a fetching client.

`--base-url {url}/{attack}` points a fetch at one of them; the rest of the path is ignored.
Used by the fetch tests and by benchmarks/bench_hostile_fetch.py (which may run it standalone:
`python tests/helpers/hostile_http.py` prints its URL and serves until killed).
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
import zlib
from collections.abc import Callable, Iterator

MIB = 1024 * 1024
ATTACKS = (
    "huge",  # a body of `size` bytes, chunked, no Content-Length
    "huge-declared",  # the same with an honest Content-Length
    "gzip-bomb",  # `size` bytes of JSON-ish zeros, gzipped to about a thousandth of that
    "drip",  # headers at once, then one body byte every `interval` seconds, for ever
    "drip-headers",  # one header byte every `interval` seconds, for ever
    "redirect-loop",  # /redirect-loop/a -> /redirect-loop/b -> /redirect-loop/a ...
    "redirect-away",  # to http://localhost:PORT/..., the same server under another origin
    "nesting-bomb",  # [[[[...]]]] 100,000 deep
    "width-bomb",  # [{},{},{},...] of `size` bytes: tiny text, many objects
    "xml-width-bomb",  # an Atom feed of `size` bytes of empty elements
    "retry-garbage",  # 503 with a Retry-After nobody can read
)


class HostileHttpServer:
    """Threaded, raw-socket server: answers are written byte by byte as the attack needs."""

    def __init__(self, *, size: int = 64 * MIB, interval: float = 1.0) -> None:
        self.size = size
        self.interval = interval
        self.stopping = threading.Event()
        self.hits: list[str] = []
        self._gzip: bytes | None = None
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                owner.serve_one(self.request)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.tcp.daemon_threads = True
        self.port = self.tcp.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.tcp.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True

    def start(self) -> HostileHttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.tcp.shutdown()
        self.tcp.server_close()

    def serve_one(self, sock: socket.socket) -> None:
        path = _read_request_path(sock)
        if path is None:
            return
        self.hits.append(path)
        attack = path.lstrip("/").split("/", 1)[0].split("?", 1)[0]
        answer = getattr(self, "_" + attack.replace("-", "_"), None)
        try:
            if answer is None:
                sock.sendall(_head(404, {"Content-Length": "0"}))
            else:
                answer(sock, path)
        except OSError:
            pass  # the client hung up: that is what a good client does

    # --- attacks ---------------------------------------------------------------------------

    def _huge(self, sock: socket.socket, path: str) -> None:
        sock.sendall(_head(200, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}))
        for block in _blocks(b"[" + b" " * (MIB - 1), self.size):
            sock.sendall(b"%x\r\n%s\r\n" % (len(block), block))
        sock.sendall(b"0\r\n\r\n")

    def _huge_declared(self, sock: socket.socket, path: str) -> None:
        sock.sendall(_head(200, {"Content-Type": "application/json", "Content-Length": str(self.size)}))
        for block in _blocks(b" " * MIB, self.size):
            sock.sendall(block)

    def _gzip_bomb(self, sock: socket.socket, path: str) -> None:
        body = self.gzip_bomb()
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        sock.sendall(_head(200, {**headers, "Content-Length": str(len(body))}) + body)

    def _drip(self, sock: socket.socket, path: str) -> None:
        sock.sendall(_head(200, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}))
        sock.sendall(b"1\r\n[\r\n")
        self._trickle(sock, lambda: b"1\r\n \r\n")

    def _drip_headers(self, sock: socket.socket, path: str) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\n")
        self._trickle(sock, lambda: b"X")  # one endless header name

    def _redirect_loop(self, sock: socket.socket, path: str) -> None:
        target = "/redirect-loop/b" if "/b" not in path else "/redirect-loop/a"
        sock.sendall(_head(302, {"Location": target, "Content-Length": "0"}))

    def _redirect_away(self, sock: socket.socket, path: str) -> None:
        location = f"http://localhost:{self.port}/huge/api/daily_papers"
        sock.sendall(_head(302, {"Location": location, "Content-Length": "0"}))

    def _nesting_bomb(self, sock: socket.socket, path: str) -> None:
        body = b"[" * 100_000 + b"]" * 100_000
        sock.sendall(
            _head(200, {"Content-Type": "application/json", "Content-Length": str(len(body))}) + body
        )

    def _width_bomb(self, sock: socket.socket, path: str) -> None:
        count = max(1, (self.size - 2) // 3)
        sock.sendall(_head(200, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}))
        for block in _blocks(b"{}," * (MIB // 3), count * 3 - 1, first=b"[", last=b"{}]"):
            sock.sendall(b"%x\r\n%s\r\n" % (len(block), block))
        sock.sendall(b"0\r\n\r\n")

    def _xml_width_bomb(self, sock: socket.socket, path: str) -> None:
        head = b'<feed xmlns="http://www.w3.org/2005/Atom">'
        sock.sendall(_head(200, {"Content-Type": "application/atom+xml", "Transfer-Encoding": "chunked"}))
        for block in _blocks(
            b"<a/>" * (MIB // 4), max(0, self.size - len(head) - 7), first=head, last=b"</feed>"
        ):
            sock.sendall(b"%x\r\n%s\r\n" % (len(block), block))
        sock.sendall(b"0\r\n\r\n")

    def _retry_garbage(self, sock: socket.socket, path: str) -> None:
        sock.sendall(_head(503, {"Retry-After": "soon, \xb2 maybe", "Content-Length": "0"}))

    # --- helpers ---------------------------------------------------------------------------

    def gzip_bomb(self) -> bytes:
        """`size` bytes of a JSON array of zeros, gzipped once and reused."""
        if self._gzip is None:
            packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            parts = [packer.compress(b"[" + b"0" * (MIB - 1))]
            zeros = b"0" * MIB
            parts += [packer.compress(zeros) for _ in range(self.size // MIB - 1)]
            self._gzip = b"".join(parts) + packer.flush()
        return self._gzip

    def _trickle(self, sock: socket.socket, piece: Callable[[], bytes]) -> None:
        while not self.stopping.wait(self.interval):
            sock.sendall(piece())


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {'OK' if status < 300 else 'Nope'}",
        *(f"{k}: {v}" for k, v in {**headers, "Connection": "close"}.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _blocks(block: bytes, total: int, *, first: bytes = b"", last: bytes = b"") -> Iterator[bytes]:
    """`total` bytes made of `block` repeated (cut to fit), optionally framed by first and last."""
    sent = 0
    if first:
        yield first
    while sent < total:
        piece = block[: total - sent]
        sent += len(piece)
        yield piece
    if last:
        yield last


def _read_request_path(sock: socket.socket) -> str | None:
    data = b""
    sock.settimeout(10)
    while b"\r\n\r\n" not in data and len(data) < 65536:
        try:
            got = sock.recv(4096)
        except OSError:
            return None
        if not got:
            return None
        data += got
    parts = data.split(b" ", 2)
    return parts[1].decode("latin-1") if len(parts) > 2 else None


if __name__ == "__main__":
    import sys

    size = int(sys.argv[1]) * MIB if len(sys.argv) > 1 else 1024 * MIB
    server = HostileHttpServer(size=size).start()
    server.gzip_bomb()
    print(server.url, flush=True)
    while True:
        time.sleep(3600)
