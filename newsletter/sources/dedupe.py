"""Merge the same paper seen in several sources, keeping the richest value of each field."""

from __future__ import annotations

from ..text import words
from .paper import Paper


def dedupe_papers(papers: list[Paper]) -> list[Paper]:
    """One Paper per arXiv id (or per title when ids differ), newest first, ties by id."""
    merged: dict[str, Paper] = {}
    alias: dict[str, str] = {}  # every id and title seen -> key of the merged record
    for paper in papers:
        title_key = "title:" + " ".join(words(paper.title))
        key = alias.get(paper.id) or alias.get(title_key) or paper.id
        merged[key] = merge_papers(merged[key], paper) if key in merged else paper
        for name in (paper.id, title_key, merged[key].id):
            alias.setdefault(name, key)
    return sorted(merged.values(), key=lambda p: (-p.published.timestamp(), p.id))


def merge_papers(first: Paper, second: Paper) -> Paper:
    """Fill gaps in the first record from the second; arXiv ids win over hashes and sample ids."""
    from .common import arxiv_id

    ids = [p.id for p in (first, second) if arxiv_id(p.id)]
    votes = [v for v in (first.upvotes, second.upvotes) if v is not None]
    # A record without an arXiv id only has a search link; the one with the id links the paper.
    url = second.url if ids and not arxiv_id(first.id) else first.url
    return first.model_copy(
        update={
            "id": ids[0] if ids else first.id,
            "url": url,
            "authors": first.authors or second.authors,
            "published": min(first.published, second.published),
            "featured_at": max(filter(None, (first.featured_at, second.featured_at)), default=None),
            "pdf_url": first.pdf_url or second.pdf_url,
            "code_url": first.code_url or second.code_url,
            "upvotes": max(votes) if votes else None,
            "keywords": list(dict.fromkeys([*first.keywords, *second.keywords])),
            "abstract": first.abstract if len(first.abstract) >= len(second.abstract) else second.abstract,
        }
    )
