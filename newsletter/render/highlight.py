"""Keyword highlighting that agrees with ranking: 'diffusion model' marks 'Diffusion Models'.

Matching works on the same stemmed terms as the ranker (textmatch.terms), so a keyword is
marked where its words appear in order, whatever their case, inflection or hyphenation. Spans
are cached per (paper text, keyword), so per-subscriber work is merging a few cached lists.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from markupsafe import escape

from ..ranking.textmatch import terms

# The highlight carries its own inline style: it is added after CSS inlining, per subscriber.
HIGHLIGHT_OPEN = '<span class="hl" style="background-color:#fef08a;color:#111827;">'
HIGHLIGHT_CLOSE = "</span>"

_WORD = re.compile(r"[^\W_]+")
# Between two words of a keyword: spaces or hyphens and at most one stopword ('text-to-image'),
# never punctuation ('music, such as generating' is not 'music generation').
_GAP = re.compile(r"[\s\-\u2010-\u2015/]*(?:[^\W_]+[\s\-\u2010-\u2015/]+)?")

Token = tuple[int, int, str]  # start, end, stemmed term


@lru_cache(maxsize=4096)
def text_terms(text: str) -> tuple[Token, ...]:
    """Each non-stopword of `text` with its position, computed once per title or abstract."""
    tokens: list[Token] = []
    for match in _WORD.finditer(text):
        for term in terms(match.group()):
            tokens.append((match.start(), match.end(), term))
    return tuple(tokens)


@lru_cache(maxsize=4096)
def keyword_terms(keyword: str) -> tuple[str, ...]:
    """A keyword as the ranker sees it: stemmed words without stopwords."""
    return tuple(terms(keyword))


@lru_cache(maxsize=65536)
def keyword_spans(text: str, keyword: str) -> tuple[tuple[int, int], ...]:
    """Where the keyword's terms occur in order in `text`, as character spans."""
    wanted = keyword_terms(keyword)
    tokens = text_terms(text)
    size = len(wanted)
    if not size:
        return ()
    spans = []
    for i in range(len(tokens) - size + 1):
        if tokens[i][2] == wanted[0] and all(
            tokens[i + j][2] == wanted[j] and _GAP.fullmatch(text, tokens[i + j - 1][1], tokens[i + j][0])
            for j in range(1, size)
        ):
            spans.append((tokens[i][0], tokens[i + size - 1][1]))
    return tuple(spans)


def merged_spans(text: str, keywords: Sequence[str]) -> list[tuple[int, int]]:
    """All keywords' spans, longest first where they overlap, in reading order."""
    candidates = sorted(
        (span for keyword in keywords for span in keyword_spans(text, keyword)),
        key=lambda span: (span[0], -span[1]),
    )
    merged: list[tuple[int, int]] = []
    for start, end in candidates:
        if merged and start < merged[-1][1]:
            continue
        merged.append((start, end))
    return merged


def highlight(text: str, keywords: Sequence[str]) -> str:
    """HTML-escape `text` and mark keyword matches; each piece is escaped, markup never is."""
    out: list[str] = []
    position = 0
    for start, end in merged_spans(text, keywords) if keywords else ():
        out.append(str(escape(text[position:start])))
        out.append(HIGHLIGHT_OPEN + str(escape(text[start:end])) + HIGHLIGHT_CLOSE)
        position = end
    out.append(str(escape(text[position:])))
    return "".join(out)
