"""Builder processes: digests are selected, rendered and composed in forked children.

The sender keeps one core for its event loop and no thread of its own: work goes out and
results come back over plain pipes that the loop itself reads, so nothing in the sender waits
for the GIL to hand results over.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import itertools
import multiprocessing
import os
import pickle
import signal
import sys
import traceback
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from ..errors import NewsletterError
from ..settings import Settings

# Where forking starts to pay: benchmarks/bench_send.py --subscribers N --compose-processes 0, then 2.
PARALLEL_FROM_BYTES = 256 * 1024  # about 3,000 subscribers: below that, forking costs more than it saves
_HEADER = 8  # bytes of length before each pickled chunk

_work: Callable[[Any], Any] | None = None  # set in the parent just before the fork, inherited


def _die_with_parent() -> None:
    """After a kill -9 of the sender, its builders must not linger (Linux; elsewhere best effort)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _serve(inbox: int, outbox: int, not_ours: list[int]) -> None:
    """A builder's life: answer each chunk of work with its results, in order, until the pipe closes."""
    for fd in not_ours:  # the sender's ends of every pipe, so EOF reaches whoever waits for it
        os.close(fd)
    _die_with_parent()
    # Ctrl-C and SIGTERM (systemd signals the whole group) are the sender's to handle: it closes
    # our pipes and, at the end, kills us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The sender stopped (an error, Ctrl-C, SIGTERM) mid-chunk or while we flushed a reply:
    # nothing left to do, quietly. This includes the flush when the reply file is closed.
    with contextlib.suppress(BrokenPipeError, EOFError, pickle.UnpicklingError):
        _answer(inbox, outbox)


def _answer(inbox: int, outbox: int) -> None:
    assert _work is not None
    with open(inbox, "rb") as requests, open(outbox, "wb") as replies:
        while header := requests.read(_HEADER):
            size = int.from_bytes(header, "big")
            data = requests.read(size)
            if len(header) < _HEADER or len(data) < size:
                return  # a chunk cut short: the sender is gone
            chunk = pickle.loads(data)
            try:
                reply: tuple[bool, Any] = (True, [_work(item) for item in chunk])
            except Exception as exc:
                reply = (False, exc)
            try:
                payload = pickle.dumps(reply, pickle.HIGHEST_PROTOCOL)
            except Exception:
                text = "".join(traceback.format_exception_only(reply[1])).strip()
                payload = pickle.dumps((False, RuntimeError(text)), pickle.HIGHEST_PROTOCOL)
            replies.write(len(payload).to_bytes(_HEADER, "big"))
            replies.write(payload)
            replies.flush()


def _pipe(fd: int, mode: str) -> Any:
    """A file object over a pipe end, for asyncio's pipe transports (which then own and close it)."""
    return os.fdopen(fd, mode, buffering=0)


@dataclass
class _Builder:
    """One child and the sender's ends of its two pipes."""

    process: multiprocessing.process.BaseProcess
    to_child: int
    from_child: int
    reader: asyncio.StreamReader | None = None
    writer: asyncio.WriteTransport | None = None
    reader_transport: asyncio.ReadTransport | None = None
    fds_open: bool = True

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        self.reader = asyncio.StreamReader()
        reader = self.reader
        self.reader_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), _pipe(self.from_child, "rb")
        )
        self.writer, _ = await loop.connect_write_pipe(asyncio.Protocol, _pipe(self.to_child, "wb"))
        self.fds_open = False  # the transports own them now

    def send(self, chunk: list[Any]) -> None:
        """Buffered by the transport, never blocking: how far we run ahead bounds the bytes."""
        assert self.writer is not None
        payload = pickle.dumps(chunk, pickle.HIGHEST_PROTOCOL)
        self.writer.write(len(payload).to_bytes(_HEADER, "big") + payload)

    async def receive(self) -> list[Any]:
        assert self.reader is not None
        try:
            header = await self.reader.readexactly(_HEADER)
            payload = await self.reader.readexactly(int.from_bytes(header, "big"))
        except asyncio.IncompleteReadError:
            raise NewsletterError(
                "a builder process stopped before finishing its work",
                where=f"process {self.process.pid}",
                fix="run the same command again (it resumes);"
                " if it happens again, set smtp.compose_processes = 0",
            ) from None
        ok, value = pickle.loads(payload)
        if not ok:
            raise value
        return cast(list[Any], value)  # what _serve pickled: the chunk's results, in order

    def disconnect(self) -> None:
        for transport in (self.writer, self.reader_transport):
            if transport is not None:
                transport.close()
        self.writer = self.reader_transport = None
        if self.fds_open:
            os.close(self.to_child)
            os.close(self.from_child)
            self.fds_open = False


class ParallelBuilder:
    """Run `work` on every item in forked processes; results in input order, memory flat.

    Chunks go round-robin to the builders and come back in the same rotation, so file order is
    kept; only a few chunks per builder are ever in flight.
    """

    def __init__(self, work: Callable[[Any], Any], processes: int, chunk: int = 32) -> None:
        global _work
        _work = work  # inherited by fork: no pickling of templates or rankers
        self.chunk = chunk
        self.ahead = processes * 3
        self._builders: list[_Builder] = []
        context = multiprocessing.get_context("fork")
        gc.freeze()  # the collector in a builder would write to every inherited object: pages stay shared
        try:
            for _ in range(processes):
                to_child_read, to_child = os.pipe()
                from_child, from_child_write = os.pipe()
                ours = [fd for b in self._builders for fd in (b.to_child, b.from_child)] + [
                    to_child,
                    from_child,
                ]
                process = context.Process(
                    target=_serve,
                    args=(to_child_read, from_child_write, ours),
                    daemon=True,
                    name="newsletter-builder",
                )
                process.start()
                os.close(to_child_read)
                os.close(from_child_write)
                self._builders.append(_Builder(process, to_child, from_child))
        finally:
            gc.unfreeze()  # only the builders needed it; the sender collects as usual

    async def build(self, items: Iterator[Any]) -> AsyncIterator[Any]:
        """Yield `work(item)` for every item, in order, while the event loop keeps running."""
        try:
            for builder in self._builders:
                await builder.connect()
            pending: deque[_Builder] = deque()
            rotation = itertools.cycle(self._builders)
            while chunk := list(itertools.islice(items, self.chunk)):
                builder = next(rotation)
                builder.send(chunk)
                pending.append(builder)
                if len(pending) >= self.ahead:
                    for result in await pending.popleft().receive():
                        yield result
            while pending:
                for result in await pending.popleft().receive():
                    yield result
        finally:
            for builder in self._builders:
                builder.disconnect()

    def close(self) -> None:
        """Stop the builders, whatever state they are in (they ignore SIGTERM: SIGKILL is quiet too)."""
        for builder in self._builders:
            builder.disconnect()
            builder.process.kill()
        for builder in self._builders:
            builder.process.join()

    @staticmethod
    def processes_for(settings: Settings, list_path: Path) -> int:
        """0 (build in-process) for small lists or one core; else the configured or spare cores."""
        if "fork" not in multiprocessing.get_all_start_methods():
            return 0
        if settings.smtp.compose_processes is not None:
            return settings.smtp.compose_processes
        if not sys.platform.startswith("linux"):
            return 0  # builders inherit the run lock; only Linux can make them die with the sender
        size = list_path.stat().st_size if list_path.is_file() else 0
        cores = os.cpu_count() or 1
        return min(cores - 1, 4) if size >= PARALLEL_FROM_BYTES else 0
