"""A small marker beside each list saying its deliveries are in a ledger, so a lost ledger is noticed.

Without it, a deleted or emptied `newsletter.db` looks like a list nobody has been sent to, and the
next run mails the whole issue again. The marker lives beside the list (`subscribers/.NAME.sent`),
not beside the ledger, so losing one does not lose the other. It is keyed by host and ledger
path, so hosts that share a list folder but keep their own ledgers (`send --shard`) do not mix.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path

from ..errors import LedgerError
from ..files import atomic_write_text
from ..ledger import latest_issue
from ..models import utc_now


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

    def check(self, ledger: Path, list_name: str, channel: str) -> None:
        """Refuse to start when the marker says this ledger held deliveries it no longer has."""
        noted = self.read().get(_key(ledger, channel))
        if noted is None or _has_records(ledger, list_name, channel):
            return
        raise LedgerError(
            f"issue {noted.get('issue', '?')} and earlier of list '{list_name}' were recorded as sent "
            f"in this ledger, but it {_state(ledger)}; sending now would mail the issue to everyone again",
            where=str(ledger),
            fix=f"restore {ledger.name} from a backup (the run then resumes), or run "
            "`newsletter send --new-ledger` to start a new ledger and send this issue to everyone",
        )

    def note(self, ledger: Path, channel: str, issue: str) -> None:
        """Record, before anything is sent, that this list's deliveries go into this ledger."""
        noted = self.read()
        noted[_key(ledger, channel)] = {"issue": issue, "at": utc_now().isoformat(timespec="seconds")}
        try:
            atomic_write_text(self.path, json.dumps(noted, indent=1, sort_keys=True) + "\n")
        except OSError as exc:
            raise LedgerError(
                f"cannot write the ledger marker ({exc.strerror})",
                where=str(self.path),
                fix=f"make {self.path.parent} writable",
            ) from exc


def _key(ledger: Path, channel: str) -> str:
    # Per host and file: hosts sharing a list folder, each with its own ledger, do not mix.
    return f"{channel} {socket.gethostname()}:{ledger.resolve()}"


def _has_records(ledger: Path, list_name: str, channel: str) -> bool:
    if not ledger.exists() or ledger.stat().st_size == 0:
        return False  # an emptied file is a new, empty ledger to SQLite: lost all the same
    return latest_issue(ledger, list_name, channel) is not None


def _state(ledger: Path) -> str:
    if not ledger.exists():
        return "is missing"
    if ledger.stat().st_size == 0:
        return "is empty"
    return "has no record of them"
