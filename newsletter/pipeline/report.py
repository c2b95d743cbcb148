"""Who got an issue and who did not, and why: the ledger's rows joined with the list's statuses."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from ..delivery.channel import channel_for
from ..errors import LedgerError
from ..models import Subscriber
from ..settings import Settings
from ..statuses import DeliveryStatus, IssueOutcome, SubscriberStatus
from ..store.bouncelog import BounceEvent, events_of_issue
from ..store.history import LedgerRow, latest_issue, read_issue
from ..store.opening import existing_database
from ..store.sendqueue import SenderProgress, issue_senders
from ..store.subscribers import SubscriberStore
from ..subscribers import open_list
from ..subscribers.csvfile import write_spreadsheet
from ..text import one_line

NOT_DELIVERED = (
    IssueOutcome.FAILED,
    IssueOutcome.DEFERRED,
    IssueOutcome.HELD,
    IssueOutcome.IN_FLIGHT,
    IssueOutcome.QUEUED,
    IssueOutcome.BOUNCED,
    IssueOutcome.UNSUBSCRIBED,
)


# Named in the summary only when some are: most issues never have any.
_QUIET = (IssueOutcome.QUEUED, IssueOutcome.HELD)


@dataclass(frozen=True)
class Undelivered:
    """One address that did not get the issue, with the server's last word on it."""

    email: str
    outcome: IssueOutcome
    attempts: int
    last_reply: str
    when: str


@dataclass
class IssueReport:
    """Counts per outcome and every address that did not get the issue."""

    issue: str
    list_name: str
    channel: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(map(str, IssueOutcome), 0))
    problems: list[Undelivered] = field(default_factory=list)
    bounces: list[BounceEvent] = field(default_factory=list)  # what came back, per reader
    senders: list[SenderProgress] = field(default_factory=list)  # who sent it: hosts, --workers

    def summary(self) -> str:
        counts = ", ".join(
            f"{n} {outcome}" for outcome, n in self.counts.items() if n or outcome not in _QUIET
        )
        return f"Issue {self.issue} to list '{self.list_name}' ({self.channel}): {counts}"

    def problem_dicts(self, cap: int | None = None) -> list[dict[str, object]]:
        """The problems as JSON objects, the first `cap` of them."""
        shown = self.problems if cap is None else self.problems[:cap]
        return [{**asdict(p), "outcome": str(p.outcome)} for p in shown]

    def as_dict(self) -> dict[str, object]:
        return {
            "issue": self.issue,
            "list": self.list_name,
            "channel": self.channel,
            "counts": self.counts,
            "problems": self.problem_dicts(),
            "problems_total": len(self.problems),
            "bounces": [
                {"email": b.email, "kind": str(b.kind), "reason": b.reason, "received_at": b.received_at}
                for b in self.bounces
            ],
            "senders": [asdict(sender) for sender in self.senders],
        }


def issue_report(
    settings: Settings,
    list_name: str | None = None,
    issue: str | None = None,
    withdrawn: Collection[str] = (),
) -> IssueReport:
    """Read the deliveries and the list for one issue (changing nothing); the latest by default.

    `withdrawn`: addresses a run saw unsubscribe before their message left (the ledger keeps no
    row of them; afterwards, the list's unsubscribe times tell).
    """
    list_name = list_name or settings.default_list
    channel = channel_for(settings.smtp)
    place = settings.places.database()
    db = existing_database(place)  # a report creates no database
    latest = None if db is None else latest_issue(db, list_name, channel)
    if db is None or latest is None:
        raise LedgerError(
            f"nothing was sent to list '{list_name}' ({channel}) yet: the database has no delivery of it",
            where=place.shown,
            fix="run `newsletter send` first, or point `ledger` or database_url in newsletter.toml at the "
            "right database",
        )
    issue = issue or latest
    rows = read_issue(db, issue, list_name, channel)
    if not rows:
        raise LedgerError(
            f"the ledger has no deliveries of issue {issue} to list '{list_name}' ({channel})",
            where=db.place.shown,
            fix="check --issue and --list (the issue id is the ISO week, e.g. 2026-W48)",
        )
    store = open_list(settings.places, list_name, look_only=True)
    statuses = _statuses(store) if store.exists() else {}
    report = build_report(issue or "", list_name, channel, rows, statuses, withdrawn=withdrawn)
    report.bounces = events_of_issue(db, issue, list_name, channel)
    report.senders = issue_senders(db, report.issue, list_name, channel)
    return report


INACTIVE = (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED, SubscriberStatus.PENDING)


def _statuses(store: SubscriberStore) -> dict[str, Subscriber]:
    """The list's current statuses, for those who are no longer active."""
    return {s.key: s for s in store.iter_subscribers(statuses=INACTIVE)}


