"""Per-keyword relevance vectors: BM25 over title and abstract, then phrase and coverage logic."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from ..settings import SelectionSettings
from ..sources.paper import Paper
from .textmatch import terms

TERM_CACHE_SIZE = 8192  # per-term score vectors kept; bounded so free-text keywords cannot grow it
SPARSE_CACHE_SIZE = 50_000  # feedback terms: scores only where each occurs, so at most the postings twice


class FieldIndex:
    """Title and abstract indexed apart, so the title can weigh more without skewing lengths."""

    def __init__(self, papers: Sequence[Paper], settings: SelectionSettings) -> None:
        self.settings = settings
        self.title_terms = [terms(p.title) for p in papers]
        self.body_terms = [terms(" ".join([p.abstract, *p.keywords])) for p in papers]
        self.size = len(papers)
        self._title = Bm25(self.title_terms, k1=settings.bm25_k1, b=settings.bm25_b)
        self._body = Bm25(self.body_terms, k1=settings.bm25_k1, b=settings.bm25_b)
        self._positions: dict[int, tuple[dict[str, list[int]], dict[str, list[int]]]] = {}
        self._term_cache: dict[str, np.ndarray] = {}
        self._sparse: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def term_scores(self, term: str) -> np.ndarray:
        """Field-weighted BM25 of one term for every paper; terms recur across many keywords."""
        cached = self._term_cache.get(term)
        if cached is not None:
            return cached
        if self.size == 0:
            return np.zeros(0, dtype=np.float32)
        title = self._title.scores(term)
        body = self._body.scores(term)
        scores: np.ndarray = (self.settings.title_weight * title + body).astype(np.float32)
        if len(self._term_cache) >= TERM_CACHE_SIZE:
            self._term_cache.clear()
        self._term_cache[term] = scores
        return scores

    def keyword_vector(self, keyword_terms: Sequence[str]) -> np.ndarray:
        """Relevance of every paper to one keyword, 0..1, where 1 is the window's best match."""
        return self.keyword_match(keyword_terms)[0]

    def keyword_match(self, keyword_terms: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The keyword's relevance vector, and which papers hold its words together.

        Together: every term, and for a multi-word keyword the phrase or its words within
        proximity_window of each other; one of its words ('speech' of 'parts-of-speech' for
        'speech synthesis') never is.
        """
        unique = list(dict.fromkeys(keyword_terms))
        together = np.zeros(self.size, dtype=bool)
        if not unique or self.size == 0:
            return np.zeros(self.size, dtype=np.float32), together
        per_term = np.stack([self.term_scores(t) for t in unique])
        present = per_term > 0
        boosted = per_term.sum(axis=0)
        if len(unique) > 1:
            for index in np.flatnonzero(present.all(axis=0)):
                closeness = self._closeness(int(index), list(keyword_terms))
                boosted[index] *= 1.0 + self.settings.phrase_boost * closeness
                together[index] = closeness > 0
        else:
            together = present[0]
        # A paper must hold enough of the keyword's rare terms: 'models' alone is no match
        # for 'diffusion models', while 'reasoning' alone still half-matches 'math reasoning'.
        raw = np.where(idf_coverage(present) >= self.settings.min_coverage, boosted, 0.0)
        best = float(boosted.max())
        if best <= 0:
            return np.zeros(self.size, dtype=np.float32), together
        return (raw / best).astype(np.float32), together

    def telling_terms(self, title: Sequence[str], body: Sequence[str], count: int) -> tuple[str, ...]:
        """A text's most telling terms: frequent in it (title terms count title_weight), rare in the window.

        What "more like this" looks for in other papers' words (Lucene's MoreLikeThis, in short);
        terms no window paper uses are left out, since they can find nothing here.
        """
        weights: dict[str, float] = dict(Counter(body))
        for term in title:
            weights[term] = weights.get(term, 0.0) + self.settings.title_weight
        scored = [(tf * idf, term) for term, tf in weights.items() if (idf := self._body.idf(term)) > 0]
        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        return tuple(term for _, term in scored[:count])

    def terms_score(self, some_terms: Sequence[str]) -> np.ndarray:
        """The window's BM25 score of a bag of terms, per paper (no phrase or coverage logic).

        Straight from the postings, not through the term cache: readers' liked papers bring
        thousands of distinct terms, and caching each as a full row would cost memory in every builder.
        """
        total = np.zeros(self.size, dtype=np.float32)
        for term in dict.fromkeys(some_terms):
            found = self._sparse.get(term)
            if found is None:
                if len(self._sparse) >= SPARSE_CACHE_SIZE:
                    self._sparse.clear()
                found = self._sparse[term] = self._sparse_scores(term)
            total[found[0]] += found[1]
        return total

    def _sparse_scores(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """One term's field-weighted scores, only where it occurs: (paper indexes, scores)."""
        row = np.zeros(self.size, dtype=np.float32)
        self._title.add_to(row, term, self.settings.title_weight)
        self._body.add_to(row, term, 1.0)
        where = np.flatnonzero(row)
        return where, row[where]

    def _closeness(self, index: int, keyword_terms: list[str]) -> float:
        """1 when the terms appear in order and adjacent, less the further apart, 0 beyond the window.

        The share of phrase_boost a paper gets, and whether it holds the keyword's words together.
        """
        title_pos, body_pos = self._term_positions(index)
        best_gap: int | None = None
        for positions in (title_pos, body_pos):
            if _has_phrase(positions, keyword_terms):
                return 1.0
            span = min_span([positions.get(t, []) for t in dict.fromkeys(keyword_terms)])
            if span is not None:
                gap = span - len(set(keyword_terms))
                best_gap = gap if best_gap is None else min(best_gap, gap)
        window = self.settings.proximity_window
        if best_gap is None or best_gap > window:
            return 0.0
        return 0.5 * (1.0 - best_gap / (window + 1))

    def _term_positions(self, index: int) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
        cached = self._positions.get(index)
        if cached is None:
            cached = (_positions(self.title_terms[index]), _positions(self.body_terms[index]))
            self._positions[index] = cached
        return cached


