"""Pick each subscriber's papers: keyword relevance plus recency and popularity, built once per issue."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime, time, timedelta

import numpy as np

from ..settings import Filler, SelectionSettings
from ..sources.paper import Paper
from ..text import split_keywords
from .acronyms import Acronyms, short_form
from .authors import AUTHOR_PREFIX, author_name, author_vector
from .feedback import DISLIKE_SHARE, TERMS_KEPT, FeedbackEffect, JudgedPapers, Taste, feedback_effect
from .keywordscore import FieldIndex
from .semantic import EmbeddingModel, load_model, paper_text, similarity_scores
from .sentences import Closest, SentenceMeaning
from .textmatch import normalise_keyword, terms

# score = keyword_weight * sum over the subscriber's keywords of relevance(keyword, paper)
#       + recency_weight * 0.5 ** (age_days / half_life_days)
#       + popularity_weight * log1p(upvotes) / log1p(most upvotes in the window)
#       + feedback_weight * (closeness to a liked paper - closeness to a disliked one), 0..1 each,
#         for readers who gave feedback (feedback.py)
# relevance = (1 - semantic_weight) * lexical + semantic_weight * meaning, each 0..1:
# lexical is BM25 over title (x title_weight) and abstract, times (1 + phrase/proximity boost),
# scaled so the window's best paper for that keyword scores 1 (keywordscore.py); meaning is the
# cosine of paper and keyword vectors, above the window's mean + 1 sd, scaled so the closest
# scores 1 (semantic.py). Both are worked out once per distinct keyword, so a subscriber costs
# the same few array ops either way. With keywords, only papers that match one (the match
# floor, _relevance) with relevance above min_relevance are picked; the rest of the digest is
# left short or filled with the week's popular papers, marked as such (selection.filler).
_MATCH_SCORE_MIN = 1e-3
_NO_ROW = -1
_NEG_INF = float("-inf")
_TIE_BREAK = 1e-9  # keeps the order of equal scores stable: newer (earlier index) first
PICKS_CACHE_SIZE = 30_000  # keyword sets whose picks are kept (about 1 KB each)


class ScoredPaper:
    """One paper picked for one subscriber; why it scored is worked out only when asked."""

    __slots__ = ("_index", "_keys", "_ranker", "disliked", "feedback", "filler", "liked", "paper", "score")

    def __init__(
        self,
        paper: Paper,
        score: float,
        ranker: Ranker,
        index: int,
        keys: tuple[tuple[str, int], ...],
        feedback: tuple[float, float, float] = (0.0, 0.0, 0.0),
        *,
        filler: bool = False,
    ) -> None:
        self.paper = paper
        self.score = score
        self._ranker = ranker
        self._index = index
        self._keys = keys
        # The reader's feedback part of the score, and how close (0..1) it is to a paper they liked
        # and to one they disliked.
        self.feedback, self.liked, self.disliked = feedback
        # Not a match: one of the week's popular papers filling the digest (selection.filler).
        self.filler = filler

    @property
    def matched(self) -> list[str]:
        """The subscriber's keywords this paper matched, in the subscriber's order."""
        return [kw for kw, row in self._keys if self._ranker.clause(row, self._index) > 0]

    @property
    def related(self) -> list[str]:
        """The matched keywords none of whose words the paper holds: matched by meaning, closest first."""
        ranker, index = self._ranker, self._index
        found = [
            (kw, ranker.clause(row, index))
            for kw, row in self._keys
            if not ranker.literal(row, index) and ranker.clause(row, index) > 0
        ]
        return [kw for kw, _ in sorted(found, key=lambda pair: -pair[1])]

    def closest_sentence(self, keyword: str, sentences: Sequence[str]) -> Closest | None:
        """Which of the paper's abstract sentences is close in meaning to the keyword, if one is."""
        return self._ranker.closest_sentence(self._index, keyword, sentences)

    @property
    def parts(self) -> dict[str, float]:
        """Each weighted component of the score, for --explain."""
        parts = self._ranker.explain(self._index, self._keys)
        if self.feedback or self.liked or self.disliked:
            parts["feedback"] = self.feedback
            parts["feedback: like"] = self.liked
            parts["feedback: dislike"] = self.disliked
        return parts

    def __repr__(self) -> str:
        return f"ScoredPaper({self.paper.id!r}, score={self.score:.4f}, matched={self.matched!r})"


