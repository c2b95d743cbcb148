"""Subscriber lists as the commands see them: the store of a list beside a test's CSV file."""

from __future__ import annotations

import os
from pathlib import Path

from newsletter.configfile import ListPlaces, load_list_places
from newsletter.store.subscribers import SubscriberStore
from newsletter.subscribers import open_list


def places_of(csv_path: Path) -> ListPlaces:
    """The settings a command in the CSV's project folder reads (its newsletter.toml, if any)."""
    project = csv_path.parent.parent
    config = project / "newsletter.toml"
    if config.is_file():
        return load_list_places(config)
    return ListPlaces(
        config_dir=project,
        subscribers_dir=Path(csv_path.parent.name),
        database_url=os.environ.get("NEWSLETTER_DATABASE_URL"),
    )


def store_of(csv_path: Path, *, sync: bool = True) -> SubscriberStore:
    """The store of subscribers/NAME.csv, its file merged in first as every command does."""
    return open_list(places_of(csv_path), csv_path.stem, sync=sync)


def write(path: Path, text: str) -> Path:
    """A list file exactly as given (no newline translation)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path
