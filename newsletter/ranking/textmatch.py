"""Text normalisation shared by indexing and querying, so both sides see the same terms."""

from __future__ import annotations

from functools import lru_cache

import Stemmer

from ..text import words

# Lucene's classic English stop set: function words only, so 'not' or 'no' in a keyword is dropped
# but nothing a researcher would follow ('model', 'learning') ever is.
_STOPWORDS = frozenset(
    {
        *("a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is"),
        *("it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there"),
        *("these", "they", "this", "to", "was", "will", "with"),
    }
)
_STEMMER = Stemmer.Stemmer("english")


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return str(_STEMMER.stemWord(word))


def terms(text: str) -> list[str]:
    """Stemmed, stopword-free terms in reading order; positions matter for phrase matching."""
    return [_stem(w) for w in words(text) if w not in _STOPWORDS]


def normalise_keyword(keyword: str) -> str:
    """One cache key per meaning: 'State-Space Models' and 'state space model' are the same."""
    return " ".join(terms(keyword))
