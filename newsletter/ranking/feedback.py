"""A reader's "more like this" / "less like this": what it does to the next issue's scores.

A paper the reader liked acts like one more interest: each window paper gets a closeness to it
(0..1) made the way a keyword's relevance is, from words and meaning: the liked paper's most
telling terms scored over the window (BM25, best = 1), fused with the cosine of the semantic
vectors scaled to the window (0 at the window's mean closeness, 1 at the closest). Papers close
to liked ones rise, and the clearly close ones are picked even without a keyword match; papers
close to disliked ones sink, and a near-duplicate of a disliked paper (a new version, the same
work under another title) is never picked. Why relative to the window: a static model's cosines
between two abstracts sit in a narrow band (benchmarks/ndcg_eval.py prints it for the sample
papers), so a fixed cut-off either catches nothing or everything, depending on the week.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial

import numpy as np

NEAR_DUPLICATE = 0.95  # cosine at which a paper is the disliked one again, not just a neighbour
LIKED_ALONE = 0.5  # closeness to a liked paper at which it is picked without a keyword match
# One "less like this" says less about a topic than one "more like this" (Rocchio's usual
# negative weight is a fraction of the positive one): closeness to a disliked paper counts half.
DISLIKE_SHARE = 0.5
TERMS_KEPT = 20  # a paper's most telling terms (tf x idf) kept to find papers that use its words

# The window's score of a set of terms, one number per paper (the ranker's BM25 index).
WordScores = Callable[[Sequence[str]], np.ndarray]
CLOSENESS_CACHE_SIZE = 4096  # judged papers kept: one float32 row each (8 KB for 2,000 papers)


class Verdict(StrEnum):
    """What a reader said about one paper."""

    MORE = "more"
    LESS = "less"


@dataclass(frozen=True)
class Taste:
    """One reader's feedback: the vectors (and telling terms, when known) of papers they judged."""

    liked: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    disliked: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    liked_ids: tuple[str, ...] = ()
    disliked_ids: tuple[str, ...] = ()
    terms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # paper id -> its telling terms

    def __bool__(self) -> bool:
        return bool(self.liked_ids or self.disliked_ids)

    @classmethod
    def of(
        cls,
        liked: Sequence[tuple[str, np.ndarray]],
        disliked: Sequence[tuple[str, np.ndarray]],
        terms: Mapping[str, Sequence[str]] | None = None,
    ) -> Taste:
        """From (paper id, vector) pairs; vectors are the semantic model's unit rows."""
        known = {pid: tuple(found) for pid, found in (terms or {}).items() if found}
        return cls(
            _stack(liked), _stack(disliked), tuple(i for i, _ in liked), tuple(i for i, _ in disliked), known
        )


@dataclass(frozen=True)
class FeedbackEffect:
    """Per paper: closeness (0..1) to the nearest liked and disliked papers, and which are banned."""

    like: np.ndarray
    dislike: np.ndarray
    banned: np.ndarray  # near-duplicates of a disliked paper

    @property
    def net(self) -> np.ndarray:
        found: np.ndarray = self.like - DISLIKE_SHARE * self.dislike
        return found

    @property
    def alone(self) -> np.ndarray:
        """Papers near enough a liked one (and nearer it than any disliked one) to pick on that alone."""
        found: np.ndarray = (self.like >= LIKED_ALONE) & (self.like > self.dislike)
        return found


