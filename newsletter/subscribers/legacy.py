"""Upgrading a list kept by the releases before the store: its CSV, change journal and caches.

Those releases kept each list as `subscribers/NAME.csv` plus a journal of changes not yet folded
into it (`NAME.journal`), an address index (`NAME.index`) and a lost-ledger marker
(`.NAME.sent`). On first use the CSV is imported, the journal's pending records are applied (a
pending unsubscribe stays honoured), and the files whose content is now in the database go. The
marker stays until a send finds the deliveries it speaks of (writeback.check_not_lost).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..models import Subscriber
from ..store.csvstate import has_deliveries
from ..store.subscriberrows import FIELDS, as_values
from ..store.subscribers import SubscriberStore
from .csvfile import CsvLayout, RowError, canonical
from .csvsync import sync
from .rows import cells_of, from_cells, parse_row

log = logging.getLogger(__name__)


def leftovers(path: Path) -> list[Path]:
    """The old release's files beside a list (the marker is not one: a send decides about it)."""
    folder, stem = path.parent, path.stem
    found = [folder / f"{stem}.journal", folder / f"{stem}.index", folder / f"{stem}.index-journal"]
    found.append(folder / f"{path.name}.lock")
    found += folder.glob(f".{stem}.index.*")  # half-built indexes of a crashed run
    return [p for p in found if p.exists()]


def upgrade(store: SubscriberStore, path: Path) -> None:
    """Import the CSV, apply the journal's pending records, then remove what the database now holds."""
    sync(store, path)
    journal = path.with_name(f"{path.stem}.journal")
    applied = sum(apply(store, record) for record in _records(journal))
    if applied:
        log.warning("%s: applied %d pending changes from the old change journal", path, applied)
    for leftover in leftovers(path):
        leftover.unlink(missing_ok=True)
    if marker_issue(path) and has_deliveries(store.db, store.name, "smtp"):
        path.with_name(f".{path.stem}.sent").unlink()  # what it guarded is in the database


def _records(journal: Path) -> Iterator[dict[str, Any]]:
    """The journal's records in order; a torn or foreign line is skipped, as the old reader did."""
    try:
        lines = journal.read_bytes().split(b"\n")
    except FileNotFoundError:
        return
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except ValueError:
            if line.strip():
                log.warning("%s:%d: record ignored (not one the old release wrote)", journal, number)
            continue
        if isinstance(record, dict) and isinstance(record.get("email"), str):
            yield record


def apply(store: SubscriberStore, record: dict[str, Any]) -> bool:
    """One old record: add a row, remove one, or set fields while its expectations hold."""
    email, op = str(record["email"]), record.get("op")
    fields = {str(k): str(v) for k, v in dict(record.get("set") or {}).items()}
    current = store.get(email)
    if op == "remove":
        return store.remove(email)
    try:
        if op == "add" and current is None:
            return store.add(from_cells({"email": email, **fields}), on_conflict="skip") == "added"
        if op == "set" and current is not None and _holds(current, record.get("if") or {}):
            return _set(store, current, fields)
    except RowError as exc:
        log.warning("old change journal: the change to %s is ignored (%s)", email, exc)
    return False


def _holds(current: Subscriber, expect: dict[str, list[str]]) -> bool:
    cells = {**cells_of(current), **current.extra}
    for column, allowed in expect.items():
        name = canonical(column)
        value = cells.get(name, cells.get(column, ""))
        if _normal(name, value) not in {_normal(name, a) for a in allowed}:
            return False
    return True


def _normal(column: str, value: str) -> str:
    value = value.strip()
    return (value.lower() or "active") if column == "status" else value


def _set(store: SubscriberStore, current: Subscriber, fields: dict[str, str]) -> bool:
    cells = {**cells_of(current), **current.extra}
    cells.update({canonical(k) if canonical(k) in cells_of(current) else k: v for k, v in fields.items()})
    changed = parse_row(CsvLayout(header=list(cells)), list(cells.values()))
    before, after = as_values(current), as_values(changed)
    values = {k: after[k] for k in FIELDS if after[k] != before[k]}
    return store.update(current.email, values, extra=changed.extra) if values or changed.extra else False


def marker_issue(path: Path) -> str:
    """The issue an old `.NAME.sent` marker says was sent to a real server ('' when none)."""
    try:
        noted = json.loads(path.with_name(f".{path.stem}.sent").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    if not isinstance(noted, dict):
        return ""
    issues = [
        str(v.get("issue", "?"))
        for k, v in noted.items()
        if str(k).startswith("smtp ") and isinstance(v, dict)
    ]
    return max(issues, default="")
