"""Readers' feedback kept durably in its own SQLite file (default feedback.db beside the config).

Its own file, not a table in the ledger: `serve` records feedback whenever a reader clicks,
also while a send holds the ledger and writes it in batches; the two never wait on each other,
and a lost or rotated ledger (which decides who gets what again) does not forget what readers
said. Two tables: each issue's paper vectors (written once per issue, so feedback on a paper
from any past issue works without its text), and one verdict per (list, reader, paper), the
latest click winning. The shape is versioned with PRAGMA user_version like the ledger's.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..sources.paper import Paper
from .feedback import TERMS_KEPT, Taste, Verdict

SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS papers (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    vector BLOB NOT NULL,
    seen REAL NOT NULL,
    terms TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS feedback (
    list TEXT NOT NULL,
    email TEXT NOT NULL,
    paper_id TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('more', 'less')),
    at REAL NOT NULL,
    PRIMARY KEY (list, email, paper_id)
);
"""
MAX_PER_READER = 200  # most recent verdicts used per reader: bounded cost however keen they are


@dataclass(frozen=True)
class Remembered:
    """A paper the store knows: enough to show it on the feedback page and to compare with it."""

    id: str
    title: str
    vector: np.ndarray
    terms: tuple[str, ...] = ()


class FeedbackStore:
    """Feedback and paper vectors in one SQLite file; every call opens, does its work, closes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(self.path, timeout=10)) as db, db:
                version = int(db.execute("PRAGMA user_version").fetchone()[0])
                if version > SCHEMA_VERSION:
                    raise ConfigError(
                        f"the feedback file is from a newer version (schema {version})",
                        where=str(self.path),
                        fix="upgrade paper-digest-newsletter",
                    )
                if version < SCHEMA_VERSION:
                    db.executescript(_SCHEMA)
                    if version == 1:  # version 2 keeps each paper's telling terms for "more like this"
                        db.execute("ALTER TABLE papers ADD COLUMN terms TEXT NOT NULL DEFAULT ''")
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
                yield db
        except sqlite3.DatabaseError as exc:
            raise ConfigError(
                f"the feedback file cannot be used ({exc})",
                where=str(self.path),
                fix="check the file's permissions and disk space, or move a damaged file away",
            ) from exc

    def remember(
        self, papers: Sequence[Paper], vectors: np.ndarray, terms: Sequence[Sequence[str]] | None = None
    ) -> None:
        """Keep each issue paper's title, vector and telling terms: what later feedback on it works from."""
        now = time.time()
        words = terms if terms is not None else [()] * len(papers)
        rows = [
            (p.id, p.title, v.astype(np.float16).tobytes(), now, " ".join(t))
            for p, v, t in zip(papers, vectors, words, strict=True)
        ]
        with self._db() as db:
            db.executemany(
                "INSERT INTO papers (id, title, vector, seen, terms) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET title = excluded.title, vector = excluded.vector,"
                " seen = excluded.seen, terms = excluded.terms",
                rows,
            )

    def paper(self, paper_id: str) -> Remembered | None:
        """A remembered paper, or None if no issue ever carried it."""
        with self._db() as db:
            row = db.execute(
                "SELECT id, title, vector, terms FROM papers WHERE id = ?", (paper_id,)
            ).fetchone()
        return None if row is None else Remembered(row[0], row[1], _vector(row[2]), _terms(row[3]))

    def record(self, list_name: str, email: str, paper_id: str, verdict: Verdict) -> None:
        """One reader's verdict on one paper; clicking again (or the other button) replaces it."""
        with self._db() as db:
            db.execute(
                "INSERT INTO feedback (list, email, paper_id, verdict, at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (list, email, paper_id)"
                " DO UPDATE SET verdict = excluded.verdict, at = excluded.at",
                (list_name, email.strip().lower(), paper_id, verdict.value, time.time()),
            )

    def tastes(self, list_name: str) -> ReaderTastes:
        """Every reader of a list who gave feedback on a remembered paper: address -> Taste."""
        verdicts: dict[str, tuple[list[str], list[str]]] = {}
        vectors: dict[str, np.ndarray] = {}  # one per judged paper, shared by every reader who judged it
        words: dict[str, tuple[str, ...]] = {}
        ids: dict[str, str] = {}
        with self._db() as db:
            rows = db.execute(
                "SELECT f.email, f.paper_id, f.verdict, p.vector, p.terms"
                " FROM feedback f JOIN papers p ON p.id = f.paper_id"
                " WHERE f.list = ? ORDER BY f.email, f.at DESC",
                (list_name,),
            )
            for email, paper_id, verdict, blob, text in rows:
                liked, disliked = verdicts.setdefault(email, ([], []))
                if len(liked) + len(disliked) < MAX_PER_READER:
                    if paper_id not in vectors:
                        vectors[paper_id], words[paper_id] = _vector(blob), _terms(text)
                    shared = ids.setdefault(paper_id, paper_id)  # one string per id, not one per row
                    (liked if verdict == Verdict.MORE else disliked).append(shared)
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
