"""Why this paper: one short line per card, so a reader can trust (and correct) the picks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from ..ranking.authors import author_name
from ..ranking.feedback import LIKED_ALONE
from ..ranking.textmatch import terms
from ..sources.paper import Paper
from .highlight import keyword_spans, keyword_terms, text_terms
from .text import collapse, split_sentences

if TYPE_CHECKING:
    from ..ranking.sentences import Closest

# The closest sentence of a paper's abstract to a keyword, if one is close in meaning: (keyword, sentences).
Closeness = Callable[[str, Sequence[str]], "Closest | None"]

LIKED_FROM = LIKED_ALONE  # closeness (0..1) to a liked paper worth telling the reader about
SENTENCE_MAX = 220
RELATED_SHOWN = 3  # keywords matched by meaning named on a card, closest first


@dataclass(frozen=True)
class Why:
    """The reason line, and the sentence that matched when the card's teaser leaves it out.

    `by_meaning`: the sentence is the one closest in meaning to a keyword the paper holds no word
    of (a card picked by meaning alone), not one that holds the keyword's words.
    """

    reason: str
    sentence: str = ""
    by_meaning: bool = False

    @property
    def label(self) -> str:
        """How the text part introduces the sentence: a word match, or the closest in meaning."""
        return "Closest in meaning, in the abstract" if self.by_meaning else "Matched in the abstract"


def why_picked(
    paper: Paper,
    matched: Sequence[str],
    shown_abstract: str,
    *,
    liked: float = 0.0,
    feedback: float = 0.0,
    related: Sequence[str] = (),
    closeness: Closeness | None = None,
    quoted: str | None = None,
) -> Why:
    """Matched keywords first (people followed, words, then meaning), else feedback, else popularity.

    `related` are the matched keywords the paper holds none of the words of (closest first): it
    says "close in meaning", never "matches", since a reader who looks for the word will not find it.
    A card picked by meaning alone quotes the cut-off sentence closest to the closest of them, found
    with `closeness`, or `quoted` as recorded when the issue was sent (a replay needs no model).
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
    reason = ". ".join(parts)
    if by_meaning and not (people or topics):
        if quoted is None and closeness is not None:
            quoted = _closest_hidden(paper, by_meaning[0], shown_abstract, closeness)
        return Why(reason, quoted or "", by_meaning=bool(quoted))
    return Why(reason, _hidden_match(paper, topics, shown_abstract))


def _closest_hidden(paper: Paper, keyword: str, shown_abstract: str, closeness: Closeness) -> str:
    """The abstract's sentence closest in meaning to the keyword, when the teaser does not show it.

    Nothing when the teaser shows the whole abstract, when no sentence is close for certain (a
    random sentence would mislead more than none), or when the closest one is on the card already.
    """
    sentences = sentences_of(paper.abstract)
    shown = collapse(shown_abstract)
    if not sentences or shown == " ".join(sentences):
        return ""
    found = closeness(keyword, sentences)
    if found is None or not 0 <= found.index < len(sentences) or sentences[found.index] in shown:
        return ""
    return _bounded(sentences[found.index])


@lru_cache(maxsize=2_048)
def sentences_of(abstract: str) -> tuple[str, ...]:
    """An abstract's sentences, split once per paper: readers' cards ask again and again."""
    return tuple(split_sentences(collapse(abstract)))


def _bounded(sentence: str, keyword: str = "") -> str:
    """At most SENTENCE_MAX characters, cut between words and around the keyword, never through it."""
    if len(sentence) <= SENTENCE_MAX:
        return sentence
    start, end = _keyword_at(sentence, keyword)
    room = SENTENCE_MAX - 2  # for an ellipsis at either end
    # The keyword about a third of the way in, the window kept inside the sentence.
    first = max(0, min(start - (room - (end - start)) // 3, len(sentence) - room))
    last = min(len(sentence), first + room)
    if first > 0 and not sentence[first - 1].isspace():  # start at the next word
        first = sentence.find(" ", first, start) + 1 or first
    if last < len(sentence) and not sentence[last].isspace():  # end after the last whole word
        last = max(sentence.rfind(" ", end, last), end)
    cut = sentence[first:last].strip()
    if last < len(sentence):
        cut = cut.rstrip(",;:.") + "\u2026"  # "challenge…", never "challenge.…"
    return ("\u2026" if first > 0 else "") + cut


def _keyword_at(sentence: str, keyword: str) -> tuple[int, int]:
    """Where the keyword (its phrase, else its first word) sits in the sentence; (0, 0) if nowhere."""
    spans = keyword_spans(sentence, keyword) if keyword else ()
    if spans:
        return spans[0]
    wanted = set(keyword_terms(keyword)) if keyword else set()
    return next(((start, end) for start, end, term in text_terms(sentence) if term in wanted), (0, 0))


def _hidden_match(paper: Paper, topics: Sequence[str], shown_abstract: str) -> str:
    """The abstract's sentence holding a keyword that neither the title nor the teaser shows.

    Shown means highlighted, as the card marks it: the keyword's phrase, so "ranking" alone in a
    title does not show "passage ranking". Its phrase in a sentence is quoted first, else a
    sentence holding all its words (a match by words close together).
    """
    for topic in topics:
        wanted = frozenset(keyword_terms(topic))
        if not wanted or keyword_spans(paper.title, topic) or keyword_spans(shown_abstract, topic):
            continue
        sentences = sentences_of(paper.abstract)
        found = next((s for s in sentences if keyword_spans(s, topic)), None)
        found = found or next((s for s in sentences if wanted <= _term_set(s)), None)
        if found:
            return _bounded(found, topic)
    return ""


@lru_cache(maxsize=8_192)
def _term_set(text: str) -> frozenset[str]:
    """A text's terms, stemmed once: every reader's card asks about the same titles and sentences."""
    return frozenset(terms(text))
