"""What one issue is: its id, date window, papers and ranker, shared by send and preview."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from ..errors import ConfigError, SourceError
from ..mail.tokens import (
    FEEDBACK_PATH,
    MANAGE_PATH,
    UNSUBSCRIBE_PATH,
    Purpose,
    ReaderLinks,
    TokenSigner,
    link,
)
from ..models import IssueInfo
from ..ranking.feedback import Taste
from ..ranking.feedbackstore import FeedbackStore
from ..ranking.selection import Ranker
from ..safety.listnames import check_list_name
from ..settings import Settings
from ..sources import load_papers
from ..sources.feeds import fetch_issue_sources
from ..sources.paper import Paper
from ..statuses import Frequency

log = logging.getLogger(__name__)

# Only for mail that never leaves this machine (the embedded outbox, previews, dry runs).
LOCAL_SECRET = "local-outbox-only-not-a-secret"
LOCAL_PORT = 8025  # `newsletter serve`'s default port, so a local trial's links reach it
LOCAL_BASE_URL = f"http://127.0.0.1:{LOCAL_PORT}"
# Previews sign their links with a key derived for them alone: `serve` never honours one.
_PREVIEW_KEY_INFO = b"newsletter preview links, refused by serve"


_ISSUE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_issue_id(issue_id: str) -> str:
    """Issue ids name files and URLs, so they are kept to letters, digits, '.', '_' and '-'."""
    if not _ISSUE_ID.match(issue_id):
        raise ConfigError(
            f"issue id {issue_id!r} is not allowed",
            fix="use letters, digits, '.', '_' and '-' only (at most 64), e.g. 2026-W48",
        )
    return issue_id


# A new issue is named by its week or day, optionally with a label: 2026-W48, 2026-11-28, 2026-W48-extra.
ISSUE_ID_FORMS = "2026-W48 (a week), 2026-11-28 (a day), or either with a label, e.g. 2026-W48-extra"
_ISSUE_NAME = re.compile(
    r"(?P<period>(?P<year>\d{4})-(?:W(?P<week>\d{2})|(?P<month>\d{2})-(?P<day>\d{2})))"
    r"(?:-(?P<label>[A-Za-z0-9][A-Za-z0-9._-]*))?"
)
_WEEK_PREFIX = re.compile(r"(\d{4}-)[Ww](\d{2})(?=-|$)")


def normalised_issue_id(issue_id: str) -> str:
    """The id as the default ids spell it (' 2024-w11 ' is 2024-W11), so one week is one issue."""
    text = issue_id.strip()
    return _WEEK_PREFIX.sub(r"\1W\2", text, count=1)


def issue_period(issue_id: str) -> str | None:
    """The week or day a new-form id names (2024-W11-extra: 2024-W11); None for any other id."""
    found = _ISSUE_NAME.fullmatch(issue_id)
    return found["period"] if found else None


def new_issue_id(issue_id: str) -> str:
    """An id for an issue about to be made: normalised, and a real week or day (2024-W99 is not)."""
    text = check_issue_id(normalised_issue_id(issue_id))
    found = _ISSUE_NAME.fullmatch(text)
    problem = None if found else f"issue id {text!r} names no week or day"
    try:
        if found and found["week"]:
            date.fromisocalendar(int(found["year"]), int(found["week"]), 1)
        elif found:
            date(int(found["year"]), int(found["month"]), int(found["day"]))
    except ValueError:
        problem = f"issue id {text!r} names a week or day the calendar does not have"
    if problem:
        raise ConfigError(problem, fix=f"use {ISSUE_ID_FORMS}")
    return text


def issue_id_for(day: date, frequency: Frequency = Frequency.WEEKLY) -> str:
    """The default issue id: the ISO week of the issue date (2026-W48), or the day for a daily one."""
    if frequency is Frequency.DAILY:
        return day.isoformat()
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def issue_id_of(
    settings: Settings, issue_id: str | None, issue_date: date | None, frequency: Frequency
) -> str:
    """The id a run makes: the one asked for, checked, else its date's week (or day)."""
    if issue_id:
        return new_issue_id(issue_id)
    return issue_id_for(issue_date or settings.issue_date or date.today(), frequency)


@dataclass(frozen=True)
class PreparedIssue:
    """Everything that is the same for every subscriber of one issue, computed once."""

    info: IssueInfo
    ranker: Ranker
    paper_count: int
    problems: tuple[str, ...]
    tastes: Mapping[str, Taste] = field(default_factory=dict)  # address -> the reader's feedback

    @property
    def paper_ids(self) -> frozenset[str]:
        """The ids of the papers this issue can pick from (its window)."""
        return frozenset(p.id for p in self.ranker.papers)

    def taste(self, email: str) -> Taste | None:
        """The reader's 'more/less like this' so far, None if they gave none."""
        return self.tastes.get(email.strip().lower()) if self.tastes else None


