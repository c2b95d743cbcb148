"""One `send` run: plan every active subscriber's digest, deliver it, and account for everyone."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

from ..delivery import Dispatcher, Job, channel_for, delivery_target, server_label
from ..errors import LedgerError, NewsletterError
from ..mail.compose import HeaderValueError
from ..models import Subscriber
from ..safety.listnames import check_list_name
from ..safety.secretkey import require_strong_secret
from ..settings import Settings
from ..statuses import FINAL_STATUSES, Channel, DeliveryStatus, Frequency, SubscriberStatus
from ..store import open_database
from ..store.deliveries import DeliveryLedger
from ..store.history import delivered_issues, read_issue
from ..store.opening import existing_database
from ..store.sendqueue import issue_senders
from ..store.subscribers import SubscriberStore
from ..subscribers import open_list
from ..subscribers.csvfile import missing_list_error
from ..subscribers.signup import PENDING_DAYS, drop_stale_pending
from ..subscribers.writeback import check_not_lost, write_back
from .build import DigestBuilder
from .buildpool import ParallelBuilder
from .claims import ClaimedRun, claimed_run
from .interrupts import stopped_by
from .issue import (
    LinkSigner,
    PreparedIssue,
    issue_id_of,
    issue_period,
    no_papers_configured,
    prepare_issue,
)
from .report import issue_report, log_lines, report_command
from .schedules import LeftOut, served_recently
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
    new_ledger: bool = False  # start over although the list's CSV says readers got earlier issues
    another_issue: bool = False  # a second issue for a week (or day) the list already got one for
    resend_held: bool = False  # the operator's word: send the held deliveries again, same Message-ID

    @property
    def recorded(self) -> bool:
        """A real run: a dry run and a --to test copy record nothing (and claim nothing)."""
        return not (self.dry_run or self.to)


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
    other_frequency: int = 0  # active readers of the other schedule: not this issue's audience
    left_out: str | None = None  # said when no recent run of that schedule served them
    dry_run: bool = False
    duration_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    # Who did not get the issue (failed, deferred, in flight, unsubscribed), first few; `report` has all.
    not_delivered: list[dict[str, object]] = field(default_factory=list)
    not_delivered_total: int = 0
    withdrawn: set[str] = field(default_factory=set, repr=False)  # left mid-run
    # Every sender of the issue, this one included (hosts sharing PostgreSQL, --workers).
    sender: str = ""  # this one's id: host:pid:random, as `owner` in the ledger
    held: int = 0  # handed over by a sender that fell silent, held for the operator (on_uncertain)
    complete: bool = False  # nothing is left to send or to wait for, by any sender
    issue_counts: dict[str, int] = field(default_factory=dict)  # the issue's rows by status
    senders: list[dict[str, object]] = field(default_factory=list)

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
        extras.append((self.held, "held, maybe delivered (send them with --resend-held)"))
        line += "".join(f", {count} {what}" for count, what in extras if count)
        if self.complete and not (self.sent or self.failed or self.deferred):
            line += ", the issue was already complete: nothing left to send"
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


OnOutcome = Callable[[str, DeliveryStatus], None]  # told each reader's final outcome (the progress line)


@dataclass(frozen=True)
class SendRun:
    """What the steps of one run share, so each step takes the run instead of passing values on."""

    settings: Settings
    options: SendOptions
    issue: PreparedIssue
    signer: LinkSigner
    store: SubscriberStore
    report: SendReport
    on_outcome: OnOutcome | None


def run_send(settings: Settings, options: SendOptions, on_outcome: OnOutcome | None = None) -> SendReport:
    """Send one issue to one list; safe to run again at any time, it resumes.

    The steps, in order: prepare the issue, plan each reader's digest, open the ledger and join
    the issue's senders (any number may run at once, on any host sharing the database), deliver
    what this one claims, report.
    """
    started = time.monotonic()
    with _log_stops(started):
        run = _prepare(settings, options, _check_inputs(settings, options), on_outcome)
        with _plan(run) as planner, _open_ledger(run, planner) as ledger:
            _deliver(run, planner, ledger)
        if options.recorded and run.store.csv_path is not None:
            write_back(run.store, run.store.csv_path)  # a safe point: the file shows the list as it is
    _report(run, started)
    return run.report


@contextmanager
def _log_stops(started: float) -> Iterator[None]:
    """A run that stops says so in the log file too, with how long it ran (the CLI tells the user)."""
    try:
        yield
    except NewsletterError as exc:
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


def _check_inputs(settings: Settings, options: SendOptions) -> str:
    """The list's name, once it is known there are papers and a list: a folder with neither is a
    mistake, so nothing is created there."""
    list_name = check_list_name(options.list_name or settings.default_list)
    if not (options.papers or settings.papers or settings.sources):
        raise no_papers_configured(settings)
    path, place = settings.list_path(list_name), settings.places.database()
    if not path.is_file() and not place.exists():
        raise missing_list_error(path)  # no file and no database: nothing to open (or create)
    return list_name


def _prepare(
    settings: Settings, options: SendOptions, list_name: str, on_outcome: OnOutcome | None
) -> SendRun:
    """The issue's papers loaded and ranked once, the list ready to stream, the report begun."""
    embedded = settings.smtp.is_embedded
    signer = LinkSigner.for_run(settings, local_only=embedded or options.dry_run or _local_trial(settings))
    if not (embedded or options.dry_run or settings.smtp.is_loopback):
        # Links in mail that leaves this machine are public: a weak key lets anyone forge them.
        require_strong_secret(
            settings.secret, f"mail to {settings.smtp.host}:{settings.smtp.port}", settings.source_label
        )
    channel = channel_for(settings.smtp)
    if not (options.to or options.another_issue):  # before papers are loaded: refused at once
        issue_id = issue_id_of(settings, options.issue_id, options.issue_date, options.frequency)
        _refuse_a_second_issue(settings, issue_id, list_name, channel)
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
    # A hand edit of the CSV is merged in; a dry run leaves no database behind.
    store = open_list(settings.places, issue.info.list_name, look_only=not options.recorded)
    if not store.exists():
        raise store.missing_error()
    if options.recorded:
        _tidy_list(store)
    report = SendReport(
        issue=issue.info.issue_id,
        list_name=issue.info.list_name,
        channel=channel,
        server=server_label(settings.smtp),
        dry_run=options.dry_run,
        problems=list(issue.problems),
        frequency=options.frequency.value,
    )
    return SendRun(settings, options, issue, signer, store, report, on_outcome)


