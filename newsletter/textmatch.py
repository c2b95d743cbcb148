"""Text normalisation shared by indexing and querying, so both sides see the same terms."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import Stemmer

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_SPACE = re.compile(r"\s+")
# Lucene's classic English stop set: function words only, so 'not' or 'no' in a keyword is dropped
# but nothing a researcher would follow ('model', 'learning') ever is.
_STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such"
    " that the their then there these they this to was will with".split()
)
_STEMMER = Stemmer.Stemmer("english")


def squash_whitespace(text: str) -> str:
    """Titles and abstracts arrive with line breaks from LaTeX-ish sources; show them as one line."""
    return _SPACE.sub(" ", text).strip()


def words(text: str) -> list[str]:
    """Split on anything that is not a letter or digit, so 'state-space' equals 'state space'."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _WORD.findall(folded)


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return _STEMMER.stemWord(word)


def terms(text: str) -> list[str]:
    """Stemmed, stopword-free terms in reading order; positions matter for phrase matching."""
    return [_stem(w) for w in words(text) if w not in _STOPWORDS]


def normalise_keyword(keyword: str) -> str:
    """One cache key per meaning: 'State-Space Models' and 'state space model' are the same."""
    return " ".join(terms(keyword))


def split_keywords(text: str | None) -> list[str]:
    """Keywords are separated by ';' in CSV files and on the command line."""
    if not text:
        return []
    return [part.strip() for part in text.split(";") if part.strip()]
