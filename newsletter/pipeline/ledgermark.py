"""A small marker beside each list saying its deliveries are in a database, so a lost one is noticed.

Without it, a deleted or emptied `newsletter.db` looks like a list nobody has been sent to, and the
next run mails the whole issue again. The marker lives beside the list (`subscribers/.NAME.sent`),
not beside the database, so losing one does not lose the other. It is keyed by host and database,
so hosts that share a list folder but keep their own databases (`send --shard`) do not mix. (Kept
until the subscriber lists themselves live in the database and the CSV carries `last_issue`.)
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path

from ..errors import LedgerError
from ..files import atomic_write_text
from ..models import utc_now
from ..store.database import Place
from ..store.history import latest_issue
from ..store.opening import existing_database


@dataclass(frozen=True)
class LedgerMarker:
    """`.NAME.sent` beside a list: which ledger holds the list's deliveries, for which channel."""

    path: Path

    @classmethod
    def beside(cls, list_path: Path) -> LedgerMarker:
        return cls(list_path.with_name(f".{list_path.stem}.sent"))

    def read(self) -> dict[str, dict[str, str]]:
        """What the marker says, per ledger; empty when there is none (or it is not ours)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): v for k, v in data.items() if isinstance(v, dict)}

    def check(self, place: Place, list_name: str, channel: str) -> None:
        """Refuse to start when the marker says this database held deliveries it no longer has."""
        noted = self.read().get(_key(place, channel))
        if noted is None or _has_records(place, list_name, channel):
            return
        raise LedgerError(
            f"issue {noted.get('issue', '?')} and earlier of list '{list_name}' were recorded as sent "
            f"in this database, but it {_state(place)}; sending now would mail the issue to everyone again",
            where=place.shown,
            fix="restore it from a backup (the run then resumes), or run "
            "`newsletter send --new-ledger` to start over and send this issue to everyone",
        )

    def note_if_recorded(self, place: Place, list_name: str, channel: str, issue: str) -> None:
        """Record that this list's deliveries are in this database, once it holds some: a run that
        stopped before its first attempt leaves nothing that a later run could miss."""
        if _has_records(place, list_name, channel):
            self.note(place, channel, issue)

    def note(self, place: Place, channel: str, issue: str) -> None:
        """Record that this list's deliveries go into this database."""
        noted = self.read()
        noted[_key(place, channel)] = {"issue": issue, "at": utc_now().isoformat(timespec="seconds")}
        try:
            atomic_write_text(self.path, json.dumps(noted, indent=1, sort_keys=True) + "\n")
        except OSError as exc:
            raise LedgerError(
                f"cannot write the ledger marker ({exc.strerror})",
                where=str(self.path),
                fix=f"make {self.path.parent} writable",
            ) from exc


def _key(place: Place, channel: str) -> str:
    # Per host and database: hosts sharing a list folder, each with its own database, do not mix.
    where = str(_sqlite_file(place).resolve()) if place.engine_name == "sqlite" else place.shown
    return f"{channel} {socket.gethostname()}:{where}"


def _sqlite_file(place: Place) -> Path:
    return Path(place.url.database or "")


def _has_records(place: Place, list_name: str, channel: str) -> bool:
    if place.engine_name == "sqlite":
        path = _sqlite_file(place)
        if not path.exists() or path.stat().st_size == 0:
            return False  # an emptied file is a new, empty database to SQLite: lost all the same
    db = existing_database(place)
    return db is not None and latest_issue(db, list_name, channel) is not None


def _state(place: Place) -> str:
    path = _sqlite_file(place)
    if place.engine_name == "sqlite" and not path.exists():
        return "is missing"
    if place.engine_name == "sqlite" and path.stat().st_size == 0:
        return "is empty"
    return "has no record of them"
