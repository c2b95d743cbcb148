"""Fetch papers from the Hugging Face daily_papers API and the arXiv API, page by page."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import date, timedelta

from ..errors import SourceError
from .arxiv import api_error, read_arxiv
from .common import ReadResult
from .dedupe import dedupe_papers
from .http import FetchPolicy, PoliteClient
from .loader import parse_papers_text
from .paper import Paper

HF_BASE = "https://huggingface.co"
ARXIV_BASE = "https://export.arxiv.org"
ARXIV_SPACING = 3.0
OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


@dataclass
class FetchResult:
    """Papers fetched (deduplicated, newest first) and 'page:position: reason' notes."""

    papers: list[Paper] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    requests: int = 0


def parse_week(text: str) -> tuple[date, date]:
    """'2024-W11' as its Monday and Sunday, so a week can be queried like a date range."""
    match = _WEEK.match(text.strip())
    if not match:
        raise SourceError(f"week {text!r} is not in YYYY-Www form", fix="write it like 2024-W11")
    try:
        monday = date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
    except ValueError as exc:
        raise SourceError(
            f"week {text!r} does not exist", fix="use a week number from 01 to 52 or 53"
        ) from exc
    return monday, monday + timedelta(days=6)


def fetch_hf(
    *,
    day: date | None = None,
    week: str | None = None,
    base_url: str = HF_BASE,
    limit: int = 50,
    max_pages: int = 20,
    policy: FetchPolicy | None = None,
) -> FetchResult:
    """All daily papers of a day or ISO week, following `p` pages until one comes back short."""
    if (day is None) == (week is None):
        raise SourceError(
            "give exactly one of --date or --week for --source hf",
            fix="e.g. --date 2024-03-14 or --week 2024-W11",
        )
    if week is not None:
        parse_week(week)
    url = base_url.rstrip("/") + "/api/daily_papers"
    query: dict[str, str | int] = {"date": day.isoformat()} if day else {"week": str(week)}
    result = FetchResult()
    collected: list[Paper] = []
    seen: set[str] = set()
    with PoliteClient(policy or FetchPolicy()) as client:
        for page in range(max_pages):
            response = client.get(url, {**query, "limit": limit, "p": page})
            result.requests += 1
            read = parse_papers_text(response.text, f"{url}?p={page}")
            fresh = [p for p in read.papers if p.id not in seen]
            result.problems.extend(f"{url}?p={page}:{pos}: {why}" for pos, why in read.problems)
            collected.extend(fresh)
            seen.update(p.id for p in fresh)
            # A short page is the last; a page of nothing new means the server ignores `p`.
            if len(read.papers) + len(read.problems) < limit or not fresh:
                break
    result.papers = dedupe_papers(collected)
    return result


def arxiv_search_query(query: str, first: date | None, last: date | None) -> str:
    """Add a submittedDate range to the user's query when a date or week was given."""
    if first is None or last is None:
        return query
    span = f"submittedDate:[{first:%Y%m%d}0000 TO {last:%Y%m%d}2359]"
    return f"({query}) AND {span}" if query.strip() else span


def fetch_arxiv(
    *,
    query: str,
    first: date | None = None,
    last: date | None = None,
    base_url: str = ARXIV_BASE,
    page_size: int = 100,
    max_results: int = 300,
    policy: FetchPolicy | None = None,
) -> FetchResult:
    """Newest-first results of an arXiv API query, paged with start/max_results, 3 s apart."""
    if not query.strip() and first is None:
        raise SourceError(
            "--source arxiv needs --query (and optionally --date or --week)",
            fix='e.g. --query "cat:cs.LG AND abs:diffusion"',
        )
    url = base_url.rstrip("/") + "/api/query"
    policy = policy or FetchPolicy(spacing=ARXIV_SPACING)
    search = arxiv_search_query(query, first, last)
    result = FetchResult()
    collected: list[Paper] = []
    with PoliteClient(policy) as client:
        for start in range(0, max_results, page_size):
            size = min(page_size, max_results - start)
            params: dict[str, str | int] = {
                "search_query": search,
                "start": start,
                "max_results": size,
                "sortBy": "submittedDate",
                "sortOrder": "descending",
            }
            read, total, requests = _arxiv_page(client, url, params)
            result.requests += requests
            result.problems.extend(f"{url}?start={start}:{pos}: {why}" for pos, why in read.problems)
            collected.extend(read.papers)
            got = len(read.papers) + len(read.problems)
            if got < size or (total is not None and start + got >= total):
                break
    result.papers = dedupe_papers(collected)
    return result


def _arxiv_page(
    client: PoliteClient, url: str, params: dict[str, str | int]
) -> tuple[ReadResult, int | None, int]:
    """One page of results; arXiv sometimes answers an empty page it does have, so ask again."""
    requests = 0
    for _ in range(client.policy.attempts):
        response = client.get(url, params)
        requests += 1
        root = _parse_feed(response.text, url)
        total = _total_results(root)
        read = read_arxiv(root)
        if read.papers or read.problems or total is None or total <= int(params["start"]):
            break
    return read, total, requests


def _parse_feed(text: str, url: str) -> ET.Element:
    """Parse the API's Atom and turn its in-band error entries into a SourceError."""
    try:
        root = ET.fromstring(text.encode("utf-8"))
    except ET.ParseError as exc:
        raise SourceError(
            f"the arXiv API answered something that is not Atom ({exc})",
            where=url,
            fix="check --base-url points at an arXiv API mirror",
        ) from exc
    message = api_error(root)
    if message:
        raise SourceError(
            f"arXiv rejected the query: {message}",
            where=url,
            fix="see https://info.arxiv.org/help/api/user-manual.html#query_details",
        )
    return root


def _total_results(root: ET.Element) -> int | None:
    text = root.findtext(f"{OPENSEARCH}totalResults")
    return int(text) if text and text.strip().isdigit() else None
