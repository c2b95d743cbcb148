"""Merging another CSV into a list: every good row lands in one atomic write, or none do."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from ..errors import SubscriberError
from ..models import Subscriber, to_the_second, utc_now
from .rows import RowProblem
from .store import SubscriberStore
from .table import merge_one


@dataclass
class ImportReport:
    """What an import did, row by row, so the user can check it against the source file."""

    added: int = 0
    updated: int = 0
    skipped: int = 0
    rejected: int = 0
    problems: list[RowProblem] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the terminal."""
        return f"{self.added} added, {self.updated} updated, {self.skipped} skipped, {self.rejected} rejected"


def read_import(source: Path, deliverability: bool = False) -> tuple[list[Subscriber], list[RowProblem]]:
    """All usable rows of a source file and the problems of the rest; file-level errors raise."""
    if not source.is_file():
        raise SubscriberError(
            f"import file {source.name} not found",
            where=str(source),
            fix="check the path of the file to import",
        )
    problems: list[RowProblem] = []
    rows = list(
        SubscriberStore(source).iter_subscribers(deliverability=deliverability, on_problem=problems.append)
    )
    return rows, problems


def import_file(
    store: SubscriberStore,
    source: Path,
    on_conflict: Literal["skip", "update"] = "skip",
    deliverability: bool = False,
    strict: bool = False,
) -> ImportReport:
    """Merge a CSV into the list; with strict, any bad row means nothing is written."""
    incoming, problems = read_import(source, deliverability)
    report = ImportReport(rejected=len(problems), problems=problems)
    if strict and problems:
        return report
    now = to_the_second(utc_now())
    with store.editing(create=True) as table:
        for subscriber in incoming:
            if subscriber.subscribed_at is None:
                subscriber = replace(subscriber, subscribed_at=now)
            outcome = merge_one(table, subscriber, on_conflict, store.name)
            setattr(report, outcome, getattr(report, outcome) + 1)
    return report
