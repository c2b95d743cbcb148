"""Readers no scheduled run serves: daily readers while only the weekly job runs, or the reverse.

The ledger tells which schedules run: an issue named by a day (2024-03-14) is a daily one, an
issue named by a week (2024-W11) a weekly one (pipeline/issue.py names them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from ..statuses import Frequency
from ..store.database import Database
from ..store.history import recorded_issues
from .issue import issue_period

# A schedule that sent nothing for this long before the issue date is taken as not running.
RECENT = {Frequency.DAILY: timedelta(days=2), Frequency.WEEKLY: timedelta(days=8)}


def send_command(frequency: Frequency, list_name: str) -> str:
    """The command whose run serves readers of this frequency."""
    flag = "" if frequency is Frequency.WEEKLY else f" --frequency {frequency.value}"
    return f"newsletter send{flag} --list {list_name}"


@dataclass(frozen=True)
class LeftOut:
    """Active readers of one frequency that no recent run sent an issue to."""

    list_name: str
    frequency: Frequency
    readers: int
    last_sent: date | None  # the day of the last issue of this frequency, if there ever was one

    def __str__(self) -> str:
        since = f"since {self.last_sent}" if self.last_sent else "yet"
        command = send_command(self.frequency, self.list_name)
        return (
            f"{self.readers} active reader(s) of list '{self.list_name}' chose the {self.frequency.value}"
            f" digest, which no run has sent {since}: schedule `{command}`"
        )


def last_sent(db: Database | None, list_name: str, channel: str) -> dict[Frequency, date]:
    """The day of the latest issue of each frequency this list got (delivered to anyone)."""
    found: dict[Frequency, date] = {}
    for record in recorded_issues(db, list_name) if db is not None else []:
        period = issue_period(record.issue)
        if record.channel != channel or not record.delivered or period is None:
            continue
        frequency, day = _period_day(period)
        if day > found.get(frequency, date.min):
            found[frequency] = day
    return found


def _period_day(period: str) -> tuple[Frequency, date]:
    """A week id's last day (its issue covers up to then), or a day id's day."""
    if "-W" in period:
        year, week = period.split("-W")
        return Frequency.WEEKLY, date.fromisocalendar(int(year), int(week), 7)
    return Frequency.DAILY, date.fromisoformat(period)


def left_out(
    readers: Mapping[Frequency, int], sent: Mapping[Frequency, date], list_name: str, day: date
) -> list[LeftOut]:
    """The frequencies with active readers whose schedule sent nothing recent before `day`."""
    return [
        LeftOut(list_name, frequency, count, sent.get(frequency))
        for frequency, count in readers.items()
        if count and sent.get(frequency, date.min) < day - RECENT[frequency]
    ]
