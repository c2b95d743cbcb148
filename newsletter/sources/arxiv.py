"""Read arXiv feeds: API query results and listing feeds (Atom or RSS 2.0) into Papers."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from .common import BadRecord, ReadResult, arxiv_id, parse_datetime, require_text
from .paper import Paper

ATOM = "{http://www.w3.org/2005/Atom}"
DC = "{http://purl.org/dc/elements/1.1/}"
_ANNOUNCE = re.compile(r"^\s*arXiv:\S+\s+Announce Type:\s*\S+\s*(?:Abstract:\s*)?", re.IGNORECASE)


def feed_kind(root: ET.Element) -> str | None:
    """'atom' for API results and Atom listings, 'rss' for the RSS listing, else None."""
    if root.tag == f"{ATOM}feed":
        return "atom"
    if root.tag == "rss" and root.find("channel") is not None:
        return "rss"
    return None


def read_arxiv(root: ET.Element) -> ReadResult:
    """Turn a parsed feed into papers, noting entries we had to skip by their position."""
    kind = feed_kind(root)
    entries = root.findall(f"{ATOM}entry") if kind == "atom" else root.findall("channel/item")
    convert = _atom_entry if kind == "atom" else _rss_item
    result = ReadResult()
    for position, entry in enumerate(entries, start=1):
        try:
            result.papers.append(convert(entry))
        except BadRecord as exc:
            result.problems.append((f"entry {position}", str(exc)))
    return result


def api_error(root: ET.Element) -> str | None:
    """The arXiv API reports a bad query as a single entry whose id points at /api/errors."""
    for entry in root.findall(f"{ATOM}entry"):
        if "/api/errors" in (entry.findtext(f"{ATOM}id") or ""):
            return " ".join((entry.findtext(f"{ATOM}summary") or "unknown error").split())
    return None


def _atom_entry(entry: ET.Element) -> Paper:
    raw_id = entry.findtext(f"{ATOM}id") or ""
    found = arxiv_id(raw_id.removeprefix("oai:arXiv.org:"))
    if "/api/errors" in raw_id:
        raise BadRecord("the arXiv API returned an error entry")
    title = require_text(entry.findtext(f"{ATOM}title"), "title")
    abstract = require_text(_strip_announce(entry.findtext(f"{ATOM}summary")), "abstract")
    links = {
        (link.get("title") or link.get("rel") or ""): link.get("href")
        for link in entry.findall(f"{ATOM}link")
    }
    published = entry.findtext(f"{ATOM}published") or entry.findtext(f"{ATOM}updated")
    authors = [a.findtext(f"{ATOM}name") or "" for a in entry.findall(f"{ATOM}author")]
    if not any(authors):
        authors = _split_creators(entry.findtext(f"{DC}creator"))
    return _paper(
        found,
        title,
        abstract,
        parse_datetime(published),
        authors,
        links.get("alternate"),
        links.get("pdf"),
        [c.get("term") or "" for c in entry.findall(f"{ATOM}category")],
    )


def _rss_item(item: ET.Element) -> Paper:
    link = (item.findtext("link") or "").strip()
    found = arxiv_id((item.findtext("guid") or "").removeprefix("oai:arXiv.org:")) or arxiv_id(link)
    title = require_text(item.findtext("title"), "title")
    abstract = require_text(_strip_announce(item.findtext("description")), "abstract")
    pub = item.findtext("pubDate")
    try:
        published = parsedate_to_datetime(pub) if pub else None
    except (TypeError, ValueError):
        published = None
    if published is None:
        raise BadRecord("missing or unreadable pubDate")
    return _paper(
        found,
        title,
        abstract,
        published,
        _split_creators(item.findtext(f"{DC}creator")),
        link or None,
        None,
        [c.text or "" for c in item.findall("category")],
    )


def _paper(
    found: str | None,
    title: str,
    abstract: str,
    published: datetime,
    authors: list[str],
    url: str | None,
    pdf: str | None,
    categories: list[str],
) -> Paper:
    """Build the Paper the same way for both feed kinds; arXiv ids give canonical URLs."""
    from .paper import stable_id

    if found is None and not url:
        raise BadRecord("entry has neither an arXiv id nor a link")
    return Paper(
        id=found or stable_id(url or title),
        title=title,
        abstract=abstract,
        authors=[a.strip() for a in authors if a.strip()],
        published=published if published.tzinfo else published.replace(tzinfo=UTC),
        url=f"https://arxiv.org/abs/{found}" if found else str(url),
        pdf_url=pdf or (f"https://arxiv.org/pdf/{found}" if found else None),
        keywords=[c for c in categories if c],
        source="arxiv",
    )


def _strip_announce(text: str | None) -> str | None:
    """Listing feeds prefix the abstract with 'arXiv:ID Announce Type: new Abstract:'."""
    return _ANNOUNCE.sub("", text) if text else text


def _split_creators(text: str | None) -> list[str]:
    if not text:
        return []
    return [name.strip() for name in re.split(r",\s*|\s+and\s+", text) if name.strip()]
