"""Readers' feedback in the database: one verdict per (list, reader, paper), and the papers judged.

`serve` records a verdict whenever a reader clicks; a send remembers each issue's papers (title,
vector, telling terms) so that feedback on a paper from any past issue works without its text,
and reads a list's verdicts once per issue. ranking/feedbackstore.py turns these rows into what
the ranking uses. Before the store, feedback lived in its own SQLite file (`feedback_db`,
default feedback.db): `import_feedback_file` moves such a file in once, likes kept.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Insert, select

from ..errors import StoreError
from ..models import utc_now
from .database import Database
from .schema import feedback, feedback_papers

log = logging.getLogger(__name__)
BATCH = 1000  # rows per INSERT when importing an old feedback file
IMPORTED_SUFFIX = ".imported"
_OLD_SCHEMA_VERSION = 2  # the last feedback.db layout released before the store


@dataclass(frozen=True)
class PaperRow:
    """A remembered paper as stored: its vector as float16 bytes, its terms space-joined."""

    id: str
    title: str
    vector: bytes
    terms: str = ""


@dataclass(frozen=True)
class VerdictRow:
    """One reader's verdict on a remembered paper, with that paper's vector and terms."""

    email: str
    paper_id: str
    verdict: str
    vector: bytes
    terms: str


def now_text() -> str:
    """The time as the store keeps it: ISO 8601 in UTC, to the second."""
    return utc_now().isoformat(timespec="seconds")


def remember_papers(db: Database, papers: Sequence[PaperRow]) -> None:
    """Keep (or refresh) the papers of an issue: what later feedback on them works from."""
    if not papers:
        return
    seen = now_text()
    once = {p.id: p for p in papers}.values()  # one statement may not upsert a row twice (PostgreSQL)
    rows = [{"id": p.id, "title": p.title, "vector": p.vector, "seen": seen, "terms": p.terms} for p in once]
    statement = db.insert(feedback_papers)
    statement = statement.on_conflict_do_update(
        index_elements=[feedback_papers.c.id],
        set_={name: statement.excluded[name] for name in ("title", "vector", "seen", "terms")},
    )
    with db.write() as conn:
        conn.execute(statement, rows)


def remembered_paper(db: Database, paper_id: str) -> PaperRow | None:
    """A remembered paper, or None if no issue ever carried it."""
    query = select(
        feedback_papers.c.id, feedback_papers.c.title, feedback_papers.c.vector, feedback_papers.c.terms
    ).where(feedback_papers.c.id == paper_id)
    with db.read() as conn:
        row = conn.execute(query).first()
    return None if row is None else PaperRow(row.id, row.title, bytes(row.vector), row.terms or "")


def record_verdict(db: Database, list_name: str, email: str, paper_id: str, verdict: str) -> None:
    """One reader's verdict on one paper; clicking again (or the other button) replaces it."""
    statement = db.insert(feedback).values(
        list=list_name, email=email.strip().lower(), paper_id=paper_id, verdict=verdict, at=now_text()
    )
    statement = statement.on_conflict_do_update(
        index_elements=[feedback.c.list, feedback.c.email, feedback.c.paper_id],
        set_={"verdict": statement.excluded.verdict, "at": statement.excluded.at},
    )
    with db.write() as conn:
        conn.execute(statement)


@contextmanager
def verdicts_of(db: Database, list_name: str) -> Iterator[Iterator[VerdictRow]]:
    """A list's verdicts on remembered papers, by reader, newest first: streamed, not loaded."""
    query = (
        select(
            feedback.c.email,
            feedback.c.paper_id,
            feedback.c.verdict,
            feedback_papers.c.vector,
            feedback_papers.c.terms,
        )
        .join(feedback_papers, feedback_papers.c.id == feedback.c.paper_id)
        .where(feedback.c.list == list_name)
        .order_by(feedback.c.email, feedback.c.at.desc(), feedback.c.paper_id)
    )
    with db.read() as conn:
        result = conn.execution_options(yield_per=BATCH).execute(query)
        yield (VerdictRow(r.email, r.paper_id, r.verdict, bytes(r.vector), r.terms or "") for r in result)


