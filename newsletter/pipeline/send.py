"""One `send` run: plan every active subscriber's digest, deliver it, and account for everyone."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

from filelock import FileLock, Timeout

from ..delivery import Dispatcher, Job, channel_for, delivery_target, server_label
from ..errors import LedgerError, NewsletterError
from ..ledger import DeliveryLedger, ledger_error, read_issue
from ..mail.compose import HeaderValueError
from ..models import Subscriber
from ..safety.listnames import check_list_name
from ..safety.secretkey import require_strong_secret
from ..settings import Settings
from ..statuses import FINAL_STATUSES, Channel, DeliveryStatus, Frequency
from ..subscribers import SubscriberStore
from ..subscribers.csvfile import missing_list_error
from ..subscribers.signup import PENDING_DAYS, drop_stale_pending
from .build import DigestBuilder
from .buildpool import ParallelBuilder
from .interrupts import stopped_by
from .issue import LinkSigner, PreparedIssue, no_papers_configured, prepare_issue
from .ledgermark import LedgerMarker
from .report import issue_report, log_lines, report_command
from .snapshot import make_snapshot, reader_record

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL: cron should simply run us again
NOT_DELIVERED_SHOWN = 100  # addresses listed in --json; `newsletter report` lists them all


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
    frequency: Frequency = Frequency.WEEKLY
    new_ledger: bool = False  # start over although the list's marker says a ledger held its deliveries


@dataclass
class SendReport:
    """The summary of a run; `send --json` prints it as is."""

    issue: str
    list_name: str
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
    empty: int = 0
    paused: int = 0
    frequency: str = Frequency.WEEKLY.value
    dry_run: bool = False
    duration_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    # Who did not get the issue (failed, deferred, in flight, unsubscribed), first few; `report` has all.
    not_delivered: list[dict[str, object]] = field(default_factory=list)
    not_delivered_total: int = 0
    withdrawn: set[str] = field(default_factory=set, repr=False)  # left mid-run

    @property
    def exit_code(self) -> int:
        """75 while anyone still waits for a final outcome, else 0."""
        return EXIT_TEMPFAIL if (self.deferred or self.pending) else EXIT_OK

    def summary(self) -> str:
        """The one line a run prints and logs: issue, counts and duration."""
        mode = " (dry run: nothing sent, nothing recorded)" if self.dry_run else ""
        line = (
            f"Issue {self.issue} to list '{self.list_name}' via {self.server}{mode}: "
            f"{self.sent} sent, {self.failed} failed, {self.deferred} deferred, "
            f"{self.skipped} already done"
        )
        extras = [
            (self.resumed, "resumed after an interrupted run"),
            (self.unsubscribed, "unsubscribed during the run"),
            (self.pending, "left for the next run (--limit)"),
            (self.rejected, "rejected (bad address)"),
            (self.empty, "with nothing new on their topics (no mail)"),
            (self.paused, "paused"),
            (self.composed if self.dry_run else 0, "composed"),
        ]
        line += "".join(f", {count} {what}" for count, what in extras if count)
        line += f" in {self.duration_seconds:.1f}s."
        if self.not_delivered_total:
            line += f" See who and why: {report_command(self.issue, self.list_name)}"
        return line

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data = {
            "list" if key == "list_name" else key: value for key, value in data.items()
        }  # the JSON contract
        del data["withdrawn"]  # named in not_delivered
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
    settings: Settings,
    options: SendOptions,
    on_outcome: Callable[[str, DeliveryStatus], None] | None = None,
) -> SendReport:
    """Send one issue to one list; safe to run again at any time, it resumes."""
    started = time.monotonic()
    try:
        report = _run_send(settings, options, on_outcome)
    except NewsletterError as exc:
        # The CLI prints the error itself; this line is for the log file.
        log.error(
            "send stopped after %.1fs: %s",
            time.monotonic() - started,
            exc.message,
            extra={"shown_to_user": True},
        )
        raise
    except SendInterrupted as stop:
        log.warning(
            "send stopped by %s after %.1fs: %s",
            stopped_by(),
            time.monotonic() - started,
            stop.counts(),
            extra={"shown_to_user": True},
        )
        raise
    except KeyboardInterrupt:
        log.warning(
            "send stopped by %s after %.1fs, before anything was recorded",
            stopped_by(),
            time.monotonic() - started,
            extra={"shown_to_user": True},
        )
        raise
    report.duration_seconds = round(time.monotonic() - started, 3)
    if not (options.dry_run or options.to) and (report.failed or report.deferred or report.unsubscribed):
        _name_the_undelivered(settings, report)
    log.info("%s", report.summary())
    return report


def _name_the_undelivered(settings: Settings, report: SendReport) -> None:
    """Put who did not get the issue, and the server's last reply, in --json and the log file."""
    try:
        outcomes = issue_report(settings, report.list_name, report.issue, withdrawn=report.withdrawn)
    except NewsletterError:
        return  # nothing recorded for this issue (everyone left the list during the run)
    report.not_delivered = outcomes.problem_dicts(cap=NOT_DELIVERED_SHOWN)
    report.not_delivered_total = len(outcomes.problems)
    for line in log_lines(outcomes):
        log.info("%s", line, extra={"shown_to_user": True})


