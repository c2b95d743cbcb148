"""An old feedback.db (its own SQLite file, before the store) moves into the database once, likes kept."""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from newsletter.errors import StoreError
from newsletter.ranking.feedback import Verdict
from newsletter.ranking.feedbackstore import FeedbackStore
from newsletter.settings import Settings

# feedback.db as the releases before the store wrote it (ranking/feedbackstore.py), frozen here.
SCHEMA_V2 = """
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
PRAGMA user_version = 2;
"""
SCHEMA_V1 = """
CREATE TABLE papers (id TEXT PRIMARY KEY, title TEXT NOT NULL, vector BLOB NOT NULL, seen REAL NOT NULL);
CREATE TABLE feedback (list TEXT NOT NULL, email TEXT NOT NULL, paper_id TEXT NOT NULL,
    verdict TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (list, email, paper_id));
PRAGMA user_version = 1;
"""
THEN = 1_700_000_000.0  # November 2023: long before any click in a test
VECTOR = np.array([0.5, -0.25, 0.75, 0.0], dtype=np.float16)


def old_feedback_file(path: Path, version: int) -> None:
    """A feedback.db as today's code leaves it: two papers, two readers' verdicts, one other list's."""
    with closing(sqlite3.connect(path)) as db, db:
        db.executescript(SCHEMA_V2 if version == 2 else SCHEMA_V1)
        terms = ", 'graph molecule'" if version == 2 else ""
        columns = "id, title, vector, seen" + (", terms" if version == 2 else "")
        for paper_id in ("old", "older"):
            db.execute(
                f"INSERT INTO papers ({columns}) VALUES (?, ?, ?, ?{terms})",
                (paper_id, f"An {paper_id} paper", VECTOR.tobytes(), THEN),
            )
        db.executemany(
            "INSERT INTO feedback VALUES (?, ?, ?, ?, ?)",
            [
                ("news", "ada@example.org", "old", "more", THEN),
                ("news", "bob@example.org", "older", "less", THEN + 1),
                ("other", "cy@example.org", "old", "less", THEN + 2),
            ],
        )


def site(folder: Path, database_url: str) -> Settings:
    return Settings(config_dir=folder, database_url=database_url, subscribers_dir=folder / "subscribers")


@pytest.mark.parametrize("version", [1, 2])
def test_an_old_feedback_file_is_imported_once_and_renamed_keeping_every_like(
    tmp_path: Path, database_url: str, version: int, caplog: pytest.LogCaptureFixture
) -> None:
    old_feedback_file(tmp_path / "feedback.db", version)
    settings = site(tmp_path, database_url)
    with caplog.at_level(logging.INFO, logger="newsletter"):
        store = FeedbackStore.open(settings)
    assert not (tmp_path / "feedback.db").exists() and (tmp_path / "feedback.db.imported").is_file()
    said = [r.getMessage() for r in caplog.records if "imported" in r.getMessage()]
    assert len(said) == 1 and "3 feedback verdict(s) and 2 paper(s)" in said[0]
    assert "feedback.db.imported" in said[0]

    tastes = store.tastes("news")
    assert sorted(tastes) == ["ada@example.org", "bob@example.org"]
    assert tastes["ada@example.org"].liked_ids == ("old",)
    assert tastes["bob@example.org"].disliked_ids == ("older",)
    assert list(store.tastes("other")) == ["cy@example.org"]
    remembered = store.paper("old")
    assert remembered is not None and remembered.title == "An old paper"
    assert np.array_equal(remembered.vector, VECTOR.astype(np.float32))
    assert remembered.terms == (("graph", "molecule") if version == 2 else ())

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="newsletter"):
        again = FeedbackStore.open(settings)
    assert not [r for r in caplog.records if "imported" in r.getMessage()]  # once
    assert again.tastes("news")["ada@example.org"].liked_ids == ("old",)


def test_importing_the_old_file_again_never_undoes_a_click_made_since(
    tmp_path: Path, database_url: str
) -> None:
    """An import cut short before the rename runs again on the next start: newer verdicts stay."""
    old_feedback_file(tmp_path / "feedback.db", 2)
    settings = site(tmp_path, database_url)
    FeedbackStore.open(settings).record("news", "ada@example.org", "old", Verdict.LESS)
    (tmp_path / "feedback.db.imported").rename(tmp_path / "feedback.db")

    store = FeedbackStore.open(settings)

    ada = store.tastes("news")["ada@example.org"]
    assert ada.disliked_ids == ("old",) and ada.liked_ids == ()
    assert not (tmp_path / "feedback.db").exists()


def test_a_damaged_old_feedback_file_is_one_line_naming_it_and_stays_where_it_is(tmp_path: Path) -> None:
    path = tmp_path / "feedback.db"
    path.write_bytes(b"not a database at all " * 200)
    with pytest.raises(StoreError) as caught:
        FeedbackStore.open(site(tmp_path, ""))
    message = caught.value.message
    assert message.startswith("the old feedback file cannot be read") and str(path) in message
    assert "\n" not in message and "move it away" in message
    assert path.is_file() and not (tmp_path / "feedback.db.imported").exists()
