"""Plain-text helpers every stage uses: whitespace, word splitting, keyword lists."""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_SPACE = re.compile(r"\s+")


def squash_whitespace(text: str) -> str:
    """Titles and abstracts arrive with line breaks from LaTeX-ish sources; show them as one line."""
    return _SPACE.sub(" ", text).strip()


def words(text: str) -> list[str]:
    """Split on anything that is not a letter or digit, so 'state-space' equals 'state space'."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _WORD.findall(folded)


def split_keywords(text: str | None) -> list[str]:
    """Keywords are ';'-separated in CSV files, forms and on the command line; repeats dropped."""
    seen: dict[str, str] = {}
    for part in (text or "").split(";"):
        word = part.strip()
        if word and word.lower() not in seen:
            seen[word.lower()] = word
    return list(seen.values())
