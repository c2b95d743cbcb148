"""Fetch the papers the settings name for one issue, once: a resumed run reuses the same papers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ..files import atomic_write_text
from ..safety.private import private_dir
from ..settings import FetchSettings, Settings, SourceSettings
from .jsonl import paper_to_jsonl

if TYPE_CHECKING:
    from .fetch import FetchResult

log = logging.getLogger(__name__)

Fetcher = Callable[[SourceSettings, date, date, FetchSettings], "FetchResult"]


def fetch_source(source: SourceSettings, first: date, last: date, limits: FetchSettings) -> FetchResult:
    """One configured source over the issue window: HF day by day, arXiv as a date range."""
    # httpx only when a source is really fetched: a send from cached or local papers never pays its memory.
    from .fetch import ARXIV_BASE, ARXIV_SPACING, HF_BASE, FetchResult, fetch_arxiv, fetch_hf
    from .http import FetchPolicy

    if source.kind == "arxiv":
        return fetch_arxiv(
            query=source.query,
            first=first,
            last=last,
            base_url=source.base_url or ARXIV_BASE,
            policy=FetchPolicy.from_settings(limits, spacing=ARXIV_SPACING),
        )
    merged = FetchResult()
    day = first
    while day <= last:
        part = fetch_hf(
            day=day, base_url=source.base_url or HF_BASE, policy=FetchPolicy.from_settings(limits)
        )
        merged.papers.extend(part.papers)
        merged.problems.extend(part.problems)
        merged.requests += part.requests
        day += timedelta(days=1)
    return merged


def cache_file(settings: Settings, issue_id: str, index: int, source: SourceSettings) -> Path:
    """Where one source's papers for one issue are kept."""
    return settings.path(settings.cache_dir) / issue_id / f"{index:02d}-{source.kind}.jsonl"


def fetch_issue_sources(
    settings: Settings,
    issue_id: str,
    first: date,
    last: date,
    fetch: Fetcher = fetch_source,
) -> list[Path]:
    """Paths of the issue's fetched papers, fetching only sources not cached for this issue yet."""
    paths = []
    for index, source in enumerate(settings.sources):
        path = cache_file(settings, issue_id, index, source)
        if not path.is_file():
            result = fetch(source, first, last, settings.fetch)
            for problem in result.problems:
                log.warning("%s", problem)
            if not result.papers:
                # Not cached: an empty answer is more likely an outage than an empty week.
                log.warning("source %d (%s) returned no papers for %s", index + 1, source.kind, issue_id)
                continue
            private_dir(path.parent)  # the cache is the owner's alone: 0700 folders, 0600 files
            atomic_write_text(path, "".join(paper_to_jsonl(p) + "\n" for p in result.papers), private=True)
            log.info("fetched %d papers from %s into %s", len(result.papers), source.kind, path)
        paths.append(path)
    return paths
