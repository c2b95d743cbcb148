"""One preview server's state: settings reloaded on change, the issue loaded once, messages on demand.

Everything here is plain Python (no HTTP), so the page's answers can be tested and reused by
the CLI. A lock serialises builds: the server runs them in worker threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path

from ..delivery import Job
from ..errors import ConfigError, NewsletterError, SubscriberError
from ..models import Subscriber
from ..pipeline.issue import LinkSigner, PreparedIssue, prepare_issue
from ..pipeline.previewfiles import ANONYMOUS, PreviewResult, build_preview
from ..pipeline.replay import ReplayedIssue, replay_delivery
from ..pipeline.send import SendReport, send_test_copy
from ..render.digest import template_dirs
from ..settings import Settings, load_settings
from ..store.history import IssueRecord, recorded_issues
from ..store.opening import existing_database
from ..subscribers import RowError, check_email, open_list
from .colorscheme import Scheme, force_scheme
from .errors import describe_error
from .facts import MessageFacts, message_facts

SEARCH_LIMIT = 50


@dataclass(frozen=True)
class Selection:
    """What the page asks for: a list, a reader (None: no keywords) and an issue (None: current)."""

    list_name: str | None = None
    email: str | None = None
    issue_id: str | None = None
    as_sent: bool = False  # the issue as the ledger recorded it, even when it is the current one


@dataclass(frozen=True)
class Shown:
    """One message as the page shows it: the build, its facts and anything the designer should know."""

    result: PreviewResult
    facts: MessageFacts
    notes: tuple[str, ...]
    replayed: ReplayedIssue | None = None

    def as_json(self) -> dict[str, object]:
        """The page's view: both colour schemes, the text part, headers, facts and notes."""
        result = self.result
        html = result.digest.html
        return {
            "ok": True,
            "issue": result.issue.issue_id,
            "list": result.issue.list_name,
            "subscriber": None if result.subscriber is ANONYMOUS else result.subscriber.email,
            "keywords": list(result.subscriber.keywords),
            "subject": result.digest.subject,
            "html": {scheme.value: force_scheme(html, scheme) for scheme in Scheme},
            "text": result.digest.text,
            "headers": message_headers(result.message),
            "papers": [{"id": p.id, "title": p.title, "url": p.url} for p in result.papers],
            "facts": self.facts.as_dict(),
            "notes": list(self.notes),
            "replayed": self.replayed is not None,
            "file_stem": result.file_stem,
        }


def message_headers(message: bytes) -> list[tuple[str, str]]:
    """The top-level headers, unfolded and decoded, in order."""
    parsed = BytesHeaderParser(policy=compat32).parsebytes(message)
    return [
        (name, str(make_header(decode_header(" ".join(str(value).split())))))
        for name, value in parsed.items()
    ]


