"""The subscriber list store: CSV files read as people write them, changed only under a lock."""

from __future__ import annotations

from ..configfile import ListPlaces
from .rows import STATUSES, RowProblem, check_email
from .store import NotOnListError, SubscriberStore


def open_list(places: ListPlaces, name: str | None = None) -> SubscriberStore:
    """The store for a named list (default: the configured one) under the subscribers folder."""
    return SubscriberStore(places.list_path(name))


__all__ = ["STATUSES", "NotOnListError", "RowProblem", "SubscriberStore", "check_email", "open_list"]