def _refuse_a_second_issue(settings: Settings, issue_id: str, list_name: str, channel: str) -> None:
    """A new id for a week (or day) the list already got an issue for would mail everyone twice
    that week: refused unless --another-issue says it is meant (2024-w11 after 2024-W11 was)."""
    period = issue_period(issue_id)
    db = existing_database(settings.places.database())  # a dry run creates nothing
    if period is None or db is None:
        return
    found = delivered_issues(db, list_name, channel, period)
    earlier = sorted(issue for issue in found if issue != issue_id and issue_period(issue) == period)
    if earlier:
        raise LedgerError(
            f"list '{list_name}' already got issue {earlier[0]} ({found[earlier[0]]} delivered), so "
            f"{issue_id} would be a second digest for {period}",
            where=db.place.shown,
            fix=f"pass --issue {earlier[0]} to resume that issue, or --another-issue to send {issue_id}"
            " as well",
        )


@contextmanager
def _plan(run: SendRun) -> Iterator[DigestPlanner]:
    """Who is owed a digest, and the builder that makes it (built once per issue).

    From here on an interrupt is reported with what was delivered and what is still in flight.
    """
    planner = DigestPlanner(run.settings, run.issue, run.signer, run.options, run.report)
    try:
        with _builder_processes(run, planner):
            yield planner
    except KeyboardInterrupt:
        raise SendInterrupted(run.report, _in_flight(run)) from None


@contextmanager
def _builder_processes(run: SendRun, planner: DigestPlanner) -> Iterator[None]:
    """A recorded run of a big list builds its digests in forked processes, forked now: before
    the ledger is opened, so no child holds its connection."""
    active = run.store.counts()[SubscriberStatus.ACTIVE] if run.options.recorded else 0
    processes = ParallelBuilder.processes_for(run.settings, active) if active else 0
    if not processes:
        yield
        return
    run.store.db.dispose()  # and no pooled database connection either
    planner.pool = ParallelBuilder(planner.build, processes)
    try:
        yield
    finally:
        planner.pool.close()
        planner.pool = None