class PreviewSession:
    """Answers the page: lists, issues, readers and messages; forgets everything when files change."""

    def __init__(self, settings: Settings, loader: Callable[[Path], Settings] = load_settings) -> None:
        self._settings = settings
        self._config = settings.config_file
        self._loader = loader
        self._lock = threading.RLock()
        self._error: NewsletterError | None = None
        self._issues: dict[str | None, PreparedIssue] = {}
        self.version = 0

    # --- what is watched, and forgetting on change ------------------------------------------

    def settings(self) -> Settings:
        """The settings as the file says now; while the file is broken, its error."""
        with self._lock:
            if self._error is not None:
                raise self._error
            return self._settings

    def reload(self, config_changed: bool = True) -> None:
        """Files changed: templates are read afresh by every build anyway; a changed config is
        read again and drops the loaded issues (papers, window and ranking may differ)."""
        with self._lock:
            self.version += 1
            if not config_changed and self._error is None:
                return
            self._issues.clear()
            if self._config is None:
                return
            try:
                self._settings = self._loader(self._config)
                self._error = None
            except NewsletterError as exc:
                self._error = exc  # shown on the page until the file is fixed

    def watched(self) -> tuple[list[Path], list[Path]]:
        """(folders watched with their subfolders, single files): templates, CSS and the config."""
        settings = self._settings  # the last good ones, even while the file is broken
        folders = [d for d in template_dirs(settings) if d.is_dir()]
        files = [self._config] if self._config is not None else []
        own = settings.path(settings.templates_dir)
        if not own.is_dir():
            files.append(own)  # named but not made yet: its creation must move the watcher there
        return folders, files

    # --- pickers -----------------------------------------------------------------------------

    def lists(self) -> list[str]:
        """The list names in the subscribers folder, the default one first."""
        settings = self.settings()
        folder = settings.path(settings.subscribers_dir)
        names = sorted(p.stem for p in folder.glob("*.csv")) if folder.is_dir() else []
        default = settings.default_list
        return [default, *(n for n in names if n != default)]

    def current_issue(self, list_name: str | None) -> str:
        """The id of the issue `send` would send now."""
        with self._lock:
            return self._prepared(self.settings(), list_name).info.issue_id

    def issues(self, list_name: str | None) -> list[IssueRecord]:
        """Issues the ledger has for this list, newest first (the current one is always offered too)."""
        settings = self.settings()
        db = existing_database(settings.places.database())
        return [] if db is None else recorded_issues(db, list_name or settings.default_list)

    def search(self, list_name: str | None, query: str) -> list[Subscriber]:
        """Readers whose address, name or a keyword contains the query; active readers first."""
        settings = self.settings()
        store = open_list(settings.places, list_name, look_only=True)
        if not store.exists():
            return []
        needle = " ".join(query.lower().split())[:200]
        found: list[Subscriber] = []
        for subscriber in store.iter_subscribers():
            haystack = " ".join([subscriber.email, subscriber.name, *subscriber.keywords]).lower()
            if needle in haystack:
                found.append(subscriber)
        found.sort(key=lambda s: not s.is_active)
        return found[:SEARCH_LIMIT]

    # --- messages ----------------------------------------------------------------------------

    def _prepared(self, settings: Settings, list_name: str | None) -> PreparedIssue:
        issue = self._issues.get(list_name)
        if issue is None:
            issue = self._issues[list_name] = prepare_issue(settings, list_name=list_name)
        return issue

    def _build(
        self, selection: Selection, to: str | None = None
    ) -> tuple[PreviewResult, ReplayedIssue | None]:
        with self._lock:
            settings = self.settings()
            signer = LinkSigner.for_preview(settings)  # links no `serve` honours
            current = self._prepared(settings, selection.list_name)
            if not selection.as_sent and selection.issue_id in (None, "", current.info.issue_id):
                result = build_preview(
                    settings, None, selection.email, None, prepared=current, signer=signer, to_address=to
                )
                return result, None
            replayed = replay_delivery(
                settings,
                selection.list_name,
                selection.issue_id or current.info.issue_id,
                selection.email,
                signer=signer,
                to=to,
            )
            return replayed.result, replayed

    def show(self, selection: Selection) -> Shown:
        """One reader's message for one issue, built the way `send` builds it."""
        result, replayed = self._build(selection)
        notes = list(result.problems)
        if not result.paper_ids and replayed is None and not self.settings().send_empty_digests:
            notes.append(
                "Nothing matches this reader this week: `send` mails them nothing (send_empty_digests)."
            )
        if replayed is not None:
            notes.extend(replayed.notes)
        facts = message_facts(
            result.digest.subject, result.digest.html, result.message, len(result.paper_ids)
        )
        return Shown(result, facts, tuple(notes), replayed)

    def message(self, selection: Selection) -> PreviewResult:
        """Just the built message, for the .eml download and the spam check."""
        return self._build(selection)[0]

    def smtp_ready(self) -> bool:
        """'Send me this' needs a real server: the embedded outbox would only file it locally."""
        return not self.settings().smtp.is_embedded

    def send_copy(self, selection: Selection, to: str) -> SendReport:
        """Send the shown message to one address, exactly as `send --to` would, recording nothing."""
        settings = self.settings()
        if not self.smtp_ready():
            raise ConfigError(
                "'send me this' needs an SMTP server, but smtp.host is 'embedded'",
                where=settings.source_label,
                fix="set [smtp] host (and port, username) in newsletter.toml, then reload the page",
            )
        address = self._allowed_recipient(settings, to)
        result, _ = self._build(selection, to=address)
        job = Job(result.subscriber.key, result.composed, result.paper_ids)
        return send_test_copy(settings, job, result.issue.list_name, result.issue.issue_id)

    def send_to(self) -> list[str]:
        """The addresses "send me this" may mail: the owner's own, as the config names them."""
        settings = self.settings()
        named = [*settings.preview.send_to, settings.sender.reply_to or "", settings.sender.address]
        return list(dict.fromkeys(a.strip().lower() for a in named if a.strip()))

    def _allowed_recipient(self, settings: Settings, to: str) -> str:
        """`to`, checked, when the owner configured it: the page must not mail strangers."""
        try:
            address = check_email(to)
        except RowError as exc:
            raise SubscriberError(str(exc), where="the address to send to", fix="type one address") from None
        if address.lower() not in self.send_to():
            raise ConfigError(
                f"'send me this' mails only the addresses the config names, not {address}",
                where=settings.source_label,
                fix=f'add it to [preview] send_to = ["{address}"] in newsletter.toml, then reload the page',
            )
        return address


__all__ = ["NewsletterError", "PreviewSession", "Selection", "Shown", "describe_error"]
