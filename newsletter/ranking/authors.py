"""`author: Name` keywords: follow a person, matched on normalised names, also "Lastname, F."."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

AUTHOR_PREFIX = "author:"
_PARTICLES = frozenset({"van", "von", "der", "den", "de", "del", "da", "di", "la", "le", "du", "dos", "bin"})


def author_name(keyword: str) -> str | None:
    """The name an `author: Name` keyword follows, None for an ordinary keyword."""
    head, sep, rest = keyword.partition(":")
    if not sep or head.strip().lower() != AUTHOR_PREFIX[:-1]:
        return None
    name = " ".join(rest.split())
    return name or None


@dataclass(frozen=True)
class PersonName:
    """A name as comparable parts: family name and given-name words (lowercase, no accents)."""

    family: str
    given: tuple[str, ...]

    def matches(self, other: PersonName) -> bool:
        """Same family name, and given names agree as far as both say (an initial fits a name)."""
        if self.family != other.family:
            return False
        for mine, theirs in zip(self.given, other.given, strict=False):
            if not (mine.startswith(theirs) or theirs.startswith(mine)):
                return False
            if len(mine) > 1 and len(theirs) > 1 and mine != theirs:
                return False
        return True


def parse_name(name: str) -> PersonName | None:
    """'Ada Lovelace', 'Lovelace, Ada', 'Lovelace, A.', 'A. Lovelace', 'José García' (accents dropped)."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    if "," in plain:
        family_part, _, given_part = plain.partition(",")
        family_words, given_words = _words(family_part), _words(given_part)
    else:
        words = _words(plain)
        if not words:
            return None
        cut = len(words) - 1
        while cut > 0 and words[cut - 1] in _PARTICLES:
            cut -= 1
        family_words, given_words = words[cut:], words[:cut]
    if not family_words:
        return None
    return PersonName(" ".join(family_words), tuple(given_words))


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[\s.\-]+", text) if w]


def author_vector(name: str, paper_authors: Sequence[Sequence[str]]) -> np.ndarray:
    """1 for every paper with an author of that name, else 0: the row an author keyword holds."""
    wanted = parse_name(name)
    out = np.zeros(len(paper_authors), dtype=np.float32)
    if wanted is None:
        return out
    for index, authors in enumerate(paper_authors):
        if any((parsed := parse_name(a)) is not None and wanted.matches(parsed) for a in authors):
            out[index] = 1.0
    return out