@dataclass(frozen=True)
class Imported:
    """What an old feedback file held, now in the database."""

    verdicts: int
    papers: int
    renamed_to: Path


def import_feedback_file(db: Database, path: Path) -> Imported | None:
    """Move an old feedback.db into the database once, then rename it: None if there is none.

    Repeatable: a verdict already in the database and newer than the file's is kept, so an import
    cut short (or run by two processes at once) does no harm when it runs again.
    """
    if not path.is_file():
        return None
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as old:
            verdicts, papers = _copy_old_feedback(db, old, path)
    except sqlite3.Error as exc:
        if not path.exists():
            return None  # another process imported and renamed it a moment ago
        raise StoreError(
            f"the old feedback file cannot be read ({exc})",
            where=str(path),
            fix="restore it from a backup, or move it away (its likes are then lost)",
        ) from exc
    renamed = path.with_name(path.name + IMPORTED_SUFFIX)
    try:
        path.rename(renamed)
    except FileNotFoundError:
        pass  # another process renamed it: the rows were imported all the same
    except OSError as exc:
        raise StoreError(
            f"imported the old feedback file but cannot rename it ({exc.strerror})",
            where=str(path),
            fix=f"rename it to {renamed.name} yourself (its likes are in the database now)",
        ) from exc
    log.info(
        "imported %d feedback verdict(s) and %d paper(s) from %s into the database %s; the file is now %s",
        verdicts,
        papers,
        path,
        db.place.shown,
        renamed,
    )
    return Imported(verdicts, papers, renamed)


def _copy_old_feedback(db: Database, old: sqlite3.Connection, path: Path) -> tuple[int, int]:
    version = int(old.execute("PRAGMA user_version").fetchone()[0])
    if version > _OLD_SCHEMA_VERSION:
        raise StoreError(
            f"the old feedback file has schema version {version}, which no release before the store wrote",
            where=str(path),
            fix="move it away: it is not a feedback file this release can import",
        )
    tables = {row[0] for row in old.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not {"papers", "feedback"} <= tables:
        return 0, 0  # made but never written to
    columns = {row[1] for row in old.execute("PRAGMA table_info(papers)")}
    terms = "terms" if "terms" in columns else "''"  # version 1 kept no terms
    papers = old.execute(f"SELECT id, title, vector, seen, {terms} FROM papers")
    verdicts = old.execute("SELECT list, lower(trim(email)), paper_id, verdict, at FROM feedback")
    done = [0, 0]
    with db.write() as conn:
        while batch := papers.fetchmany(BATCH):
            rows = [
                {"id": i, "title": t, "vector": bytes(v), "seen": _when(seen), "terms": words or ""}
                for i, t, v, seen, words in batch
            ]
            conn.execute(_keep_stored(db), rows)
            done[1] += len(rows)
        while batch := verdicts.fetchmany(BATCH):
            rows = [
                {"list": n, "email": e, "paper_id": i, "verdict": v, "at": _when(at)}
                for n, e, i, v, at in batch
            ]
            conn.execute(_newest_wins(db), rows)
            done[0] += len(rows)
    return done[0], done[1]


def _keep_stored(db: Database) -> Insert:
    """Papers already in the database are newer than the old file's: keep them."""
    return db.insert(feedback_papers).on_conflict_do_nothing(index_elements=[feedback_papers.c.id])


def _newest_wins(db: Database) -> Insert:
    """A verdict replaces a stored one only if it is newer: a click since the upgrade stays."""
    statement = db.insert(feedback)
    return statement.on_conflict_do_update(
        index_elements=[feedback.c.list, feedback.c.email, feedback.c.paper_id],
        set_={"verdict": statement.excluded.verdict, "at": statement.excluded.at},
        where=statement.excluded.at > feedback.c.at,
    )


def _when(unix_time: float | None) -> str:
    """The old file's unix time as the store keeps times."""
    return datetime.fromtimestamp(float(unix_time or 0), UTC).isoformat(timespec="seconds")