def idf_coverage(present: np.ndarray) -> np.ndarray:
    """Share of a keyword's terms each paper contains, each term weighted by its rarity (idf)."""
    size = present.shape[1]
    df = present.sum(axis=1)
    idf = np.log1p((size - df + 0.5) / (df + 0.5))
    total = float(idf.sum())
    share: np.ndarray = present.mean(axis=0) if total <= 0 else (present * idf[:, None]).sum(axis=0) / total
    return share


class Bm25:
    """Okapi BM25 as Lucene scores it, kept as one sparse score list per term.

    idf = ln(1 + (N - df + 0.5) / (df + 0.5)); tf part = tf / (tf + k1 * (1 - b + b * len / avglen)).
    Scores are float32 like the index this replaced (bm25s), so rankings stay the same; ours needs
    only numpy, where bm25s imported scipy whenever installed, into the memory of every `send`.
    """

    def __init__(self, corpus: Sequence[Sequence[str]], k1: float, b: float) -> None:
        self.size = len(corpus)
        lengths = np.array([len(doc) or 1 for doc in corpus], dtype=np.float64)  # an empty text counts one
        average = lengths.mean() if self.size else 1.0
        norms = k1 * ((1 - b) + b * lengths / average)
        self._postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        vocabulary: dict[str, int] = {}
        ids = np.fromiter(
            (vocabulary.setdefault(t, len(vocabulary)) for doc in corpus for t in doc), dtype=np.int64
        )
        if not len(ids):
            return
        # One sort for the whole corpus instead of a counter per document: each (term, document)
        # pair once, with its count, ordered by term and then document.
        docs = np.repeat(np.arange(self.size, dtype=np.int64), [len(doc) for doc in corpus])
        pairs, counts = np.unique(ids * self.size + docs, return_counts=True)
        term_of, at = np.divmod(pairs, self.size)
        starts = np.flatnonzero(np.diff(term_of, prepend=-1))
        df = np.diff(starts, append=len(pairs))
        idf = np.array(
            [np.float32(math.log(1 + (self.size - d + 0.5) / (d + 0.5))) for d in df.tolist()],
            dtype=np.float64,
        )
        tf = counts.astype(np.float64)
        scores = (np.repeat(idf, df) * (tf / (norms[at] + tf))).astype(np.float32)
        at = at.astype(np.intp)
        names = list(vocabulary)
        for term, start, end in zip(
            term_of[starts].tolist(), starts.tolist(), (starts + df).tolist(), strict=True
        ):
            self._postings[names[term]] = (at[start:end], scores[start:end])

    def idf(self, term: str) -> float:
        """The term's idf in this corpus, 0 when no document holds it."""
        found = self._postings.get(term)
        return 0.0 if found is None else self._idf(len(found[0]))

    def _idf(self, df: int) -> float:
        return math.log(1 + (self.size - df + 0.5) / (df + 0.5))

    def add_to(self, total: np.ndarray, term: str, factor: float) -> None:
        """Add factor x this term's scores into `total`, touching only the documents that hold it."""
        found = self._postings.get(term)
        if found is not None:
            total[found[0]] += np.float32(factor) * found[1]

    def scores(self, term: str) -> np.ndarray:
        """This term's score in every document (0 where it does not occur)."""
        out = np.zeros(self.size, dtype=np.float32)
        found = self._postings.get(term)
        if found is not None:
            out[found[0]] = found[1]
        return out


def _positions(doc: list[str]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for position, term in enumerate(doc):
        found.setdefault(term, []).append(position)
    return found


def _has_phrase(positions: dict[str, list[int]], keyword_terms: list[str]) -> bool:
    """True when the keyword's terms occur consecutively, in order."""
    starts = positions.get(keyword_terms[0], [])
    return any(
        all(start + offset in set(positions.get(term, [])) for offset, term in enumerate(keyword_terms))
        for start in starts
    )


def min_span(position_lists: list[list[int]]) -> int | None:
    """Length of the shortest stretch of text containing every term (None if one is absent)."""
    if not position_lists or any(not p for p in position_lists):
        return None
    events = sorted((pos, which) for which, plist in enumerate(position_lists) for pos in plist)
    need = len(position_lists)
    counts = [0] * need
    covered = 0
    best: int | None = None
    left = 0
    for pos, which in events:
        counts[which] += 1
        covered += counts[which] == 1
        while covered == need:
            left_pos, left_which = events[left]
            span = pos - left_pos + 1
            best = span if best is None else min(best, span)
            counts[left_which] -= 1
            covered -= counts[left_which] == 0
            left += 1
    return best