def build_report(
    issue: str,
    list_name: str,
    channel: str,
    rows: Iterable[LedgerRow],
    inactive: dict[str, Subscriber],
    *,
    withdrawn: Collection[str] = (),
) -> IssueReport:
    """Classify every ledger row; add those who unsubscribed after the run began and got nothing."""
    report = IssueReport(issue, list_name, channel)
    rows = list(rows)
    seen = set()
    for row in rows:
        seen.add(row.email)
        outcome = _outcome(row, inactive.get(row.email))
        report.counts[outcome] += 1
        if outcome != IssueOutcome.DELIVERED:
            report.problems.append(
                Undelivered(row.email, outcome, row.attempts, one_line(row.last_reply or ""), row.updated_at)
            )
    started = min((_parse(row.updated_at) for row in rows), default=None)
    for key, subscriber in inactive.items():
        left = subscriber.unsubscribed_at
        gone = subscriber.status == SubscriberStatus.UNSUBSCRIBED
        if key in seen or not gone or left is None or started is None:
            continue
        if left.tzinfo is None:
            left = left.replace(tzinfo=UTC)
        if left >= started or key in withdrawn:
            report.counts[IssueOutcome.UNSUBSCRIBED] += 1
            report.problems.append(Undelivered(key, IssueOutcome.UNSUBSCRIBED, 0, "", left.isoformat()))
    report.problems.sort(key=lambda p: (NOT_DELIVERED.index(p.outcome), p.email))
    return report


def _outcome(row: LedgerRow, inactive: Subscriber | None) -> IssueOutcome:
    if row.status == DeliveryStatus.DELIVERED:
        bounced = inactive is not None and inactive.status == SubscriberStatus.BOUNCED
        return IssueOutcome.BOUNCED if bounced else IssueOutcome.DELIVERED
    if row.status == DeliveryStatus.WITHDRAWN:
        return IssueOutcome.UNSUBSCRIBED
    if row.status == DeliveryStatus.SENDING:
        return IssueOutcome.IN_FLIGHT
    return IssueOutcome(row.status)


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def format_text(report: IssueReport) -> str:
    """The counts, then one aligned line per address that did not get the issue."""
    lines = [report.summary()]
    if report.problems:
        width = max(len(p.email) for p in report.problems)
        kind = max(len(str(p.outcome)) for p in report.problems)
        for p in report.problems:
            tries = _tries(p.attempts)
            reply = p.last_reply or "-"
            lines.append(f"{p.outcome!s:<{kind}}  {p.email:<{width}}  {tries:<10}  {reply}")
    else:
        lines.append("Everyone on the ledger got it.")
    lines.extend(_sender_line(sender) for sender in report.senders if len(report.senders) > 1)
    return "\n".join(lines + bounce_lines(report.bounces))


def bounce_lines(events: list[BounceEvent]) -> list[str]:
    """What came back about the issue (`subscribers bounces`), one line per report, by reader."""
    if not events:
        return []
    readers = len({e.email.lower() for e in events})
    width = max(len(e.email) for e in events)
    kind = max(len(str(e.kind)) for e in events)
    lines = [f"Bounces and complaints ({len(events)} from {readers} reader{'' if readers == 1 else 's'}):"]
    lines += [f"{e.email:<{width}}  {e.kind!s:<{kind}}  {one_line(e.reason) or '-'}" for e in events]
    return lines


def _sender_line(sender: SenderProgress) -> str:
    """One sender of the issue: where it ran, whether it is still at work, what it did and holds."""
    state = "sending" if sender.live else "finished"
    counts = ", ".join(f"{n} {status}" for status, n in sorted(sender.counts.items()))
    return (
        f"sender {sender.id} on {sender.host} ({state}, started {sender.started_at}): {counts or 'nothing'}"
    )


def write_csv(report: IssueReport, out: TextIO) -> None:
    """One row per address that did not get the issue, safe to open in a spreadsheet."""
    rows = [[p.email, str(p.outcome), str(p.attempts), p.last_reply, p.when] for p in report.problems]
    write_spreadsheet(out, ["email", "outcome", "attempts", "last_reply", "when"], rows)


def log_lines(report: IssueReport, cap: int = 1000) -> list[str]:
    """What the log file keeps of a run's problems: one line per address, then how many more."""
    lines = [
        f"{p.outcome}: {p.email} ({_tries(p.attempts)}): {p.last_reply or '-'}" for p in report.problems[:cap]
    ]
    if len(report.problems) > cap:
        lines.append(
            f"... and {len(report.problems) - cap} more: see {report_command(report.issue, report.list_name)}"
        )
    return lines


def report_command(issue: str, list_name: str) -> str:
    """The command that shows an issue's problems, as the summary line suggests it."""
    return f"newsletter report --issue {issue} --list {list_name}"


def _tries(attempts: int) -> str:
    return f"{attempts} attempt{'' if attempts == 1 else 's'}"