def prepare_issue(
    settings: Settings,
    *,
    list_name: str | None = None,
    issue_date: date | None = None,
    issue_id: str | None = None,
    papers: Sequence[Path] = (),
    require_papers: bool = False,
    remember_papers: bool = False,
    frequency: Frequency = Frequency.WEEKLY,
) -> PreparedIssue:
    """Load and rank the issue's papers once; per-subscriber work then only picks from them.

    With `require_papers` (send, archive), a window without a single paper is an error: mailing
    or publishing an empty issue is never what a cron job meant. `remember_papers` (a real send)
    keeps the papers' vectors in the database for the feedback links the digests carry.
    """
    day = issue_date or settings.issue_date or date.today()
    selection = settings.selection
    if frequency is Frequency.DAILY:  # a daily issue covers its own day and is named by it
        selection = selection.model_copy(update={"window_days": 1})
    issue_id = issue_id_of(settings, issue_id, issue_date, frequency)
    window_start = day - timedelta(days=selection.window_days - 1)
    paths = [Path(p) for p in papers] or _configured_papers(settings, issue_id, window_start, day)
    if not paths and settings.sources and not papers:
        raise SourceError(
            f"the configured sources returned no papers for {issue_id} ({window_start} to {day})",
            where=", ".join(f"[[sources]] {s.kind}" for s in settings.sources),
            fix="the feed may be down or empty: run again later, or pass --papers PATH",
        )
    if not paths:
        raise no_papers_configured(settings)
    loaded = load_papers(paths)
    for problem in loaded.problems:
        # The command prints each problem as a "Warning:" line itself: the log file only, not twice.
        log.warning("%s", problem, extra={"shown_to_user": True})
    info = IssueInfo(
        issue_id=issue_id,
        issue_date=day,
        list_name=check_list_name(list_name or settings.default_list),
        title=settings.title,
        window_start=window_start,
        archive_url=archive_url(settings, issue_id),
    )
    ranker = Ranker(loaded.papers, day, selection)
    if require_papers and not ranker.papers:
        raise _empty_window(
            settings, issue_id, (window_start, day), paths, loaded.papers, from_cli=bool(papers)
        )
    tastes = reader_tastes(settings, ranker, info.list_name, remember_papers)
    return PreparedIssue(info, ranker, len(loaded.papers), tuple(loaded.problems), tastes)


def reader_tastes(settings: Settings, ranker: Ranker, list_name: str, remember: bool) -> Mapping[str, Taste]:
    """Load the list's feedback; with `remember`, first keep this issue's paper vectors.

    Once per issue, before builder processes fork: one small table read, so a reader's feedback
    costs nothing per subscriber but a dictionary lookup. A preview or dry run creates no database.
    """
    if ranker.vectors.shape[1] == 0 or not ranker.papers:
        return {}
    if not remember and (settings.selection.feedback_weight <= 0 or not FeedbackStore.exists(settings)):
        return {}
    store = FeedbackStore.open(settings)
    if remember:
        store.remember(ranker.papers, ranker.vectors, ranker.telling_terms())
    if settings.selection.feedback_weight <= 0:
        return {}
    return store.tastes(list_name)


def no_papers_configured(settings: Settings) -> ConfigError:
    """Neither --papers nor `papers` nor [[sources]]: nothing an issue could be made of."""
    return ConfigError(
        "no papers to send",
        where=settings.source_label,
        fix='pass --papers PATH, or set papers = ["examples/"] or [[sources]] in newsletter.toml',
    )


def _configured_papers(settings: Settings, issue_id: str, first: date, last: date) -> list[Path]:
    """Settings' paper files plus the issue's fetched sources (fetched once, then cached)."""
    paths = [settings.path(p) for p in settings.papers]
    if settings.sources:
        paths += fetch_issue_sources(settings, issue_id, first, last)
    return paths


def _empty_window(
    settings: Settings,
    issue_id: str,
    window: tuple[date, date],
    paths: Sequence[Path],
    loaded: Sequence[Paper],
    *,
    from_cli: bool,
) -> SourceError:
    """Say which window is empty, where its papers came from and how fresh they are."""
    newest = max((p.listed_at.date() for p in loaded), default=None)
    what = (
        f"issue {issue_id} has no papers: none of the {len(loaded)} loaded is in its window"
        f" {window[0]} to {window[1]}"
    )
    if newest is not None:
        what += f" (the newest is from {newest})"
    origin = ", ".join(_shown(settings, p) for p in paths) or "no files"
    where = f"papers from {origin} (named by {'--papers' if from_cli else settings.source_label})"
    where += f"; {_last_fetched(settings)}"
    fix = "fetch this week's papers (`newsletter papers fetch`, or [[sources]] in newsletter.toml)"
    if newest is not None:
        fix += f", or pass --date {newest} for the papers you have"
    return SourceError(what, where=where, fix=fix)


