"""Merging another CSV into a list: every good row lands in one transaction, or none do."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from ..errors import SubscriberError
from ..models import to_the_second, utc_now
from ..store.subscribers import SubscriberStore
from .rows import RowProblem, read_subscribers


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


def import_file(
    store: SubscriberStore,
    source: Path,
    on_conflict: Literal["skip", "update"] = "skip",
    deliverability: bool = False,
    strict: bool = False,
) -> ImportReport:
    """Merge a CSV into the list; with strict, any bad row means nothing is written (nor for a
    damaged file: a stray quote, a row of the wrong width)."""
    if not source.is_file():
        raise SubscriberError(
            f"import file {source.name} not found",
            where=str(source),
            fix="check the path of the file to import",
        )
    problems: list[RowProblem] = []
    found = read_subscribers(source, aliases=True, deliverability=deliverability, on_problem=problems.append)
    incoming = [subscriber for _, subscriber in found]
    report = ImportReport(rejected=len(problems), problems=problems)
    if strict and problems:
        return report
    now = to_the_second(utc_now())
    dated = [s if s.subscribed_at else replace(s, subscribed_at=now) for s in incoming]
    counted = Counter(store.add_many(dated, on_conflict))
    report.added, report.updated, report.skipped = counted["added"], counted["updated"], counted["skipped"]
    return report
