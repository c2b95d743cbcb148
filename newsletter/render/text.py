"""Pure text helpers for rendering: shortening, cutting, highlighting and wrapping untrusted text."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from urllib.parse import urlsplit

from ..text import scrub_controls

TEXT_WIDTH = 72
ABSTRACT_WORDS = 60
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_SPACE = re.compile(r"\s+")
# A sentence ends at . ! or ? followed by space and something that can start a sentence.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9])")
_ABBREVIATIONS = ("e.g.", "i.e.", "et al.", "etc.", "vs.", "Fig.", "Eq.", "Sec.", "cf.", "approx.")
_HANGING_PREFIX = re.compile(r"^(\s*(?:== |[*-] |\d+\. )?)")


def collapse(text: str) -> str:
    """Untrusted titles and names carry newlines, runs of spaces, control bytes and bidi controls
    that would break the layout or reorder what a reader sees."""
    return _SPACE.sub(" ", scrub_controls(text)).strip()


def shorten_authors(authors: Sequence[str], shown: int = 2) -> str:
    """Long author lists drown the title; 'A, B, et al.' says enough, and nothing when unknown."""
    names = [collapse(name) for name in authors if name and name.strip()]
    if len(names) <= shown + 1:
        return ", ".join(names)
    return ", ".join(names[:shown]) + ", et al."


def _ends_with_abbreviation(sentence: str) -> bool:
    return sentence.endswith(_ABBREVIATIONS)


def split_sentences(text: str) -> list[str]:
    """Sentences of an abstract, without splitting after 'e.g.' or 'et al.'."""
    sentences: list[str] = []
    for piece in _SENTENCE_END.split(text):
        if sentences and _ends_with_abbreviation(sentences[-1]):
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return [s for s in sentences if s]


def cut_abstract(text: str, words: int = ABSTRACT_WORDS) -> tuple[str, bool]:
    """About `words` words ending on a sentence, so the teaser reads whole; (text, was_cut)."""
    text = collapse(text)
    kept: list[str] = []
    count = 0
    for sentence in split_sentences(text):
        size = len(sentence.split())
        if kept and count + size > words * 1.25:
            break
        kept.append(sentence)
        count += size
        if count >= words:
            break
    result = " ".join(kept)
    if count > words * 1.5:  # one giant sentence: cut at a word instead
        result = " ".join(result.split()[:words]).rstrip(",;:.") + "\u2026"  # never "challenge.…"
    return result, result != text


def day_label(day: date) -> str:
    """Dates spelled the same in every locale, e.g. '14 Mar 2024'."""
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def window_label(start: date, end: date) -> str:
    """A compact date range such as '8\u201314 Mar 2024'."""
    if start == end:
        return day_label(end)
    if (start.year, start.month) == (end.year, end.month):
        return f"{start.day}\u2013{day_label(end)}"
    if start.year == end.year:
        return f"{start.day} {MONTHS[start.month - 1]} \u2013 {day_label(end)}"
    return f"{day_label(start)} \u2013 {day_label(end)}"


def safe_url(url: str | None) -> str | None:
    """Only web links from untrusted data become hrefs: a javascript: URL must never be one."""
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    if any(ch.isspace() or ch in '<>"' for ch in url):
        return None
    return url


def _wrap_line(line: str, width: int) -> list[str]:
    """Greedy wrap at spaces with a hanging indent under '== ', '* ' or '1. '; words never break."""
    match = _HANGING_PREFIX.match(line)
    head = match.group(1) if match else ""
    words = line[len(head) :].split()
    if len(words) < 2:  # one long word or URL: nothing to wrap
        return [line]
    indent = " " * len(head)
    out: list[str] = []
    current = head + words[0]
    for word in words[1:]:
        if len(current) + 1 + len(word) <= width:
            current = f"{current} {word}"
        else:
            out.append(current)
            current = indent + word
    out.append(current)
    return out


def wrap_text(text: str, width: int = TEXT_WIDTH) -> str:
    """Wrap long lines for the plain-text part; URLs are never broken, so a lone URL may be longer."""
    lines = text.split("\n")
    if all(len(line) <= width for line in lines):
        return text
    out: list[str] = []
    for line in lines:
        out.extend(_wrap_line(line, width) if len(line) > width else [line])
    return "\n".join(out)
