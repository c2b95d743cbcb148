"""One `send` run: plan every active subscriber's digest, deliver it, and account for everyone."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

from filelock import FileLock, Timeout

from .compose import HeaderValueError, MessageComposer
from .delivery import Dispatcher, EmbeddedServer, Job, SmtpTarget
from .errors import LedgerError, NewsletterError
from .issue import LinkSigner, PreparedIssue, prepare_issue
from .ledger import FINAL, SENDING, DeliveryLedger, LedgerEntry
from .models import Subscriber
from .render import DigestRenderer
from .settings import Settings
from .subscribers import SubscriberStore

EXIT_OK = 0
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL: cron should simply run us again


@dataclass(frozen=True)
class SendOptions:
    """The `send` command line, as plain data."""

    list_name: str | None = None
    issue_id: str | None = None
    issue_date: date | None = None
    papers: tuple[Path, ...] = ()
    dry_run: bool = False
    to: str | None = None
    limit: int | None = None
    shard: tuple[int, int] | None = None


@dataclass
class SendReport:
    """The summary of a run; `send --json` prints it as is."""

    issue: str
    list: str
    channel: str
    server: str
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    skipped: int = 0
    resumed: int = 0
    unsubscribed: int = 0
    pending: int = 0
    composed: int = 0
    rejected: int = 0
    dry_run: bool = False
    duration_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """75 while anyone still waits for a final outcome, else 0."""
        return EXIT_TEMPFAIL if (self.deferred or self.pending) else EXIT_OK

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["exit_code"] = self.exit_code
        return data


def in_shard(address: str, shard: tuple[int, int] | None) -> bool:
    """A split by address that every host computes the same way (K is 1-based)."""
    if shard is None:
        return True
    k, n = shard
    digest = hashlib.sha256(address.strip().lower().encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n == k - 1


def run_send(
    settings: Settings, options: SendOptions,
    on_outcome: Callable[[str, str], None] | None = None,
) -> SendReport:
    """Send one issue to one list; safe to run again at any time, it resumes."""
    started = time.monotonic()
    embedded = settings.smtp.is_embedded
    signer = LinkSigner.for_run(settings, local_only=embedded or options.dry_run)
    issue = prepare_issue(
        settings, list_name=options.list_name, issue_date=options.issue_date,
        issue_id=options.issue_id, papers=options.papers,
    )
    store = SubscriberStore(settings.list_path(issue.info.list_name))
    channel = "outbox" if embedded else "smtp"
    report = SendReport(
        issue=issue.info.issue_id, list=issue.info.list_name, channel=channel,
        server="embedded" if embedded else f"{settings.smtp.host}:{settings.smtp.port}",
        dry_run=options.dry_run, problems=list(issue.problems),
    )
    planner = DigestPlanner(settings, issue, signer, options, report)
    if options.dry_run:
        done = DeliveryLedger.peek_entries(settings.path(settings.ledger), report.issue, report.list, channel)
        for _ in planner.jobs(store.iter_subscribers(), done, {}):
            pass
    elif options.to:
        _deliver(settings, planner.jobs(store.iter_subscribers(), {}, {}), None, None, report, on_outcome)
    else:
        _send_recorded(settings, store, planner, report, on_outcome)
    report.duration_seconds = round(time.monotonic() - started, 3)
    return report


def _send_recorded(
    settings: Settings, store: SubscriberStore, planner: DigestPlanner, report: SendReport,
    on_outcome: Callable[[str, str], None] | None,
) -> None:
    ledger_path = settings.path(settings.ledger)
    lock = FileLock(str(ledger_path) + f".{report.list}.send.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise LedgerError(
            f"another `newsletter send` for list '{report.list}' is already running",
            where=str(lock.lock_file), fix="let it finish; run again afterwards to pick up anything left",
        ) from None
    try:
        ledger = DeliveryLedger(ledger_path, report.issue, report.list, report.channel)
        try:
            jobs = planner.jobs(store.iter_subscribers(), ledger.entries(), ledger.papers_received_before())
            _deliver(settings, jobs, ledger, store.is_active, report, on_outcome)
        finally:
            ledger.close()
    finally:
        lock.release()


def _deliver(
    settings: Settings, jobs: Iterator[Job], ledger: DeliveryLedger | None,
    still_wanted: Callable[[str], bool] | None, report: SendReport,
    on_outcome: Callable[[str, str], None] | None,
) -> None:
    """Start the embedded server if configured, then let the dispatcher work through the jobs."""
    def outcome(job: Job, kind: str) -> None:
        if on_outcome is not None:
            on_outcome(job.key, kind)

    server = EmbeddedServer(settings.path(settings.smtp.outbox)).start() if settings.smtp.is_embedded else None
    try:
        target = SmtpTarget.from_settings(settings.smtp)
        if server is not None:
            target = SmtpTarget(host=server.host, port=server.port, timeout=settings.smtp.timeout)
        dispatcher = Dispatcher(
            target, settings.sender.address, settings.smtp, ledger=ledger,
            still_wanted=still_wanted, on_outcome=outcome,
        )
        try:
            asyncio.run(dispatcher.run(jobs))
        finally:
            _add_stats(report, dispatcher)
    finally:
        if server is not None:
            server.stop()


def _add_stats(report: SendReport, dispatcher: Dispatcher) -> None:
    stats = dispatcher.stats
    report.sent += stats.sent
    report.failed += stats.failed
    report.deferred += stats.deferred
    report.unsubscribed += stats.unsubscribed


class DigestPlanner:
    """Turns the subscriber stream into ready-to-send messages, skipping whoever is done."""

    def __init__(
        self, settings: Settings, issue: PreparedIssue, signer: LinkSigner,
        options: SendOptions, report: SendReport,
    ) -> None:
        self.settings = settings
        self.issue = issue
        self.signer = signer
        self.options = options
        self.report = report
        self.renderer = DigestRenderer(settings, issue.info)
        self.composer = MessageComposer(settings, issue.info, signer.secret)

    def jobs(
        self, subscribers: Iterator[Subscriber], entries: dict[str, LedgerEntry],
        received: dict[str, frozenset[str]],
    ) -> Iterator[Job]:
        """Yield one job per active subscriber still owed this issue, in file order."""
        limit = 1 if self.options.to else self.options.limit
        queued = 0
        for subscriber in subscribers:
            if not subscriber.is_active or not in_shard(subscriber.key, self.options.shard):
                continue
            entry = entries.get(subscriber.key)
            if entry is not None and entry.status in FINAL:
                self.report.skipped += 1
                continue
            if limit is not None and queued >= limit:
                self.report.pending += 0 if self.options.to else 1
                continue
            job = self._job(subscriber, received.get(subscriber.key, frozenset()))
            if job is None:
                continue
            if entry is not None and entry.status == SENDING:
                self.report.resumed += 1
            queued += 1
            yield job

    def _job(self, subscriber: Subscriber, already_sent: frozenset[str]) -> Job | None:
        top = self.settings.selection.top_n
        picks = self.issue.ranker.rank(subscriber.keywords, top=top, exclude_ids=already_sent)
        link = self.signer.url(self.issue.info.list_name, subscriber.email)
        digest = self.renderer.render(subscriber, picks, link)
        try:
            message = self.composer.compose(subscriber, digest, link, to_address=self.options.to)
        except HeaderValueError as exc:
            self.report.rejected += 1
            self.report.problems.append(f"{subscriber.email}: {exc}")
            return None
        self.report.composed += 1
        return Job(subscriber.key, message, tuple(p.paper.id for p in picks))


__all__ = ["SendOptions", "SendReport", "run_send", "in_shard", "NewsletterError"]