def _shown(settings: Settings, path: Path) -> str:
    """A path as the user wrote it: relative to the config folder when inside it."""
    try:
        return str(path.relative_to(settings.config_dir))
    except ValueError:
        return str(path)


def _last_fetched(settings: Settings) -> str:
    """When any [[sources]] feed was last fetched (the newest file in the cache)."""
    if not settings.sources:
        return "no [[sources]] are configured, so nothing was fetched"
    cache = settings.path(settings.cache_dir)
    stamps = [f.stat().st_mtime for f in cache.glob("*/*.jsonl")] if cache.is_dir() else []
    if not stamps:
        return f"the [[sources]] were never fetched into {_shown(settings, cache)}"
    when = datetime.fromtimestamp(max(stamps), UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"the [[sources]] were last fetched {when}"


def archive_url(settings: Settings, issue_id: str) -> str | None:
    """The issue's "view in browser" page on `newsletter serve`.

    Under base_url when serve is public; in a local trial its links point at serve on this machine,
    so the page is linked there too, once `newsletter archive` wrote it (never a link to nothing).
    """
    if settings.base_url:
        return f"{settings.base_url.rstrip('/')}/archive/{issue_id}.html"
    if (settings.path(settings.archive_dir) / f"{issue_id}.html").is_file():
        return f"{LOCAL_BASE_URL}/archive/{issue_id}.html"
    return None


class LinkSigner:
    """Signs the links of a digest; mail that stays on this machine may use a local stand-in secret."""

    def __init__(self, secret: str, base_url: str, previous: str | None = None) -> None:
        self.secret = secret
        self.base_url = base_url
        self.tokens = TokenSigner(secret, [previous or ""])

    @classmethod
    def for_run(cls, settings: Settings, local_only: bool) -> LinkSigner:
        where = settings.source_label
        if settings.secret and settings.base_url:
            return cls(settings.secret, settings.base_url, settings.secret_previous)
        if local_only:
            return cls(settings.secret or LOCAL_SECRET, settings.base_url or LOCAL_BASE_URL)
        if not settings.secret:
            raise ConfigError(
                "NEWSLETTER_SECRET is not set, so unsubscribe links cannot be signed",
                where=where,
                fix="set NEWSLETTER_SECRET to a long random string and keep it the same between runs",
            )
        raise ConfigError(
            "base_url is not set, so unsubscribe links have nowhere to point",
            where=where,
            fix="set NEWSLETTER_BASE_URL to the public https address of `newsletter serve`",
        )

    @classmethod
    def for_preview(cls, settings: Settings) -> LinkSigner:
        """Links that look like the real ones but no `serve` accepts: a preview shows every reader's
        message, and its viewer must not be able to unsubscribe or manage any of them."""
        signer = cls.for_run(settings, local_only=True)
        # Message-IDs keep the real secret (a replay compares them with the ledger's); tokens do not.
        key = hmac.new(signer.secret.encode("utf-8"), _PREVIEW_KEY_INFO, hashlib.sha256).hexdigest()
        signer.tokens = TokenSigner(key)
        return signer

    def reader(self, list_name: str, email: str) -> DigestLinks:
        """Every link of one reader's digest, minted from one seal."""
        return DigestLinks(self.base_url, self.tokens.reader_links(list_name, email))


class DigestLinks:
    """One reader's links in a digest: unsubscribe, preferences, and feedback per paper."""

    def __init__(self, base_url: str, tokens: ReaderLinks) -> None:
        self.base_url = base_url
        self.tokens = tokens
        self.unsubscribe_token = tokens.token(Purpose.UNSUBSCRIBE)
        self.url = link(base_url, UNSUBSCRIBE_PATH, self.unsubscribe_token)

    def manage_url(self) -> str:
        """The link to the reader's preferences page."""
        return link(self.base_url, MANAGE_PATH, self.tokens.token(Purpose.MANAGE))

    def feedback_url(self, paper_id: str) -> str:
        """The reader's link for one paper's "more/less like this" ('' for an id too long to seal)."""
        if len(paper_id.encode("utf-8")) > 255:
            return ""
        return link(self.base_url, FEEDBACK_PATH, self.tokens.token(Purpose.FEEDBACK, paper_id))