def _run_send(
    settings: Settings,
    options: SendOptions,
    on_outcome: Callable[[str, DeliveryStatus], None] | None,
) -> SendReport:
    embedded = settings.smtp.is_embedded
    recorded = not (options.dry_run or options.to)
    list_name = check_list_name(options.list_name or settings.default_list)  # names the lock file
    _check_inputs(settings, options, list_name)  # before the lock or ledger leave files behind
    with _exclusive(settings, list_name) if recorded else nullcontext():
        signer = LinkSigner.for_run(
            settings, local_only=embedded or options.dry_run or _local_trial(settings)
        )
        if not (embedded or options.dry_run or settings.smtp.is_loopback):
            # Links in mail that leaves this machine are public: a weak key lets anyone forge them.
            require_strong_secret(
                settings.secret, f"mail to {settings.smtp.host}:{settings.smtp.port}", settings.source_label
            )
        issue = prepare_issue(
            settings,
            list_name=list_name,
            issue_date=options.issue_date,
            issue_id=options.issue_id,
            papers=options.papers,
            require_papers=True,
            remember_papers=not options.dry_run,
            frequency=options.frequency,
        )
        store = SubscriberStore(settings.list_path(issue.info.list_name))
        if recorded and store.journal.size():
            store.compact()  # fold the change journal into the CSV, so the run streams one file
        channel = channel_for(settings.smtp)
        report = SendReport(
            issue=issue.info.issue_id,
            list_name=issue.info.list_name,
            channel=channel,
            server=server_label(settings.smtp),
            dry_run=options.dry_run,
            problems=list(issue.problems),
            frequency=options.frequency.value,
        )
        if recorded:
            _drop_stale_signups(store)
        planner = DigestPlanner(settings, issue, signer, options, report)
        try:
            _run_planned(settings, store, planner, options, report, on_outcome)
        except KeyboardInterrupt:
            in_flight = 0 if options.dry_run or options.to else _in_flight(settings, report)
            raise SendInterrupted(report, in_flight) from None
    return report


def _run_planned(
    settings: Settings,
    store: SubscriberStore,
    planner: DigestPlanner,
    options: SendOptions,
    report: SendReport,
    on_outcome: Callable[[str, DeliveryStatus], None] | None,
) -> None:
    """Compose only (dry run), send one test copy (--to), or send and record."""
    channel = report.channel
    if options.dry_run:
        path = settings.path(settings.ledger)
        done = DeliveryLedger.peek_statuses(path, report.issue, report.list_name, channel)
        within = planner.issue.paper_ids
        received = DeliveryLedger.peek_received(path, report.issue, report.list_name, channel, within)
        for _ in planner.jobs(store.iter_subscribers(), done, received):
            pass
    elif options.to:
        _deliver(settings, planner.jobs(store.iter_subscribers(), {}, {}), None, None, report, on_outcome)
    else:
        _send_recorded(settings, store, planner, report, on_outcome)


class SendInterrupted(Exception):
    """Ctrl-C or SIGTERM during a run: what was delivered, and what the next run sends again."""

    def __init__(self, report: SendReport, in_flight: int) -> None:
        self.report = report
        self.in_flight = in_flight  # 'sending' rows: queued, or handed over with no reply recorded
        super().__init__(self.counts())

    def counts(self) -> str:
        return f"{self.report.sent} delivered in this run, {self.in_flight} in flight"


def _in_flight(settings: Settings, report: SendReport) -> int:
    """Rows left 'sending': the next run sends them again, with the same Message-ID."""
    rows = read_issue(settings.path(settings.ledger), report.issue, report.list_name, report.channel)
    return sum(1 for row in rows if row.status == DeliveryStatus.SENDING)


def _check_inputs(settings: Settings, options: SendOptions, list_name: str) -> None:
    """A folder with no papers or no list is a mistake: say so, and create nothing there."""
    if not (options.papers or settings.papers or settings.sources):
        raise no_papers_configured(settings)
    path = settings.list_path(list_name)
    if not path.is_file():
        raise missing_list_error(path)


def _drop_stale_signups(store: SubscriberStore) -> None:
    """Sign-ups nobody confirmed within a week go before the list is read (never mailed anyway)."""
    if not store.exists():
        return
    dropped = drop_stale_pending(store)
    if dropped:
        log.info(
            "dropped %d sign-ups to %s nobody confirmed within %d days", dropped, store.name, PENDING_DAYS
        )


