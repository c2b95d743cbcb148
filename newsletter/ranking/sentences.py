"""Which sentence of an abstract is closest in meaning to a keyword, for a card picked by meaning.

A card that says "Close in meaning to your keywords: voice" quotes the abstract's sentence that
shows it, when the teaser cuts that sentence off. Sentence vectors are made lazily, once per
paper per process (only papers that get such a card), from the same static model as the papers'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .semantic import MAX_TEXT_CHARS, EmbeddingModel

# Below this cosine, a sentence is no better than chance: it is about the 99th percentile of a
# keyword's cosine to a random sentence of the sample papers (benchmarks/ndcg_eval.py prints it),
# and by eye the closest sentences of meaning-only picks read as the reason from about there up
# ("doctors" -> "assist clinicians when learning the surgery"), below it mostly as noise.
MIN_QUOTE_COSINE = 0.35
_PAPERS_KEPT = 4_000  # papers whose sentence vectors are kept (a window holds ~2,000): bounded memory
_KEYWORDS_KEPT = 2_000  # keyword vectors kept (1 KiB each)
SENTENCES_MAX = 64  # an abstract's sentences looked at, within its first MAX_TEXT_CHARS (hostile input)


@dataclass(frozen=True)
class Closest:
    """The abstract sentence closest in meaning to a keyword: its position and cosine."""

    index: int
    cosine: float


class SentenceMeaning:
    """Sentence and keyword vectors, each worked out once and kept (float16: half the memory)."""

    def __init__(self, model: EmbeddingModel) -> None:
        self._model = model
        self._papers: dict[str, np.ndarray] = {}
        self._keywords: dict[str, np.ndarray] = {}

    def closest(self, paper_id: str, sentences: Sequence[str], keyword_text: str) -> Closest | None:
        """The sentence closest to the keyword's meaning text, or None when none is close for certain."""
        sentences = within_bounds(sentences)
        if not sentences:
            return None
        vectors = self._sentences(paper_id, sentences)
        keyword = self._keyword(keyword_text)
        # einsum, not @: numpy's matmul hands this to a threaded BLAS that is slow on a busy host
        cosines = np.einsum("ij,j->i", vectors, keyword, dtype=np.float32)
        best = int(np.argmax(cosines))
        found = float(cosines[best])
        return Closest(best, found) if found >= MIN_QUOTE_COSINE else None

    def _sentences(self, paper_id: str, sentences: Sequence[str]) -> np.ndarray:
        found = self._papers.get(paper_id)
        if found is None or len(found) != len(sentences):
            if len(self._papers) >= _PAPERS_KEPT:
                self._papers.clear()
            found = self._papers[paper_id] = self._model.embed(list(sentences)).astype(np.float16)
        return found

    def _keyword(self, text: str) -> np.ndarray:
        found = self._keywords.get(text)
        if found is None:
            if len(self._keywords) >= _KEYWORDS_KEPT:
                self._keywords.clear()
            found = self._keywords[text] = self._model.embed([text])[0]
        return found


def within_bounds(sentences: Sequence[str]) -> Sequence[str]:
    """The leading sentences the paper's own vector saw (its first MAX_TEXT_CHARS), at most SENTENCES_MAX."""
    total = 0
    for count, sentence in enumerate(sentences[:SENTENCES_MAX]):
        total += len(sentence) + 1
        if total > MAX_TEXT_CHARS:
            return sentences[: max(count, 1)]
    return sentences[:SENTENCES_MAX]
