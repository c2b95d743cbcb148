"""Writing a list back into its subscribers/NAME.csv at safe points, and what the file says back.

At every send, `subscribers export` and `subscribers sync` the database's view of the list goes
into the file, in one atomic replace that keeps the file's columns and dialect: first any edit
saved meanwhile is merged (csvsync), and an edit saved while the file is being written makes the
write start over from it, never overwrite it. Each row then carries `last_issue`, the last issue
its reader was delivered on a real server: a file that says so of a list the database never sent
means the database was lost, and `check_not_lost` refuses to mail everyone again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from ..errors import StoreError
from ..files import atomic_write
from ..store.csvstate import changed_since, has_deliveries
from ..store.subscriberrows import now_text
from ..store.subscribers import SubscriberStore
from .csvfile import CsvLayout, render
from .csvsync import TRIES, Moved, Synced, merge, scan, state, sync
from .rows import to_fields

log = logging.getLogger(__name__)
Identity = tuple[int, int, int] | None  # inode, size, mtime_ns of a file, None when it is missing
REAL_CHANNEL = "smtp"  # deliveries that count for `last_issue` (the outbox is a local trial)
# Changes stamped this long before a write-back began are still looked for: a change is stamped
# inside its transaction just before it commits, but another host's clock may run a little behind.
CLOCK_MARGIN = timedelta(seconds=2)


def write_back(store: SubscriberStore, path: Path, create: bool = False) -> bool:
    """Write the list into its CSV file (merging an edit saved meanwhile first); True if written.

    Only a list kept as CSV has its file written, unless `create` (`subscribers sync`) starts one.
    """
    for _ in range(TRIES):
        started = now_text()  # what the database changes from now on is looked for next time
        before = _identity(path)  # any edit after this aborts the write below; those before are merged
        sync(store, path)
        synced = state(store)
        if synced is None or (synced.layout is None and not create):
            return False
        if before is not None and synced.layout is not None and not _database_moved(store, synced):
            return False  # the file shows the list as it is: a million rows are not written again
        synced = state(store, digests=True) or synced
        layout = CsvLayout.from_json(synced.layout.to_json()) if synced.layout else CsvLayout()
        try:
            written = _render(store, path, layout, before)
            found = scan(path, synced)
            # What we wrote becomes the base; an edit saved since the rename is merged instead.
            merge(store, path, synced, found, adopt=_identity(path) == written, started=started)
        except Moved:
            continue
        return True
    log.warning("%s kept changing while it was written: the database's changes go into it next time", path)
    return False


def _database_moved(store: SubscriberStore, synced: Synced) -> bool:
    """Whether the database changed something the file shows since the file was last synced."""
    if not synced.synced_at:
        return True
    since = datetime.fromisoformat(synced.synced_at) - CLOCK_MARGIN
    return changed_since(store.db, store.name, since.isoformat(timespec="seconds"), REAL_CHANNEL)


def _identity(path: Path) -> Identity:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


class _Grew(Exception):
    """A row needed a column the header lacked when it was written: write the file again."""


def _render(store: SubscriberStore, path: Path, layout: CsvLayout, before: Identity) -> Identity:
    """Write every row in the file's layout, in one atomic replace; the identity of what was written."""
    for _ in range(TRIES):
        try:
            return _render_once(store, path, layout, before)
        except _Grew:
            continue  # the layout has every column now
    raise Moved


def _render_once(store: SubscriberStore, path: Path, layout: CsvLayout, before: Identity) -> Identity:
    header, written = list(layout.header), list[Identity]()

    def ready(finished: Path) -> None:
        if layout.header != header:
            raise _Grew
        if _identity(path) != before:
            raise Moved  # saved by someone while we wrote: their edit is merged first
        written.append(_identity(finished))  # the rename keeps inode, size and mtime

    atomic_write(
        path, lambda out: render(layout, _rows(store, layout), out), private=before is None, ready=ready
    )
    return written[0]


def _rows(store: SubscriberStore, layout: CsvLayout) -> Iterator[list[str]]:
    for subscriber, last_issue in store.iter_with_last_issue(REAL_CHANNEL):
        row = to_fields(layout, subscriber)
        if last_issue:
            at = layout.ensure("last_issue")
            row += [""] * (len(layout.header) - len(row))
            row[at] = last_issue
        yield row


# --- the lost-database refusal ---------------------------------------------------------------


def check_not_lost(store: SubscriberStore, path: Path, start_over: bool = False) -> None:
    """Refuse to send when the file says readers got issues the database has no record of.

    A CSV whose `last_issue` column is filled (or a `.NAME.sent` marker of an older release)
    for a list without a single recorded delivery means the database was lost or replaced:
    sending now would mail everyone the issue again.
    """
    from .legacy import marker_issue

    synced = state(store)
    said, source = (synced.last_issue if synced else ""), f"the last_issue column of {path.name}"
    if not said:
        said, source = marker_issue(path), f"the old marker .{path.stem}.sent"
    if not said:
        return
    if start_over or has_deliveries(store.db, store.name, REAL_CHANNEL):
        path.with_name(f".{path.stem}.sent").unlink(missing_ok=True)  # an old marker: content kept
        return
    raise StoreError(
        f"readers of list '{store.name}' got issue {said} (says {source}), but the database has no "
        "delivery of that list: it was lost or replaced, and sending now would mail everyone again",
        where=f"{store.db.place.shown} (and {path})",
        fix="restore the database from a backup or point database_url at the right one; to start over "
        "on purpose, clear the last_issue column (or run `newsletter send --new-ledger`)",
    )


def header_for(store: SubscriberStore) -> list[str]:
    """The columns an export of the list starts from: its file's (without the store's own), or ours."""
    synced = state(store)
    layout = synced.layout if synced is not None and synced.layout is not None else CsvLayout()
    return [name for name in layout.header if layout.name_of(name) != "last_issue"]


__all__ = ["check_not_lost", "header_for", "write_back"]