def send_test_copy(settings: Settings, job: Job, list_name: str, issue_id: str) -> SendReport:
    """`send --to` for one message built elsewhere (the preview page): delivered, never recorded."""
    started = time.monotonic()
    report = SendReport(
        issue=issue_id,
        list_name=list_name,
        channel=channel_for(settings.smtp),
        server=server_label(settings.smtp),
    )
    _deliver(settings, iter([job]), None, None, report, None)
    report.duration_seconds = round(time.monotonic() - started, 3)
    log.info("test copy of %s to %s: %s", issue_id, job.message.recipient, report.summary())
    return report


def _local_trial(settings: Settings) -> bool:
    """A server on this machine may be used without a secret or base URL, with a warning."""
    smtp = settings.smtp
    if not smtp.is_loopback or (settings.secret and settings.base_url):
        return False
    log.warning(
        "sending to %s:%s without NEWSLETTER_SECRET and NEWSLETTER_BASE_URL: unsubscribe links use a "
        "local placeholder; set both before this server relays mail beyond this machine",
        smtp.host,
        smtp.port,
    )
    return True


@contextmanager
def _exclusive(settings: Settings, list_name: str) -> Iterator[None]:
    """One recorded run per list at a time: a second cron job exits at once, before any work."""
    ledger = settings.path(settings.ledger)
    lock = FileLock(str(ledger) + f".{list_name}.send.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise LedgerError(
            f"another `newsletter send` for list '{list_name}' is already running",
            where=str(lock.lock_file),
            fix="let it finish; run again afterwards to pick up anything left",
        ) from None
    except OSError as exc:  # a read-only or missing folder: the lock file cannot be created
        raise ledger_error(exc, ledger, "lock") from exc
    try:
        yield
    finally:
        lock.release()


def _send_recorded(
    settings: Settings,
    store: SubscriberStore,
    planner: DigestPlanner,
    report: SendReport,
    on_outcome: Callable[[str, DeliveryStatus], None] | None,
) -> None:
    processes = ParallelBuilder.processes_for(settings, store.path)
    builder = (
        ParallelBuilder(planner.build, processes) if processes else None
    )  # fork before opening the ledger
    try:
        ledger = _open_ledger(settings, store, report, planner.options.new_ledger)
        try:
            planner.record_snapshot(ledger)
            still_wanted = _still_wanted(store)  # before the stream opens the file
            received = ledger.papers_received_before(within=planner.issue.paper_ids)
            args = (store.iter_subscribers(), ledger.statuses(), received)
            jobs = planner.jobs(*args) if builder is None else planner.parallel_jobs(*args, builder)
            _deliver(settings, jobs, ledger, still_wanted, report, on_outcome)
        finally:
            ledger.close()
    finally:
        if builder is not None:
            builder.close()


def _open_ledger(settings: Settings, store: SubscriberStore, report: SendReport, new: bool) -> DeliveryLedger:
    """The run's ledger, refused when the list's marker says deliveries were recorded in one now lost."""
    path = settings.path(settings.ledger)
    marker = LedgerMarker.beside(store.path)
    real = report.channel != Channel.OUTBOX  # a local trial may start over freely
    if real and not new:
        marker.check(path, report.list_name, report.channel)
    ledger = DeliveryLedger(path, report.issue, report.list_name, report.channel)
    ledger.reserve()
    if real:
        ledger.on_first_attempt = lambda: marker.note(path, report.channel, report.issue)
    return ledger


def _still_wanted(store: SubscriberStore) -> Callable[[str], bool]:
    """Asked before each message: has this reader left the list since the run read it?

    While the file is the version the jobs were streamed from, everyone queued is still active
    there, so no status table is loaded at all (it grows with the list); after any change, the
    current file decides.
    """
    streamed = store.version()

    def still_wanted(key: str) -> bool:
        return store.is_version(streamed) or store.is_active(key)

    return still_wanted


def _deliver(
    settings: Settings,
    jobs: Iterator[Job] | AsyncIterator[Job],
    ledger: DeliveryLedger | None,
    still_wanted: Callable[[str], bool] | None,
    report: SendReport,
    on_outcome: Callable[[str, DeliveryStatus], None] | None,
) -> None:
    """Connect to the run's channel (starting the embedded server if so), then dispatch the jobs."""

    def outcome(job: Job, kind: DeliveryStatus) -> None:
        if kind is DeliveryStatus.WITHDRAWN:
            report.withdrawn.add(job.key)
        if on_outcome is not None:
            on_outcome(job.key, kind)

    with delivery_target(settings) as target:
        dispatcher = Dispatcher(
            target,
            settings.sender.envelope_sender,
            settings.smtp,
            ledger=ledger,
            still_wanted=still_wanted,
            on_outcome=outcome,
        )
        try:
            asyncio.run(dispatcher.run(jobs))
        finally:
            _add_stats(report, dispatcher)


