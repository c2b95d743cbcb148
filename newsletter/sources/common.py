"""Helpers every reader shares: arXiv ids, dates, and the 'skip and report' record type."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .paper import Paper

_NEW_ID = re.compile(r"^(\d{4}\.\d{4,5})(v\d+)?$")
_OLD_ID = re.compile(r"^([a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})(v\d+)?$")
_ID_IN_URL = re.compile(r"arxiv\.org/(?:abs|pdf)/(.+?)(?:\.pdf)?/?$")


class BadRecord(ValueError):
    """A record we skip; the message says why, the caller adds file and position."""


@dataclass
class ReadResult:
    """What one file yielded: papers plus 'position: reason' notes for records skipped."""

    papers: list[Paper] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)


def arxiv_id(value: str | None) -> str | None:
    """The arXiv id without version, or None when the value is not an arXiv id or abs/pdf URL."""
    if not value:
        return None
    text = value.strip()
    found = _ID_IN_URL.search(text)
    if found:
        text = found.group(1)
    text = text.removeprefix("arXiv:").removeprefix("arxiv:")
    for pattern in (_NEW_ID, _OLD_ID):
        match = pattern.match(text)
        if match:
            return match.group(1)
    return None


def parse_datetime(value: object) -> datetime:
    """Read ISO-8601 dates as sources write them ('Z', offsets, or a bare date meaning UTC)."""
    if not isinstance(value, str) or not value.strip():
        raise BadRecord("missing publication date")
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadRecord(f"unreadable date {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def require_text(value: object, name: str) -> str:
    """Title and abstract are what we rank and show; a record without them is useless.

    Every reader's titles and abstracts pass here: their TeX is made plain text once (cleantext).
    """
    from ..text import squash_whitespace
    from .cleantext import clean_text

    if not isinstance(value, str) or not value.strip():
        raise BadRecord(f"missing {name}")
    return clean_text(squash_whitespace(value))
