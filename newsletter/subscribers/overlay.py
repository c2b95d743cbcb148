"""A list as readers see it: the CSV's rows with the pending journal records applied on the fly."""

from __future__ import annotations

import contextlib
from pathlib import Path

from .csvfile import CsvLayout, Rows, read_rows
from .journal import Snapshot, apply_changes, ensure_column


def rows_with(path: Path, snapshot: Snapshot) -> tuple[CsvLayout, Rows]:
    """The CSV's rows with a journal snapshot applied; rows it adds come last, numbered -line."""
    layout, rows = read_rows(path)
    if not snapshot.changes:
        return layout, rows
    ensure_columns(layout, snapshot)  # before the first row, so every row has the same columns
    return layout, overlaid(layout, rows, snapshot)


def overlaid(layout: CsvLayout, rows: Rows, snapshot: Snapshot) -> Rows:
    """The CSV's rows with the journal applied, then the rows it adds (numbered -journal line)."""
    pending = snapshot.by_key()
    seen: set[str] = set()
    column = layout.index("email")
    with contextlib.closing(rows):
        for line, fields in rows:
            key = fields[column].strip().lower() if column is not None and column < len(fields) else ""
            changes = pending.get(key)
            if changes is None:
                yield line, fields
                continue
            seen.add(key)
            changed = apply_changes(layout, fields, changes)
            if changed is not None:
                yield line, changed
    for key, changes in pending.items():
        if key not in seen:
            added = apply_changes(layout, None, changes)
            if added is not None:
                yield -changes[0].line, added


def ensure_columns(layout: CsvLayout, snapshot: Snapshot) -> None:
    """Give the header every column the journal writes."""
    for column in snapshot.columns():
        ensure_column(layout, column)


__all__ = ["ensure_columns", "overlaid", "rows_with"]
