"""Why this paper: one short line per card, so a reader can trust (and correct) the picks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..ranking.authors import author_name
from ..ranking.feedback import LIKED_ALONE
from ..ranking.textmatch import terms
from ..sources.paper import Paper
from .text import collapse, split_sentences

LIKED_FROM = LIKED_ALONE  # closeness (0..1) to a liked paper worth telling the reader about
SENTENCE_MAX = 220
RELATED_SHOWN = 3  # keywords matched by meaning named on a card, closest first


@dataclass(frozen=True)
class Why:
    """The reason line, and the sentence that matched when the card's teaser leaves it out."""

    reason: str
    sentence: str = ""


def why_picked(
    paper: Paper,
    matched: Sequence[str],
    shown_abstract: str,
    liked: float = 0.0,
    feedback: float = 0.0,
    related: Sequence[str] = (),
) -> Why:
    """Matched keywords first (people followed, words, then meaning), else feedback, else popularity.

    `related` are the matched keywords the paper holds none of the words of (closest first): it
    says "close in meaning", never "matches", since a reader who looks for the word will not find it.
    """
    people = [name for kw in matched if (name := author_name(kw))]
    by_meaning = [collapse(kw) for kw in related if author_name(kw) is None]
    topics = [t for kw in matched if author_name(kw) is None and (t := collapse(kw)) not in by_meaning]
    parts = []
    if people:
        parts.append("By " + ", ".join(people) + ", whom you follow")
    if topics:
        parts.append("Matches your keywords: " + ", ".join(topics))
    if by_meaning:
        parts.append("Close in meaning to your keywords: " + ", ".join(by_meaning[:RELATED_SHOWN]))
    if liked >= LIKED_FROM and feedback > 0:
        parts.append("Similar to a paper you liked")
    if not parts:
        parts.append("Popular this week" if paper.upvotes else "New this week")
    return Why(". ".join(parts), _hidden_match(paper, topics, shown_abstract))


def _hidden_match(paper: Paper, topics: Sequence[str], shown_abstract: str) -> str:
    """The abstract's sentence holding a keyword that neither the title nor the teaser shows."""
    if not topics:
        return ""
    visible = set(terms(f"{paper.title} {shown_abstract}"))
    for topic in topics:
        wanted = set(terms(topic))
        if not wanted or wanted & visible:
            continue
        for sentence in split_sentences(collapse(paper.abstract)):
            if wanted <= set(terms(sentence)):
                return sentence if len(sentence) <= SENTENCE_MAX else sentence[: SENTENCE_MAX - 1] + "\u2026"
    return ""