def _add_stats(report: SendReport, dispatcher: Dispatcher) -> None:
    stats = dispatcher.stats
    report.sent += stats.sent
    report.failed += stats.failed
    report.deferred += stats.deferred
    report.unsubscribed += stats.unsubscribed


Wanted = tuple[Subscriber, frozenset[str], bool]  # who, papers they already had, resumed?
# resumed?, then the job, or why it could not be composed, or None: nothing matched, no mail
Built = tuple[bool, "Job | str | None"]


class DigestPlanner:
    """Turns the subscriber stream into ready-to-send messages, skipping whoever is done."""

    def __init__(
        self,
        settings: Settings,
        issue: PreparedIssue,
        signer: LinkSigner,
        options: SendOptions,
        report: SendReport,
    ) -> None:
        self.settings = settings
        self.issue = issue
        self.signer = signer
        self.options = options
        self.report = report
        self.builder = DigestBuilder(settings, issue, signer)  # before builder processes fork

    def record_snapshot(self, ledger: DeliveryLedger) -> None:
        """Keep the issue's papers and templates, so `preview --issue` can rebuild what was sent."""
        snapshot = make_snapshot(
            self.settings,
            self.issue.info,
            self.issue.ranker.papers,
            self.builder.renderer.dirs,
            ledger.snapshot(),
        )
        ledger.record_snapshot(snapshot)

    def jobs(
        self,
        subscribers: Iterator[Subscriber],
        statuses: Mapping[str, DeliveryStatus],
        received: dict[str, frozenset[str]],
    ) -> Iterator[Job]:
        """Yield one job per active subscriber still owed this issue, in file order."""
        for built in map(self.build, self.wanted(subscribers, statuses, received)):
            if (job := self._count(built)) is not None:
                yield job
                if self.options.to:
                    return  # one test copy: the first subscriber with something to read

    async def parallel_jobs(
        self,
        subscribers: Iterator[Subscriber],
        statuses: Mapping[str, DeliveryStatus],
        received: dict[str, frozenset[str]],
        builder: ParallelBuilder,
    ) -> AsyncIterator[Job]:
        """The same jobs, built by builder processes while the event loop keeps sending."""
        async for built in builder.build(self.wanted(subscribers, statuses, received)):
            if (job := self._count(built)) is not None:
                yield job

    def _count(self, built: Built) -> Job | None:
        resumed, job = built
        if job is None:
            self.report.empty += 1
            return None
        if isinstance(job, str):
            self.report.rejected += 1
            self.report.problems.append(job)
            return None
        self.report.composed += 1
        self.report.resumed += resumed
        return job

    def wanted(
        self,
        subscribers: Iterator[Subscriber],
        statuses: Mapping[str, DeliveryStatus],
        received: dict[str, frozenset[str]],
    ) -> Iterator[Wanted]:
        """The subscribers this run owes a message: active, in the shard, not final, within --limit."""
        limit = None if self.options.to else self.options.limit
        queued = 0
        for subscriber in subscribers:
            if not subscriber.is_active or not in_shard(subscriber.key, self.options.shard):
                continue
            if subscriber.frequency is not self.options.frequency:
                continue  # a reader of the other schedule: not this issue's audience
            if not subscriber.wants(self.options.frequency, self.issue.info.issue_date):
                self.report.paused += 1
                continue
            status = statuses.get(subscriber.key)
            if status in FINAL_STATUSES:
                self.report.skipped += 1
                continue
            if limit is not None and queued >= limit:
                self.report.pending += 1
                continue
            queued += 1
            resumed = status is DeliveryStatus.SENDING
            yield subscriber, received.get(subscriber.key, frozenset()), resumed

    def build(self, wanted: Wanted) -> Built:
        """One reader's job from the shared build (in this process or a builder process)."""
        subscriber, already_sent, resumed = wanted
        try:
            built = self.builder.build(subscriber, already_sent, to_address=self.options.to)
        except HeaderValueError as exc:
            return resumed, f"{self.options.to or subscriber.email}: {exc}"
        if built is None:
            return resumed, None
        reader = reader_record(built.subscriber, built.picks, built.digest.quoted)
        return resumed, Job(built.subscriber.key, built.message, built.paper_ids, reader=reader)


__all__ = [
    "NewsletterError",
    "SendInterrupted",
    "SendOptions",
    "SendReport",
    "in_shard",
    "run_send",
    "send_test_copy",
]