class JudgedPapers:
    """Each judged paper's closeness to every window paper, one row per paper, worked out once.

    Many readers like or dislike the same papers: the ranker keeps one of these per issue, so a
    reader's feedback costs a gather and a max over rows, not a pass over the window per paper.
    Rows are found by the paper's vector and the telling terms it is judged by.
    """

    def __init__(self, size: int) -> None:
        self._rows = np.zeros((8, size), dtype=np.float32)
        self._near: list[np.ndarray] = []  # per row: the window papers that nearly copy it
        self._at: dict[tuple[bytes, tuple[str, ...]], int] = {}

    def make_room(self, count: int) -> None:
        """Forget every row when `count` more might not fit, so one reader's rows stay valid together."""
        if len(self._at) + count > CLOSENESS_CACHE_SIZE:
            self._at.clear()
            self._near.clear()

    def row(
        self, vector: np.ndarray, telling: tuple[str, ...], make: Callable[[], tuple[np.ndarray, np.ndarray]]
    ) -> int:
        """The row of a judged paper, made by `make` the first time it is asked for."""
        key = (vector.tobytes(), telling)
        found = self._at.get(key)
        if found is None:
            closeness, near = make()
            found = len(self._near)
            if found == len(self._rows):
                grown = np.zeros((2 * len(self._rows), self._rows.shape[1]), dtype=np.float32)
                grown[:found] = self._rows[:found]
                self._rows = grown
            self._rows[found] = closeness
            self._near.append(near)
            self._at[key] = found
        return found

    def highest(self, rows: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Per window paper: the highest closeness over these rows, and whether it nearly copies one."""
        banned = np.zeros(self._rows.shape[1], dtype=bool)
        if not rows:
            return np.zeros(self._rows.shape[1], dtype=np.float32), banned
        for row in rows:
            banned[self._near[row]] = True
        if len(rows) == 1:
            return self._rows[rows[0]].copy(), banned
        found: np.ndarray = self._rows[list(rows)].max(axis=0)
        return found, banned


def feedback_effect(
    vectors: np.ndarray,
    taste: Taste,
    words: WordScores | None = None,
    semantic_weight: float = 0.3,
    wanted: Collection[str] = (),
    judged: JudgedPapers | None = None,
) -> FeedbackEffect:
    """How a reader's feedback bears on each paper of the window.

    `wanted` are the terms of the reader's own keywords: a disliked paper is judged by the words
    it does not share with them, so "less like this" on one diffusion paper sinks its kind, not
    every paper on the diffusion models the reader asked for. `judged` keeps each judged paper's
    row for the next reader who judged it too.
    """
    rows = JudgedPapers(len(vectors)) if judged is None else judged
    if not vectors.size:
        empty = np.zeros(len(vectors), dtype=np.float32)
        return FeedbackEffect(empty, empty, empty.astype(bool))
    rows.make_room(len(taste.liked_ids) + len(taste.disliked_ids))

    def closeness(chosen: np.ndarray, ids: Sequence[str], terms: Mapping[str, tuple[str, ...]]) -> list[int]:
        found = []
        for vector, paper_id in zip(chosen, ids, strict=True):
            telling = terms.get(paper_id, ()) if words is not None else ()
            make = partial(_one_closeness, vectors, vector, telling, words, semantic_weight)
            found.append(rows.row(vector, telling, make))
        return found

    like, _ = rows.highest(closeness(taste.liked, taste.liked_ids, taste.terms))
    unwanted = {
        pid: tuple(t for t in taste.terms[pid] if t not in wanted)
        for pid in taste.disliked_ids
        if pid in taste.terms
    }
    dislike, banned = rows.highest(closeness(taste.disliked, taste.disliked_ids, unwanted))
    return FeedbackEffect(like, dislike, banned)


def _one_closeness(
    vectors: np.ndarray,
    vector: np.ndarray,
    telling: tuple[str, ...],
    words: WordScores | None,
    semantic_weight: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One judged paper: every window paper's closeness to it (0..1), and its near-duplicates' indexes."""
    row = np.einsum("ij,j->i", vectors, vector)  # einsum: no threaded BLAS (see selection)
    others = row < NEAR_DUPLICATE  # the judged paper itself (or a copy) sets no scale
    closeness = _window_scaled(row, others, float(row[others].mean()) if others.any() else 0.0)
    if telling and words is not None:
        lexical = _window_scaled(np.asarray(words(telling), dtype=np.float32), others, 0.0)
        closeness = (1.0 - semantic_weight) * lexical + semantic_weight * closeness
    return closeness.astype(np.float32), np.flatnonzero(~others)


def _window_scaled(values: np.ndarray, others: np.ndarray, floor: float) -> np.ndarray:
    """0 at `floor`, 1 at the highest value among `others` (and above, e.g. the paper itself)."""
    top = float(values[others].max()) if others.any() else floor
    if top - floor <= 1e-6:
        return (~others).astype(np.float32)
    scaled: np.ndarray = np.clip((values - floor) / (top - floor), 0.0, 1.0).astype(np.float32)
    return scaled


def _stack(pairs: Sequence[tuple[str, np.ndarray]]) -> np.ndarray:
    if not pairs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([np.asarray(v, dtype=np.float32) for _, v in pairs])
