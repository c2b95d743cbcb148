"""A reader's "more like this" / "less like this": what it does to the next issue's scores.

A paper close in meaning to one the reader liked rises, one close to a paper they disliked sinks,
and a near-duplicate of a disliked paper (a new version, the same work under another title) is
never picked. Closeness is the cosine of the semantic vectors (semantic.py), so it costs one
small product per reader who gave feedback and nothing for everyone else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

NEAR_DUPLICATE = 0.95  # cosine at which a paper is the disliked one again, not just a neighbour
# Static embeddings of two abstracts are never far apart (0.4 is typical, 0.8 a sibling paper): only what
# lies above this counts as "like it", scaled so a near-duplicate counts 1.
RELATED_FROM = 0.5
LIKED_ALONE = 0.75  # close enough to a liked paper to be picked without a keyword match


class Verdict(StrEnum):
    """What a reader said about one paper."""

    MORE = "more"
    LESS = "less"


@dataclass(frozen=True)
class Taste:
    """One reader's feedback as vectors: the papers they liked and disliked."""

    liked: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    disliked: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    liked_ids: tuple[str, ...] = ()
    disliked_ids: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.liked_ids or self.disliked_ids)

    @classmethod
    def of(cls, liked: Sequence[tuple[str, np.ndarray]], disliked: Sequence[tuple[str, np.ndarray]]) -> Taste:
        """From (paper id, vector) pairs; vectors are the semantic model's unit rows."""
        return cls(_stack(liked), _stack(disliked), tuple(i for i, _ in liked), tuple(i for i, _ in disliked))


@dataclass(frozen=True)
class FeedbackEffect:
    """Per paper: how much closer to liked than to disliked (-1..1), and which are banned."""

    like: np.ndarray  # 0..1, closeness to the nearest liked paper
    dislike: np.ndarray  # 0..1, closeness to the nearest disliked paper
    banned: np.ndarray  # near-duplicates of a disliked paper

    @property
    def net(self) -> np.ndarray:
        found: np.ndarray = self.like - self.dislike
        return found


def feedback_effect(vectors: np.ndarray, taste: Taste) -> FeedbackEffect:
    """How a reader's feedback bears on each paper of the window."""
    count = len(vectors)
    like, _ = _closeness(vectors, taste.liked, count)
    dislike, dislike_raw = _closeness(vectors, taste.disliked, count)
    return FeedbackEffect(like, dislike, dislike_raw >= NEAR_DUPLICATE)


def liked_alone(vectors: np.ndarray, taste: Taste) -> np.ndarray:
    """Papers close enough to a liked one to be picked on that alone."""
    _, raw = _closeness(vectors, taste.liked, len(vectors))
    found: np.ndarray = raw >= LIKED_ALONE
    return found


def _closeness(vectors: np.ndarray, chosen: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    if not chosen.size or not vectors.size:
        return np.zeros(count, dtype=np.float32), np.zeros(count, dtype=np.float32)
    raw = np.einsum("ij,kj->ik", vectors, chosen).max(axis=1)  # einsum: no threaded BLAS (see selection)
    scaled = np.clip((raw - RELATED_FROM) / (1.0 - RELATED_FROM), 0.0, 1.0)
    return scaled.astype(np.float32), raw.astype(np.float32)


def _stack(pairs: Sequence[tuple[str, np.ndarray]]) -> np.ndarray:
    if not pairs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([np.asarray(v, dtype=np.float32) for _, v in pairs])
