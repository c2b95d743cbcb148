"""Read Hugging Face daily_papers JSON (a list of records, or pages of lists) into Papers."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .common import BadRecord, ReadResult, arxiv_id, parse_datetime, require_text
from .paper import Paper

HF_PAPERS = "https://huggingface.co/papers"


def looks_like_hf(data: Any) -> bool:
    """HF records wrap the paper in a 'paper' object; a bare paper has 'summary' not 'abstract'."""
    records = list(iter_records(data))
    if not records:
        return isinstance(data, list)
    first = records[0]
    return isinstance(first, dict) and (
        isinstance(first.get("paper"), dict) or ("summary" in first and "abstract" not in first)
    )


def iter_records(data: Any) -> list[Any]:
    """Flatten one record, a list, or a list of pages (lists) into one list of records."""
    if isinstance(data, dict):
        return [data]
    if not isinstance(data, list):
        return []
    records: list[Any] = []
    for item in data:
        records.extend(item if isinstance(item, list) else [item])
    return records


def read_hf(data: Any) -> ReadResult:
    """Turn parsed daily_papers JSON into papers, skipping (and noting) records we cannot use."""
    result = ReadResult()
    for position, record in enumerate(iter_records(data), start=1):
        try:
            result.papers.append(hf_record_to_paper(record))
        except BadRecord as exc:
            result.problems.append((str(position), str(exc)))
    return result


def hf_record_to_paper(record: Any) -> Paper:
    """Map one daily_papers record (or a bare HF paper object) onto our Paper."""
    if not isinstance(record, dict):
        raise BadRecord("record is not a JSON object")
    inner = record.get("paper")
    paper: dict[str, Any] = inner if isinstance(inner, dict) else record
    title = require_text(paper.get("title") or record.get("title"), "title")
    abstract = require_text(paper.get("summary") or record.get("summary"), "abstract")
    raw_id = str(paper.get("id") or "").strip()
    found = arxiv_id(raw_id)
    published = parse_datetime(paper.get("publishedAt") or record.get("publishedAt"))
    # HF's ?date= and ?week= select by the day a paper was featured, not by its arXiv date.
    featured = record.get("publishedAt") if inner is not None else None
    featured_at = parse_datetime(featured) if featured else None
    return Paper(
        id=found or raw_id or _title_id(title),
        title=title,
        abstract=abstract,
        authors=_authors(paper.get("authors")),
        published=published,
        featured_at=featured_at,
        url=f"{HF_PAPERS}/{found}" if found else f"{HF_PAPERS}?q={quote(title)}",
        pdf_url=f"https://arxiv.org/pdf/{found}" if found else None,
        code_url=_text_or_none(paper.get("githubRepo")),
        upvotes=_int_or_none(paper.get("upvotes")),
        keywords=[k for k in paper.get("ai_keywords") or [] if isinstance(k, str) and k.strip()],
        source="hf",
    )


def _title_id(title: str) -> str:
    from .paper import stable_id

    return stable_id(title)


def _authors(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    names = (a.get("name") if isinstance(a, dict) else a for a in value)
    return [n.strip() for n in names if isinstance(n, str) and n.strip()]


def _text_or_none(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None
