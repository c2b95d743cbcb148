"""Readers' feedback as the ranking uses it: remembered papers, verdicts, each reader's Taste.

The rows live in the one database (store/feedback.py: the `feedback` and `feedback_papers`
tables); this module turns them into vectors and terms. Each issue's paper vectors are written
once per issue, so feedback on a paper from any past issue works without its text; a reader has
one verdict per (list, paper), the latest click winning. An old feedback.db from before the
store is imported the first time the store is opened (`FeedbackStore.open`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..settings import Settings
from ..sources.paper import Paper
from ..store import Database, open_database
from ..store.feedback import (
    PaperRow,
    import_feedback_file,
    record_verdict,
    remember_papers,
    remembered_paper,
    verdicts_of,
)
from .feedback import TERMS_KEPT, Taste, Verdict

MAX_PER_READER = 200  # most recent verdicts used per reader: bounded cost however keen they are


@dataclass(frozen=True)
class Remembered:
    """A paper the store knows: enough to show it on the feedback page and to compare with it."""

    id: str
    title: str
    vector: np.ndarray
    terms: tuple[str, ...] = ()


class FeedbackStore:
    """Feedback and paper vectors in the database, as vectors and Tastes for the ranking."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    def open(cls, settings: Settings) -> FeedbackStore:
        """The configured database's feedback, with an old feedback.db imported into it first."""
        db = open_database(settings.places.database())
        import_feedback_file(db, settings.path(settings.feedback_db))
        return cls(db)

    @staticmethod
    def exists(settings: Settings) -> bool:
        """Whether there is feedback to read without creating anything (a preview creates no file)."""
        return settings.places.database().exists() or settings.path(settings.feedback_db).is_file()

    def remember(
        self, papers: Sequence[Paper], vectors: np.ndarray, terms: Sequence[Sequence[str]] | None = None
    ) -> None:
        """Keep each issue paper's title, vector and telling terms: what later feedback on it works from."""
        words = terms if terms is not None else [()] * len(papers)
        rows = [
            PaperRow(p.id, p.title, v.astype(np.float16).tobytes(), " ".join(t))
            for p, v, t in zip(papers, vectors, words, strict=True)
        ]
        remember_papers(self.db, rows)

    def paper(self, paper_id: str) -> Remembered | None:
        """A remembered paper, or None if no issue ever carried it."""
        row = remembered_paper(self.db, paper_id)
        return None if row is None else Remembered(row.id, row.title, _vector(row.vector), _terms(row.terms))

    def record(self, list_name: str, email: str, paper_id: str, verdict: Verdict) -> None:
        """One reader's verdict on one paper; clicking again (or the other button) replaces it."""
        record_verdict(self.db, list_name, email, paper_id, verdict.value)

    def tastes(self, list_name: str) -> ReaderTastes:
        """Every reader of a list who gave feedback on a remembered paper: address -> Taste."""
        verdicts: dict[str, tuple[list[str], list[str]]] = {}
        vectors: dict[str, np.ndarray] = {}  # one per judged paper, shared by every reader who judged it
        words: dict[str, tuple[str, ...]] = {}
        ids: dict[str, str] = {}
        with verdicts_of(self.db, list_name) as rows:
            for row in rows:
                liked, disliked = verdicts.setdefault(row.email, ([], []))
                if len(liked) + len(disliked) < MAX_PER_READER:
                    if row.paper_id not in vectors:
                        vectors[row.paper_id], words[row.paper_id] = _vector(row.vector), _terms(row.terms)
                    shared = ids.setdefault(row.paper_id, row.paper_id)  # one string per id, not per row
                    (liked if row.verdict == Verdict.MORE else disliked).append(shared)
        return ReaderTastes(
            {email: (tuple(liked), tuple(disliked)) for email, (liked, disliked) in verdicts.items()},
            vectors,
            words,
        )


class ReaderTastes(Mapping[str, Taste]):
    """Readers' feedback, address -> Taste, with each judged paper's vector and terms held once.

    A reader's Taste (their judged papers' vectors stacked) is made when their digest is built:
    made for everyone up front, every reader held their own copies of the same few hundred
    vectors, in the sender and in every builder process.
    """

    def __init__(
        self,
        verdicts: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]],
        vectors: Mapping[str, np.ndarray],
        terms: Mapping[str, tuple[str, ...]],
    ) -> None:
        self._verdicts = verdicts  # address -> (liked ids, disliked ids), newest first
        self._vectors = vectors
        self._terms = terms

    def __getitem__(self, email: str) -> Taste:
        liked, disliked = self._verdicts[email]
        return Taste.of(
            [(pid, self._vectors[pid]) for pid in liked],
            [(pid, self._vectors[pid]) for pid in disliked],
            {pid: self._terms[pid] for pid in (*liked, *disliked)},
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self._verdicts)

    def __len__(self) -> int:
        return len(self._verdicts)

    @property
    def papers(self) -> int:
        """How many distinct papers the readers judged: the vectors held."""
        return len(self._vectors)


def _vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float16).astype(np.float32)


def _terms(text: str | None) -> tuple[str, ...]:
    return tuple(str(text or "").split()[:TERMS_KEPT])