@contextmanager
def _open_ledger(run: SendRun, planner: DigestPlanner) -> Iterator[ClaimedRun | None]:
    """A recorded run's ledger, holding the issue's snapshot first, and its place among the
    issue's senders; None when nothing is recorded.

    Room is set aside beside a SQLite file for the servers' last answers, should the disk fill.
    """
    if not run.options.recorded:
        yield None
        return
    report, store = run.report, run.store
    if report.channel != Channel.OUTBOX and store.csv_path is not None:  # a local trial may start over
        check_not_lost(store, store.csv_path, start_over=run.options.new_ledger)
    db = open_database(run.settings.places.database())
    ledger = DeliveryLedger(db, report.issue, report.list_name, report.channel)
    try:
        ledger.reserve()
        planner.record_snapshot(ledger)
        options = run.options
        with claimed_run(run.settings, ledger, store, limit=options.limit, shard=options.shard) as claimed:
            yield claimed
    finally:
        ledger.close()


def _deliver(run: SendRun, planner: DigestPlanner, claimed: ClaimedRun | None) -> None:
    """Compose every digest still owed; a dry run stops there, a --to copy is sent unrecorded."""
    if claimed is not None:
        _deliver_claimed(run, planner, claimed)
        return
    statuses, received = _owed(run)
    subscribers = run.store.iter_subscribers()
    if run.options.dry_run:
        for _ in planner.jobs(subscribers, statuses, received):
            pass
        return
    _dispatch(run.settings, planner.stream(subscribers, statuses, received), run.report)


def _deliver_claimed(run: SendRun, planner: DigestPlanner, claimed: ClaimedRun) -> None:
    """Queue who is owed, then send the batches this sender claims until the issue is done."""
    still_wanted = _still_wanted(run.store)  # from before the first page
    received = claimed.ledger.papers_received_before(within=run.issue.paper_ids)
    if run.options.resend_held:
        claimed.queue.resend_held()
    claimed.fan_out(
        lambda readers, statuses: (s for s, _ in planner.wanted(readers, statuses, {}, limited=False))
    )
    planner.passed_over = claimed.pass_over
    while True:  # again while other senders give up rows (or die holding them)
        _dispatch(
            run.settings,
            planner.stream(claimed.subscribers(), claimed.statuses, received),
            run.report,
            ledger=claimed.ledger,
            still_wanted=still_wanted,
            on_outcome=run.on_outcome,
        )
        if not claimed.more_to_claim():
            break
    run.report.unsubscribed += len(claimed.withdrawn)
    run.report.withdrawn.update(claimed.withdrawn)
    if run.options.limit is not None:
        run.report.pending = claimed.queue.remaining()
    _add_senders(run.report, claimed)


def _add_senders(report: SendReport, claimed: ClaimedRun) -> None:
    """What every sender of the issue did, for --json and the summary: this run is one of many."""
    queue = claimed.queue
    senders = issue_senders(queue.db, queue.issue, queue.list_name, queue.channel)
    counts = claimed.ledger.counts()  # every row, claimed by anyone or by nobody
    report.sender = queue.owner
    report.senders = [asdict(sender) for sender in senders]
    report.issue_counts = counts
    report.held = counts.get(DeliveryStatus.HELD, 0)
    unfinished = (DeliveryStatus.QUEUED, DeliveryStatus.SENDING, DeliveryStatus.DEFERRED, DeliveryStatus.HELD)
    report.complete = not any(counts.get(status) for status in unfinished)


def _report(run: SendRun, started: float) -> None:
    """Time the run, name who did not get the issue (in --json and the log file), log the summary."""
    report = run.report
    report.duration_seconds = round(time.monotonic() - started, 3)
    if run.options.recorded and (report.failed or report.deferred or report.unsubscribed):
        _name_the_undelivered(run.settings, report)
    if report.other_frequency and not run.options.to:
        report.left_out = _left_out(run)
    log.info("%s", report.summary())


