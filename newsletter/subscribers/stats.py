"""Summaries of a list for people: counts by status, top keywords, a plain text table, CSV."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import TextIO

from ..models import Subscriber
from ..statuses import SubscriberStatus
from ..text import scrub_cells
from .csvfile import CsvLayout, write_spreadsheet
from .rows import STATUSES, to_fields


@dataclass
class ListStats:
    """How a list breaks down, to see at a glance who a send will reach."""

    total: int = 0
    by_status: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    keywords: Counter[str] = field(default_factory=Counter)
    without_keywords: int = 0
    # Web sign-ups: still pending, by the day they signed up; confirmed, by the day they confirmed.
    pending_by_day: Counter[date] = field(default_factory=Counter)
    confirmed_by_day: Counter[date] = field(default_factory=Counter)

    def signups_by_day(self, days: int = 14) -> list[tuple[date, int, int]]:
        """(day, pending, confirmed) for the latest days with any sign-up activity, newest first."""
        seen = sorted(set(self.pending_by_day) | set(self.confirmed_by_day), reverse=True)[:days]
        return [(day, self.pending_by_day[day], self.confirmed_by_day[day]) for day in seen]

    def top_keywords(self, n: int = 10) -> list[tuple[str, int]]:
        """Most common keywords of active subscribers, ties alphabetical so output is stable."""
        return sorted(self.keywords.items(), key=lambda item: (-item[1], item[0]))[:n]


def list_stats(subscribers: Iterable[Subscriber]) -> ListStats:
    """Count a stream of subscribers without keeping them."""
    stats = ListStats()
    for subscriber in subscribers:
        stats.total += 1
        stats.by_status[subscriber.status] = stats.by_status.get(subscriber.status, 0) + 1
        if subscriber.status is SubscriberStatus.PENDING and subscriber.subscribed_at:
            stats.pending_by_day[subscriber.subscribed_at.date()] += 1
        if subscriber.confirmed_at:
            stats.confirmed_by_day[subscriber.confirmed_at.date()] += 1
        if subscriber.is_active:
            stats.keywords.update({word.lower() for word in subscriber.keywords})
            stats.without_keywords += not subscriber.keywords
    return stats


def matching(subscribers: Iterable[Subscriber], keyword: str | None = None) -> Iterator[Subscriber]:
    """Filter by keyword (a case-insensitive part of any keyword; the store filters by status)."""
    needle = keyword.strip().lower() if keyword else None
    return (s for s in subscribers if not needle or any(needle in word.lower() for word in s.keywords))


def format_table(headers: list[str], rows: list[list[str]], max_width: int = 40) -> str:
    """Left-aligned columns for a terminal; long cells are cut with an ellipsis."""
    cut = [
        [cell if len(cell) <= max_width else cell[: max_width - 1] + "…" for cell in row]
        for row in [headers, *rows]
    ]
    widths = [max(len(row[i]) for row in cut) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cut
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def table_rows(subscribers: Iterable[Subscriber]) -> list[list[str]]:
    """The columns `subscribers list` shows, on a terminal that would obey an ESC or a U+202E."""
    return [scrub_cells([s.email, s.name, s.status, "; ".join(s.keywords)]) for s in subscribers]


def write_csv(header: list[str], subscribers: Iterable[Subscriber], out: TextIO, *, raw: bool = False) -> int:
    """Comma-separated UTF-8 with every column of the list; formula-looking cells defused unless raw."""
    layout = CsvLayout(header=list(header))
    rows = [to_fields(layout, subscriber) for subscriber in subscribers]
    return write_spreadsheet(out, layout.header, rows, raw=raw)
