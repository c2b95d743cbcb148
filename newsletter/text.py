"""Plain-text helpers every stage uses: whitespace, word splitting, keyword lists."""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_SPACE = re.compile(r"\s+")
# Outside XML 1.0's Char production (C0 controls but tab/LF/CR, lone surrogates, U+FFFE/FFFF), plus
# what HTML parsers report as errors though XML allows it: DEL, the C1 controls, the noncharacters.
_NONCHARACTERS = "".join(chr(plane * 0x10000 + low) for plane in range(1, 17) for low in (0xFFFE, 0xFFFF))
_NOT_IN_MARKUP = re.compile(
    "[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufdcf\ufdf0-\ufffd\U00010000-\U0010ffff]|[" + _NONCHARACTERS + "]"
)
# Keywords are separated by ';', ',' or a line break (what str.splitlines calls one).
_KEYWORD_SEPARATOR = re.compile("[;,\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def strip_forbidden_chars(text: str) -> str:
    """Text that any XML or HTML output can hold: a BEL in a paper title must not break the feed."""
    return _NOT_IN_MARKUP.sub("", text)


def squash_whitespace(text: str) -> str:
    """Titles and abstracts arrive with line breaks from LaTeX-ish sources; show them as one line."""
    return _SPACE.sub(" ", text).strip()


def words(text: str) -> list[str]:
    """Split on anything that is not a letter or digit, so 'state-space' equals 'state space'."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _WORD.findall(folded)


def split_keywords(text: str | None) -> list[str]:
    """The one keyword rule for the CSV, the CLI, import, the web form and ranking.

    Separated by ';', ',' or a line break; spaces inside a keyword collapse to one; empty parts
    and repeats (ignoring case, the first spelling kept) are dropped.
    """
    seen: dict[str, str] = {}
    for part in _KEYWORD_SEPARATOR.split(text or ""):
        word = " ".join(part.split())
        if word and word.lower() not in seen:
            seen[word.lower()] = word
    return list(seen.values())
