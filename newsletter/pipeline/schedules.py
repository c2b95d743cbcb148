"""Readers no scheduled run serves: daily readers while only the weekly job runs, or the reverse.

The ledger tells which schedules run: an issue named by a day (2024-03-14) is a daily one, an
issue named by a week (2024-W11) a weekly one (pipeline/issue.py names them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from ..statuses import Frequency
from ..store.database import Database
from ..store.history import delivered_issues
from .issue import issue_id_for

# A schedule that delivered nothing in this many days up to the issue date is taken as not running.
RECENT_DAYS = {Frequency.DAILY: 2, Frequency.WEEKLY: 8}


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
    day: date  # the issue date (send) or the day (doctor) looked back from

    def __str__(self) -> str:
        command = send_command(self.frequency, self.list_name)
        return (
            f"{self.readers} active reader(s) of list '{self.list_name}' chose the {self.frequency.value}"
            f" digest, which no run sent in the {RECENT_DAYS[self.frequency]} days up to {self.day}:"
            f" schedule `{command}`"
        )


def served_recently(
    db: Database | None, list_name: str, channel: str, frequency: Frequency, day: date
) -> bool:
    """Whether any issue of this frequency was delivered to the list in the days up to `day`."""
    if db is None:
        return False
    days = (day - timedelta(days=back) for back in range(RECENT_DAYS[frequency] + 1))
    periods = dict.fromkeys(issue_id_for(each, frequency) for each in days)  # in order, once each
    return any(delivered_issues(db, list_name, channel, period) for period in periods)
