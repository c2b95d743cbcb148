"""The current issue as the web pages show it: the papers a set of keywords would pick."""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass

from ..errors import NewsletterError
from ..pipeline.issue import PreparedIssue, prepare_issue
from ..render.text import safe_url
from ..settings import Settings
from ..statuses import Frequency

log = logging.getLogger(__name__)
REFRESH_THREAD = "newsletter-papers-refresh"  # named, so a test can wait for it to end
REFRESH_SECONDS = 600.0  # the issue is reloaded at most this often (papers change once a day)
BLURB_WORDS = 32
_Key = tuple[str, Frequency]  # one issue per list and frequency: a daily one covers one day


@dataclass(frozen=True)
class PaperLine:
    """A paper as a web page lists it: title, link and the start of the abstract."""

    title: str
    url: str
    blurb: str


class IssueSample:
    """The current issue of a list (weekly or daily), kept REFRESH_SECONDS; never fetched while a page waits.

    With [[sources]], loading the issue may fetch feeds over the network, and a feed that accepts
    and never answers held every page that shows papers (and, holding the worker threads, the
    one-click unsubscribe too). So such an issue is loaded in a background thread, one per list
    at a time, and pages get the last good copy meanwhile (none at first: they show no papers).
    Papers from local files only are loaded in place, as nothing there waits on a network.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._issues: dict[_Key, tuple[float, PreparedIssue | None]] = {}
        self._refreshing: set[_Key] = set()

    def issue(self, list_name: str, frequency: Frequency = Frequency.WEEKLY) -> PreparedIssue | None:
        """The prepared issue, or None when there are no papers to show (never an error page)."""
        key = (list_name, frequency)
        with self._lock:
            loaded = self._issues.get(key)
            last = loaded[1] if loaded is not None else None
            if loaded is not None and time.monotonic() - loaded[0] < REFRESH_SECONDS:
                return last
            if not self.settings.sources:
                self._issues[key] = (time.monotonic(), self._prepared(key, last))
                return self._issues[key][1]
            if key not in self._refreshing:
                self._refreshing.add(key)
                threading.Thread(
                    target=self._refresh, args=(key, last), name=REFRESH_THREAD, daemon=True
                ).start()
            return last

    def _prepared(self, key: _Key, last: PreparedIssue | None) -> PreparedIssue | None:
        """The issue prepared now; when that fails, the last good copy."""
        list_name, frequency = key
        try:
            return prepare_issue(self.settings, list_name=list_name, frequency=frequency)
        except NewsletterError as exc:
            log.warning("no new papers to show on the web pages: %s", exc.message)
            return last

    def _refresh(self, key: _Key, last: PreparedIssue | None) -> None:
        """The background load: the fetch runs outside the lock, so no request waits for it."""
        try:
            issue = self._prepared(key, last)
            with self._lock:
                self._issues[key] = (time.monotonic(), issue)
        finally:
            with self._lock:
                self._refreshing.discard(key)

    def picks(
        self,
        list_name: str,
        keywords: tuple[str, ...] | list[str],
        frequency: Frequency = Frequency.WEEKLY,
    ) -> list[PaperLine]:
        """What the reader's next issue (this week's, or today's for a daily reader) would send them."""
        issue = self.issue(list_name, frequency)
        if issue is None:
            return []
        picked = issue.ranker.rank(list(keywords), top=self.settings.selection.top_n)
        return [
            PaperLine(p.paper.title, safe_url(p.paper.url) or "#", _blurb(p.paper.abstract)) for p in picked
        ]

    def examples(self, list_name: str, count: int = 3) -> list[str]:
        """Keyword examples from this week's top papers (their listed keywords, most common first)."""
        issue = self.issue(list_name)
        if issue is None:
            return []
        top = issue.ranker.rank([], top=20)
        counts = Counter(k.strip().lower() for p in top for k in p.paper.keywords if 2 < len(k.strip()) <= 40)
        if len(counts) < count:  # no listed keywords: the two-word phrases of the titles
            counts.update(phrase for p in top for phrase in _title_phrases(p.paper.title))
        return [word for word, _ in counts.most_common(count)]


_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "as",
        "at",
        "by",
        "for",
        "from",
        "in",
        "into",
        "of",
        "on",
        "or",
        "the",
        "to",
        "with",
        "via",
        "using",
        "towards",
        "toward",
        "its",
        "is",
        "are",
        "we",
        "our",
        "can",
        "do",
        "does",
        "how",
        "what",
        "when",
        "why",
        "new",
        "large",
    ]
)


def _title_phrases(title: str) -> list[str]:
    words = [w.lower() for w in re.findall(r"[A-Za-z][A-Za-z-]{2,}", title)]
    return [
        f"{a} {b}" for a, b in itertools.pairwise(words) if a not in _STOP and b not in _STOP and "-" not in a
    ]


def _blurb(abstract: str) -> str:
    words = abstract.split()
    return " ".join(words[:BLURB_WORDS]) + ("\u2026" if len(words) > BLURB_WORDS else "")