class Ranker:
    """Scores every paper in the issue window once, so ranking per subscriber is a few array ops."""

    def __init__(self, papers: Sequence[Paper], issue_date: date, settings: SelectionSettings) -> None:
        self.settings = settings
        self.issue_date = issue_date
        self.papers = papers_in_window(papers, issue_date, settings.window_days)
        self._position = {p.id: i for i, p in enumerate(self.papers)}
        self.recency = recency_scores(self.papers, issue_date, settings.half_life_days)
        self.popularity = popularity_scores(self.papers)
        order = np.arange(len(self.papers), dtype=np.float64) * _TIE_BREAK
        self._base = (
            settings.recency_weight * self.recency + settings.popularity_weight * self.popularity - order
        )
        self._index = FieldIndex(self.papers, settings)
        self._model: EmbeddingModel | None = None
        self._vectors = np.zeros((len(self.papers), 0), dtype=np.float32)
        if settings.semantic_weight > 0:
            self._model = load_model()
            self._vectors = self._model.embed([paper_text(p.title, p.abstract) for p in self.papers])
        self._matrix = np.zeros((16, len(self.papers)), dtype=np.float32)
        # One bit per (keyword row, paper): does the paper hold the keyword's words, or only its meaning?
        self._literal = np.zeros((16, (len(self.papers) + 7) // 8), dtype=np.uint8)
        self._rows = 0
        self._by_text: dict[str, int] = {}
        self._by_terms: dict[str, int] = {}
        self._acronyms: Acronyms | None = None
        self._sentences: SentenceMeaning | None = None
        self._by_popularity: list[int] | None = None
        self._picks: dict[tuple[tuple[int, ...], int], tuple[list[int], list[float]]] = {}
        self._judged = JudgedPapers(len(self.papers))  # readers' liked and disliked papers, each once

    def rank(
        self,
        keywords: Sequence[str],
        *,
        top: int | None = None,
        exclude_ids: Collection[str] = (),
        taste: Taste | None = None,
    ) -> list[ScoredPaper]:
        """The best papers for one subscriber, best first; no keywords means recency and popularity.

        `taste` is the reader's feedback: it moves papers up or down, and only readers who gave
        some pay for it (one small product with their liked and disliked papers' vectors).
        """
        if isinstance(keywords, str):  # "a; b" straight from a CSV cell, not a list of letters
            keywords = split_keywords(keywords)
        keys = self._keys(keywords)
        size = len(self.papers) if top is None else top
        hidden = [self._position[i] for i in exclude_ids if i in self._position]
        blocked: set[int] = set(hidden)
        if not taste and not hidden:
            # Readers with the same keywords get the same picks: worked out once per issue.
            memo = (tuple(row for _, row in keys), size)
            best = self._picks.get(memo)
            if best is None:
                best = self._best(self._scores(keys, copy=False), size)
                if len(self._picks) >= PICKS_CACHE_SIZE:
                    self._picks.clear()
                self._picks[memo] = best
            picked = self._scored(best, keys)
        else:
            picked = self._picked_with(keys, size, blocked, taste)
        if keys and self.settings.filler is Filler.POPULAR and len(picked) < size:
            blocked.update(p._index for p in picked)
            picked.extend(self._popular(size - len(picked), blocked))
        return picked

    def _summed(self, keys: tuple[tuple[str, int], ...]) -> np.ndarray:
        """The keywords' relevance summed per paper (row by row, in the order the rows were given)."""
        matrix = self._matrix
        if len(keys) == 1:
            found: np.ndarray = matrix[keys[0][1]]
            return found
        total: np.ndarray = matrix[keys[0][1]] + matrix[keys[1][1]]
        for _, row in keys[2:]:
            total += matrix[row]
        return total

    def _scores(self, keys: tuple[tuple[str, int], ...], *, copy: bool) -> np.ndarray:
        """Every paper's score for these keywords; -inf where none of them matches."""
        if not keys:
            return self._base.copy() if copy else self._base
        relevance = self._summed(keys)
        return np.where(
            relevance > self.settings.min_relevance,
            self._base + self.settings.keyword_weight * relevance,
            -np.inf,
        )

    def _picked_with(
        self, keys: tuple[tuple[str, int], ...], size: int, blocked: set[int], taste: Taste | None
    ) -> list[ScoredPaper]:
        """The picks of a reader whose feedback or earlier issues change them: worked out for them alone.

        Adds to `blocked` what the filler must not bring back either: their liked and disliked
        papers and the near-duplicates of a disliked one.
        """
        effect = None
        if taste and self.settings.feedback_weight > 0 and self._model is not None and self._fits(taste):
            wanted = {t for kw, _ in keys for t in normalise_keyword(kw).split()}
            effect = feedback_effect(
                self._vectors,
                taste,
                self._index.terms_score,
                self.settings.semantic_weight,
                wanted,
                self._judged,
            )
            scores = self._scores_with(keys, effect)
            blocked.update(np.flatnonzero(effect.banned).tolist())
            judged = (*taste.liked_ids, *taste.disliked_ids)
            blocked.update(self._position[i] for i in judged if i in self._position)
        else:
            scores = self._scores(keys, copy=True)
        if blocked:
            scores[list(blocked)] = -np.inf
        return self._scored(self._best(scores, size), keys, effect)

    def _scores_with(self, keys: tuple[tuple[str, int], ...], effect: FeedbackEffect) -> np.ndarray:
        """Scores moved by a reader's feedback: a paper clearly like one they liked is picked even
        without a keyword match (at its recency and popularity), the rest rise or sink by closeness."""
        s = self.settings
        net = effect.net
        if not keys:
            return self._base + s.feedback_weight * net
        relevance = self._summed(keys)
        alone = np.where(effect.alone, self._base, -np.inf)
        scores: np.ndarray = np.where(
            relevance > s.min_relevance, self._base + s.keyword_weight * relevance, alone
        )
        scores += s.feedback_weight * net
        return scores

    def _popular(self, count: int, blocked: Collection[int]) -> list[ScoredPaper]:
        """The window's most upvoted papers (newer first among equals), to fill a digest's own section."""
        if self._by_popularity is None:
            order = np.lexsort((np.arange(len(self.papers)), -self.popularity))
            self._by_popularity = [i for i in order.tolist() if self.popularity[i] > 0]
        chosen = [i for i in self._by_popularity if i not in blocked][:count]
        return [ScoredPaper(self.papers[i], float(self._base[i]), self, i, (), filler=True) for i in chosen]

    def _fits(self, taste: Taste) -> bool:
        """Feedback vectors from the same model as this issue's (a changed model ignores old ones)."""
        dim = self._vectors.shape[1]
        return all(part.size == 0 or part.shape[1] == dim for part in (taste.liked, taste.disliked))

    def _best(self, scores: np.ndarray, top: int) -> tuple[list[int], list[float]]:
        """The `top` best papers' indexes and scores, best first, leaving out the unpickable (-inf)."""
        if top <= 0 or len(scores) == 0:
            return [], []
        picked = np.argpartition(-scores, top - 1)[:top] if top < len(scores) else np.arange(len(scores))
        picked = picked[np.argsort(-scores[picked], kind="stable")]
        values = scores[picked]
        if values[-1] == _NEG_INF:
            picked = picked[values != _NEG_INF]
            values = values[values != _NEG_INF]
        # Plain Python numbers from here: indexing numpy scalars one by one is the slow part.
        return picked.tolist(), values.tolist()

    def _scored(
        self,
        best: tuple[list[int], list[float]],
        keys: tuple[tuple[str, int], ...],
        effect: FeedbackEffect | None = None,
    ) -> list[ScoredPaper]:
        papers = self.papers
        if effect is None:
            return [ScoredPaper(papers[i], value, self, i, keys) for i, value in zip(*best, strict=True)]
        weight = self.settings.feedback_weight
        at = best[0]
        like, dislike = effect.like[at], effect.dislike[at]
        net = (like - DISLIKE_SHARE * dislike).tolist()
        like, dislike = like.tolist(), dislike.tolist()
        return [
            ScoredPaper(papers[i], value, self, i, keys, (weight * n, liked, disliked))
            for i, value, n, liked, disliked in zip(*best, net, like, dislike, strict=True)
        ]

    @property
    def vectors(self) -> np.ndarray:
        """Every window paper's semantic vector, in window order ((n, 0) when semantics are off)."""
        return self._vectors

    def vector_of(self, paper_id: str) -> np.ndarray | None:
        """The semantic vector of a paper in the window (None when absent or semantics are off)."""
        index = self._position.get(paper_id)
        if index is None or self._model is None:
            return None
        found: np.ndarray = self._vectors[index]
        return found

    def telling_terms(self, papers: Sequence[Paper] | None = None) -> list[tuple[str, ...]]:
        """Each paper's most telling terms (the window's papers by default), for "more like this"."""
        if papers is None:
            pairs = zip(self._index.title_terms, self._index.body_terms, strict=True)
        else:
            pairs = zip(
                [terms(p.title) for p in papers],
                [terms(" ".join([p.abstract, *p.keywords])) for p in papers],
                strict=True,
            )
        return [self._index.telling_terms(title, body, TERMS_KEPT) for title, body in pairs]

    def embed_papers(self, papers: Sequence[Paper]) -> np.ndarray:
        """Vectors for papers outside the window, e.g. one liked last week (semantics must be on)."""
        if self._model is None:
            return np.zeros((len(papers), 0), dtype=np.float32)
        return self._model.embed([paper_text(p.title, p.abstract) for p in papers])

    def _keys(self, keywords: Sequence[str]) -> tuple[tuple[str, int], ...]:
        """Each keyword's cached score row, once per row, ignoring keywords with no usable terms."""
        found: dict[int, str] = {}
        for keyword in keywords:
            row = self._by_text.get(keyword)
            if row is None:
                row = self._row_for(keyword)
            if row != _NO_ROW and row not in found:
                found[row] = keyword
        return tuple((kw, row) for row, kw in found.items())

    def _row_for(self, keyword: str) -> int:
        """Score a keyword against every paper the first time anyone asks for it."""
        name = author_name(keyword)
        if name is not None:  # 'author: Ada Lovelace' follows a person: 1 for each of their papers
            normal = AUTHOR_PREFIX + " ".join(name.lower().split())
            row = self._by_terms.get(normal)
            if row is None:
                found = author_vector(name, [p.authors for p in self.papers])
                row = self._store(found, found > 0)
                self._by_terms[normal] = row
            self._by_text[keyword] = row
            return row
        normal = normalise_keyword(keyword)
        row = self._by_terms.get(normal)
        if row is None:
            row = self._store(*self._relevance(keyword, normal)) if normal else _NO_ROW
            self._by_terms[normal] = row
        self._by_text[keyword] = row
        return row

    def _relevance(self, keyword: str, normal: str) -> tuple[np.ndarray, np.ndarray]:
        """One keyword row: relevance where the paper matches (0 elsewhere), and where it matched by words.

        A paper matches a keyword when it holds the keyword's words together (the phrase, or all of
        them close) with enough relevance, or when its meaning is close for certain; below that
        floor it is no match and scores nothing here, so the card, --explain and --json all call
        the same papers matches.
        """
        words = normal.split()
        lexical, together = self._index.keyword_match(words)
        s = self.settings
        floor = s.match_one_word if len(set(words)) == 1 else s.match_words
        by_words = together & (lexical >= floor)
        if self._model is None:
            return np.where(by_words, lexical, 0.0).astype(np.float32), by_words
        cosines = self.cosines(self.meaning_text(keyword))
        matched = by_words | (cosines >= s.match_cosine)
        weight = s.semantic_weight
        fused = (1.0 - weight) * lexical + weight * similarity_scores(cosines)
        # A match always counts a little, even where the window's scale puts its meaning at 0.
        row: np.ndarray = np.where(matched, np.maximum(fused, _MATCH_SCORE_MIN), 0.0).astype(np.float32)
        return row, by_words

    def meaning_text(self, keyword: str) -> str:
        """What a keyword's vector is made of: its words, and the long forms of its acronyms."""
        if not any(short_form(word) for word in keyword.split()):
            return keyword
        if self._acronyms is None:  # once per issue, and only when some keyword is an acronym
            self._acronyms = Acronyms(paper_text(p.title, p.abstract) for p in self.papers)
        return self._acronyms.spelled_out(keyword)

    def closest_sentence(self, index: int, keyword: str, sentences: Sequence[str]) -> Closest | None:
        """The sentence (of paper `index`'s abstract) close in meaning to a keyword; None when
        semantics are off or no sentence is close for certain. Vectors are made on first ask."""
        if self._model is None:
            return None
        if self._sentences is None:
            self._sentences = SentenceMeaning(self._model)
        return self._sentences.closest(self.papers[index].id, sentences, self.meaning_text(keyword))

    def cosines(self, text: str) -> np.ndarray:
        """Cosine similarity of every paper to a text (zeros when semantics are off)."""
        if self._model is None or not len(self.papers):
            return np.zeros(len(self.papers), dtype=np.float32)
        # einsum, not @: numpy's matmul hands this to a threaded BLAS that is slow on a busy host
        found: np.ndarray = np.einsum("ij,j->i", self._vectors, self._model.embed([text])[0])
        return found

    def _store(self, vector: np.ndarray, literal: np.ndarray) -> int:
        if self._rows == len(self._matrix):
            grown = np.zeros((2 * len(self._matrix), self._matrix.shape[1]), dtype=np.float32)
            grown[: self._rows] = self._matrix
            self._matrix = grown
            bits = np.zeros((2 * len(self._literal), self._literal.shape[1]), dtype=np.uint8)
            bits[: self._rows] = self._literal
            self._literal = bits
        self._matrix[self._rows] = vector
        self._literal[self._rows] = np.packbits(literal)
        self._rows += 1
        return self._rows - 1

    def clause(self, row: int, index: int) -> float:
        """One keyword's relevance (0..1) for one paper."""
        return float(self._matrix[row, index])

    def literal(self, row: int, index: int) -> bool:
        """Whether the paper holds the keyword's words (or the followed author), not only its meaning."""
        return bool((int(self._literal[row, index >> 3]) >> (7 - (index & 7))) & 1)

    def explain(self, index: int, keys: tuple[tuple[str, int], ...]) -> dict[str, float]:
        """The weighted parts that add up to a paper's score, plus each keyword's own relevance."""
        s = self.settings
        relevance = sum(self.clause(row, index) for _, row in keys)
        parts = {
            "keywords": s.keyword_weight * relevance,
            "recency": s.recency_weight * float(self.recency[index]),
            "popularity": s.popularity_weight * float(self.popularity[index]),
        }
        for kw, row in keys:
            parts[f"keyword: {kw}"] = self.clause(row, index)
            if self._model is not None and author_name(kw) is None:
                words = float(self._index.keyword_vector(normalise_keyword(kw).split())[index])
                parts[f"words: {kw}"] = words
                meaning = similarity_scores(self.cosines(self.meaning_text(kw)))
                parts[f"meaning: {kw}"] = float(meaning[index])
        return parts


def rank_papers(
    papers: Sequence[Paper],
    keywords: Sequence[str],
    issue_date: date,
    settings: SelectionSettings,
    top: int | None = None,
) -> list[ScoredPaper]:
    """One-off ranking, for callers with a single keyword list."""
    return Ranker(papers, issue_date, settings).rank(keywords, top=top)


def window_bounds(issue_date: date, window_days: int) -> tuple[datetime, datetime]:
    """The issue covers whole UTC days: window_days of them, ending with the issue date."""
    end = datetime.combine(issue_date + timedelta(days=1), time(), tzinfo=UTC)
    return end - timedelta(days=window_days), end


def papers_in_window(papers: Sequence[Paper], issue_date: date, window_days: int) -> list[Paper]:
    """Papers published inside the window, newest first, so index order breaks score ties."""
    start, end = window_bounds(issue_date, window_days)
    chosen = {p.id: p for p in reversed(papers) if start <= p.listed_at < end}  # first of an id wins
    return sorted(chosen.values(), key=lambda p: (-p.listed_at.timestamp(), p.id))


def recency_scores(papers: Sequence[Paper], issue_date: date, half_life_days: float) -> np.ndarray:
    """1.0 for a paper from the end of the issue day, halving every half_life_days before it."""
    _, end = window_bounds(issue_date, 1)
    ages = np.array([(end - p.listed_at).total_seconds() / 86400 for p in papers], dtype=np.float64)
    return np.power(0.5, np.maximum(ages, 0.0) / half_life_days) if len(papers) else ages


def popularity_scores(papers: Sequence[Paper]) -> np.ndarray:
    """log(1+upvotes) scaled to 0..1 by the window's most upvoted paper; no upvotes counts as 0."""
    votes = np.array([math.log1p(max(p.upvotes or 0, 0)) for p in papers], dtype=np.float64)
    top = float(votes.max()) if len(votes) else 0.0
    return votes / top if top > 0 else np.zeros(len(papers))