def _left_out(run: SendRun) -> str | None:
    """Whether the readers of the other schedule are served by a run of their own (the ledger says)."""
    other = next(f for f in Frequency if f is not run.options.frequency)
    report = run.report
    db = existing_database(run.settings.places.database())
    day = run.issue.info.issue_date
    if served_recently(db, report.list_name, report.channel, other, day):
        return None
    return str(LeftOut(report.list_name, other, report.other_frequency, day))


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


class SendInterrupted(Exception):
    """Ctrl-C or SIGTERM during a run: what was delivered, and what the next run sends again."""

    def __init__(self, report: SendReport, in_flight: int) -> None:
        self.report = report
        self.in_flight = in_flight  # 'sending' rows: queued, or handed over with no reply recorded
        super().__init__(self.counts())

    def counts(self) -> str:
        return f"{self.report.sent} delivered in this run, {self.in_flight} in flight"


def _in_flight(run: SendRun) -> int:
    """Rows left 'sending': the next run sends them again, with the same Message-ID."""
    if not run.options.recorded:
        return 0
    report = run.report
    rows = read_issue(
        open_database(run.settings.places.database()), report.issue, report.list_name, report.channel
    )
    return sum(1 for row in rows if row.status == DeliveryStatus.SENDING)


def _tidy_list(store: SubscriberStore) -> None:
    """Before a recorded run reads the list: drop sign-ups nobody confirmed within a week (never
    mailed anyway)."""
    if not store.exists():
        return
    dropped = drop_stale_pending(store)
    if dropped:
        log.info(
            "dropped %d sign-ups to %s nobody confirmed within %d days", dropped, store.name, PENDING_DAYS
        )


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


def _owed(run: SendRun) -> tuple[Mapping[str, DeliveryStatus], dict[str, frozenset[str]]]:
    """For an unrecorded run (a dry run, a test copy): what the ledger says, read without
    creating or changing anything: each reader's status in this issue, the papers they had before."""
    within = run.issue.paper_ids
    if run.options.to:
        return {}, {}  # a test copy: the first reader with something to read, whatever they had
    db = existing_database(run.settings.places.database())  # a dry run creates and changes nothing
    if db is None:
        return {}, {}
    report = run.report
    peek = DeliveryLedger(db, report.issue, report.list_name, report.channel)
    return peek.statuses(), peek.papers_received_before(within=within)


def _still_wanted(store: SubscriberStore) -> Callable[[str], bool]:
    """Asked before each message: has this reader left the list since the run began reading it?"""
    return store.watch().still_wanted


def send_test_copy(settings: Settings, job: Job, list_name: str, issue_id: str) -> SendReport:
    """`send --to` for one message built elsewhere (the preview page): delivered, never recorded."""
    started = time.monotonic()
    report = SendReport(
        issue=issue_id,
        list_name=list_name,
        channel=channel_for(settings.smtp),
        server=server_label(settings.smtp),
    )
    _dispatch(settings, iter([job]), report)
    report.duration_seconds = round(time.monotonic() - started, 3)
    log.info("test copy of %s to %s: %s", issue_id, job.message.recipient, report.summary())
    return report


