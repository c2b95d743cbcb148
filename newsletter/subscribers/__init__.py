"""Subscriber lists: kept in the database, and in subscribers/NAME.csv where people keep them there."""

from __future__ import annotations

from pathlib import Path

from ..configfile import ListPlaces
from ..safety.listnames import check_list_name
from ..store import open_database, scratch_place
from ..store.subscribers import NotOnListError, SubscriberStore
from .csvfile import RowError
from .rows import STATUSES, RowProblem, check_email


def open_list(
    places: ListPlaces, name: str | None = None, *, sync: bool = True, look_only: bool = False
) -> SubscriberStore:
    """The store of a list (default: the configured one), its CSV merged in first if it changed.

    Every command opens lists here. A list an older release kept (journal, index) is upgraded on
    the way. `serve` passes sync=False: a hand edit is picked up by the next command, not by a
    request. A preview or dry run (`look_only`) where no database file exists yet reads the list
    into a throw-away one instead of leaving a database behind.
    """
    list_name = check_list_name(name or places.default_list)
    path = places.list_path(list_name)
    place = places.database()
    if look_only and place.engine_name == "sqlite" and not Path(place.url.database or "").exists():
        place = scratch_place(place)
    store = SubscriberStore(open_database(place), list_name, path)
    if sync:
        from . import csvsync, legacy

        if legacy.leftovers(path):
            legacy.upgrade(store, path)
        else:
            csvsync.sync(store, path)
    return store


def known_list(places: ListPlaces, name: str) -> SubscriberStore | None:
    """A list `serve` answers for: one in the database, or one kept as a file not read in yet."""
    store = open_list(places, name, sync=False)
    if store.exists():
        return store
    if store.csv_path is not None and store.csv_path.is_file():
        return open_list(places, name)
    return None


__all__ = ["STATUSES", "NotOnListError", "RowError", "RowProblem", "SubscriberStore", "check_email"]
__all__ += ["known_list", "open_list"]
