"""Live reload: a file watcher (watchfiles, inotify on Linux) wakes every open preview page.

No polling loop of our own: the watcher blocks in the kernel until a template, the CSS or the
config file is saved, then the session reloads and each page's event stream gets the news.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from watchfiles import Change, DefaultFilter, awatch

from .session import PreviewSession

log = logging.getLogger(__name__)
STEP_MS = 20  # how long the watcher waits for more changes of one save (editors write in bursts)
DEBOUNCE_MS = 300  # at most this long before a burst of changes is reported


class ChangeFeed:
    """Fan-out of 'files changed' to every open page, each with its own small queue."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[int]] = set()

    @contextlib.asynccontextmanager
    async def subscription(self) -> AsyncIterator[asyncio.Queue[int]]:
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=16)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    def publish(self, version: int) -> None:
        for queue in self._queues:
            if queue.full():  # a page that does not read: it only needs the latest version
                queue.get_nowait()
            queue.put_nowait(version)


class _Either(asyncio.Event):
    """Stops a watcher when the server stops or when the set of watched paths must change.

    An asyncio.Event by type, so awatch's stop_event accepts it whether or not trio (which widens
    that parameter's type) is installed; awatch only calls is_set() and set() on it.
    """

    def __init__(self, *events: asyncio.Event) -> None:
        super().__init__()
        self.events = events

    def is_set(self) -> bool:
        return any(event.is_set() for event in self.events)

    def set(self) -> None:
        """awatch calls this when it is cancelled; the last event is the watcher's own."""
        self.events[-1].set()


async def follow_changes(session: PreviewSession, feed: ChangeFeed, stop: asyncio.Event) -> None:
    """Watch what the session says to watch; after each change reload it and tell the pages."""
    while not stop.is_set():
        await _watch_round(session, feed, stop)


async def _watch_round(session: PreviewSession, feed: ChangeFeed, stop: asyncio.Event) -> None:
    """Watch one set of paths until the server stops or a config change moves what to watch."""
    watched = session.watched()
    folders, files = watched
    restart = asyncio.Event()
    until = _Either(stop, restart)
    configs = {f.resolve() for f in files}
    waiting = [f for f in configs if not f.exists()]

    async def changed(paths: set[tuple[Change, str]]) -> None:
        log.info("changed: %s", ", ".join(sorted(p for _, p in paths)))
        config_changed = any(Path(p).resolve() in configs for _, p in paths)
        await run_in_threadpool(session.reload, config_changed)
        feed.publish(session.version)
        # A folder made on the way to the templates folder we wait for: watch from there on.
        on_the_way = any(_leads_to(Path(p).resolve(), waiting) for _, p in paths)
        if on_the_way or session.watched() != watched:
            restart.set()  # templates_dir moved in the config: watch the new place

    loops = []
    if folders:
        loops.append(_watch(folders, True, DefaultFilter(), until, changed))
    if files:
        # A file's folder, or for a folder not made yet the nearest one that exists: only the
        # names we wait for, and the folders on the way to them, count.
        parents = sorted({_nearest_existing(f.resolve().parent) for f in files})
        loops.append(_watch(parents, False, _only({str(f.resolve()) for f in files}), until, changed))
    if not loops:
        await stop.wait()
        return
    await asyncio.gather(*loops)


def _only(names: set[str]) -> Callable[[Change, str], bool]:
    wanted = [Path(name) for name in names]

    def accept(change: Change, path: str) -> bool:
        return _leads_to(Path(path).resolve(), wanted)

    return accept


def _leads_to(path: Path, targets: list[Path]) -> bool:
    return any(path == target or path in target.parents for target in targets)


def _nearest_existing(folder: Path) -> Path:
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    return folder


async def _watch(
    paths: list[Path],
    recursive: bool,
    accept: Callable[[Change, str], bool],
    until: _Either,
    on_change: Callable[[set[tuple[Change, str]]], Awaitable[None]],
) -> None:
    async for changes in awatch(
        *paths,
        watch_filter=accept,
        recursive=recursive,
        debounce=DEBOUNCE_MS,
        step=STEP_MS,
        stop_event=until,
        rust_timeout=500,
        yield_on_timeout=False,
    ):
        await on_change(changes)