def _dispatch(
    settings: Settings,
    jobs: Iterator[Job] | AsyncIterator[Job],
    report: SendReport,
    *,
    ledger: DeliveryLedger | None = None,
    still_wanted: Callable[[str], bool] | None = None,
    on_outcome: OnOutcome | None = None,
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


@dataclass(frozen=True)
class Rejected:
    """A reader no message could be composed for: an address or name no header can carry."""

    email: str
    reason: str
    key: str = ""

    def __str__(self) -> str:
        return f"{self.email}: {self.reason}"


@dataclass(frozen=True)
class NothingNew:
    """A reader none of whose topics matched anything new: no mail."""

    key: str


Wanted = tuple[Subscriber, frozenset[str]]  # who, and the papers they already had
Built = Job | Rejected | NothingNew


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
        self.pool: ParallelBuilder | None = None  # builder processes, when the list is big enough
        # Told each reader this run passes over without a message (a claimed run gives up the row).
        self.passed_over: Callable[[str], None] = _nobody

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

    def stream(
        self,
        subscribers: Iterator[Subscriber],
        statuses: Mapping[str, DeliveryStatus],
        received: dict[str, frozenset[str]],
    ) -> Iterator[Job] | AsyncIterator[Job]:
        """The jobs, built in this process, or by the builder processes while the loop sends."""
        if self.pool is None:
            return self.jobs(subscribers, statuses, received)
        return self.parallel_jobs(subscribers, statuses, received, self.pool)

    def jobs(
        self,
        subscribers: Iterator[Subscriber],
        statuses: Mapping[str, DeliveryStatus],
        received: dict[str, frozenset[str]],
    ) -> Iterator[Job]:
        """Yield one job per active subscriber still owed this issue, in file order."""
        for built in map(self.build, self.wanted(subscribers, statuses, received)):
            if (job := self._count(built, statuses)) is not None:
                yield job
                if self.options.to:
                    return  # one test copy: the first subscriber with something to read

    async def parallel_jobs(
        self,
        subscribers: Iterator[Subscriber],
        statuses: Mapping[str, DeliveryStatus],
        received: dict[str, frozenset[str]],
        pool: ParallelBuilder,
    ) -> AsyncIterator[Job]:
        """The same jobs, built by builder processes while the event loop keeps sending."""
        async for built in pool.build(self.wanted(subscribers, statuses, received)):
            if (job := self._count(built, statuses)) is not None:
                yield job

    def _count(self, built: Built, statuses: Mapping[str, DeliveryStatus]) -> Job | None:
        """Count what was built into the report; the job, if there is one to send."""
        if isinstance(built, NothingNew):
            self.report.empty += 1
            self.passed_over(built.key)
            return None
        if isinstance(built, Rejected):
            self.report.rejected += 1
            self.report.problems.append(str(built))
            self.passed_over(built.key)
            return None
        self.report.composed += 1
        # 'sending' from an earlier run that stopped: this one sends it again, same Message-ID.
        self.report.resumed += statuses.get(built.key) is DeliveryStatus.SENDING
        return built

    def wanted(
        self,
        subscribers: Iterator[Subscriber],
        statuses: Mapping[str, DeliveryStatus],
        received: dict[str, frozenset[str]],
        *,
        limited: bool = True,
    ) -> Iterator[Wanted]:
        """The subscribers this run owes a message: active, in the shard, not final, within --limit
        (unless not `limited`: who is owed at all, queued for every sender)."""
        limit = None if self.options.to or not limited else self.options.limit
        queued = 0
        for subscriber in subscribers:
            owed = self._is_owed(subscriber, statuses)
            if owed and (limit is None or queued < limit):
                queued += 1
                yield subscriber, received.get(subscriber.key, frozenset())
                continue
            self.report.pending += owed  # owed, beyond --limit
            self.passed_over(subscriber.key)

    def _is_owed(self, subscriber: Subscriber, statuses: Mapping[str, DeliveryStatus]) -> bool:
        """Active, in the shard, of this schedule, not paused, not final (counted in the report)."""
        if not subscriber.is_active or not in_shard(subscriber.key, self.options.shard):
            return False
        if subscriber.frequency is not self.options.frequency:
            self.report.other_frequency += 1  # a reader of the other schedule: not this issue's
            return False
        if not subscriber.wants(self.options.frequency, self.issue.info.issue_date):
            self.report.paused += 1
            return False
        if statuses.get(subscriber.key) in FINAL_STATUSES:
            self.report.skipped += 1
            return False
        return True

    def build(self, wanted: Wanted) -> Built:
        """One reader's job from the shared build (in this process or a builder process)."""
        subscriber, already_sent = wanted
        try:
            built = self.builder.build(subscriber, already_sent, to_address=self.options.to)
        except HeaderValueError as exc:
            return Rejected(self.options.to or subscriber.email, str(exc), subscriber.key)
        if built is None:
            return NothingNew(subscriber.key)
        reader = reader_record(built.subscriber, built.picks, built.digest.quoted)
        return Job(built.subscriber.key, built.message, built.paper_ids, reader=reader)


def _nobody(_key: str) -> None:
    """No one to tell: only a run that claims rows gives up the ones it passes over."""


__all__ = [
    "NewsletterError",
    "SendInterrupted",
    "SendOptions",
    "SendReport",
    "in_shard",
    "run_send",
    "send_test_copy",
]
