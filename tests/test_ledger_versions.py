"""The ledger's schema is versioned: old ledgers are migrated in one transaction, newer or broken ones
are one-line errors everywhere (a run, a dry run, a preview), never an empty history."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.smtp_servers import write_config, write_subscribers

from newsletter.cli import main
from newsletter.errors import LedgerError
from newsletter.ledger import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Attempt,
    DeliveryLedger,
    DeliveryResult,
    Migration,
    transaction,
)
from newsletter.statuses import DeliveryStatus
from newsletter.store import SCHEMA_VERSION as STORE_SCHEMA_VERSION

# The schema as released before versioning (user_version 0): ledgers like this exist on disk.
UNVERSIONED = """
CREATE TABLE deliveries (
    issue TEXT NOT NULL, list TEXT NOT NULL, email TEXT NOT NULL, channel TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('sending', 'delivered', 'failed', 'deferred')),
    attempts INTEGER NOT NULL DEFAULT 0, last_reply TEXT, message_id TEXT NOT NULL,
    papers TEXT NOT NULL DEFAULT '[]', updated_at TEXT NOT NULL,
    PRIMARY KEY (issue, list, email, channel)
);
CREATE INDEX deliveries_by_address ON deliveries (list, channel, email);
INSERT INTO deliveries VALUES ('2024-W10', 'test', 'ada@example.org', 'smtp', 'delivered', 1,
    '250 ok', '<a@x>', '["p1"]', '2024-03-07');
"""


def user_version(path: Path) -> int:
    with closing(sqlite3.connect(path)) as db, db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def unversioned(path: Path) -> Path:
    with closing(sqlite3.connect(path)) as db, db:
        db.executescript(UNVERSIONED)
    return path


def with_version(path: Path, version: int) -> Path:
    DeliveryLedger(path, "2024-W11", "test", "smtp").close()
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(f"PRAGMA user_version = {version}")
    return path


def test_a_new_ledger_carries_the_current_schema_version(tmp_path: Path) -> None:
    DeliveryLedger(tmp_path / "l.db", "2024-W11", "test", "smtp").close()
    assert user_version(tmp_path / "l.db") == SCHEMA_VERSION >= 1


def test_an_unversioned_ledger_is_migrated_and_keeps_its_history(tmp_path: Path) -> None:
    path = unversioned(tmp_path / "l.db")
    ledger = DeliveryLedger(path, "2024-W11", "test", "smtp")
    assert ledger.papers_received_before() == {"ada@example.org": frozenset({"p1"})}
    ledger.record(attempts=[Attempt("bob@example.org", "<b@x>", ())])
    ledger.close()
    assert user_version(path) == SCHEMA_VERSION


def test_an_unversioned_ledger_is_read_for_a_dry_run_without_being_changed(tmp_path: Path) -> None:
    path = unversioned(tmp_path / "l.db")
    before = path.read_bytes()
    assert DeliveryLedger.peek_received(path, "2024-W11", "test", "smtp") == {
        "ada@example.org": frozenset({"p1"})
    }
    entries = DeliveryLedger.peek_entries(path, "2024-W10", "test", "smtp")
    assert entries["ada@example.org"].status is DeliveryStatus.DELIVERED
    assert path.read_bytes() == before and user_version(path) == 0


@pytest.mark.parametrize("how", ["open", "peek"])
def test_a_ledger_from_a_newer_release_is_refused(tmp_path: Path, how: str) -> None:
    path = with_version(tmp_path / "l.db", STORE_SCHEMA_VERSION + 1)
    with pytest.raises(LedgerError, match=f"schema version {STORE_SCHEMA_VERSION + 1}, newer than"):
        if how == "open":
            DeliveryLedger(path, "2024-W11", "test", "smtp")
        else:
            DeliveryLedger.peek_entries(path, "2024-W11", "test", "smtp")
    assert user_version(path) == STORE_SCHEMA_VERSION + 1


@pytest.mark.parametrize("how", ["open", "peek"])
def test_a_file_that_is_not_a_ledger_is_an_error_and_is_left_alone(tmp_path: Path, how: str) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database\n" * 100)
    foreign = tmp_path / "foreign.db"
    with closing(sqlite3.connect(foreign)) as db, db:
        db.execute("CREATE TABLE photos (id INTEGER)")
    for path, what in ((garbage, "cannot read|cannot open"), (foreign, "not a delivery ledger")):
        before = path.read_bytes()
        with pytest.raises(LedgerError, match=what):
            if how == "open":
                DeliveryLedger(path, "2024-W11", "test", "smtp")
            else:
                DeliveryLedger.peek_received(path, "2024-W11", "test", "smtp")
        assert path.read_bytes() == before


def test_a_missing_ledger_is_an_empty_history_and_is_not_created(tmp_path: Path) -> None:
    assert DeliveryLedger.peek_entries(tmp_path / "none.db", "2024-W11", "test", "smtp") == {}
    assert not (tmp_path / "none.db").exists()


def test_a_failing_migration_leaves_the_ledger_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = unversioned(tmp_path / "l.db")
    broken = Migration("a step that fails half way", ("CREATE TABLE half (x)", "NOT SQL AT ALL"))
    monkeypatch.setattr("newsletter.ledger.MIGRATIONS", (*MIGRATIONS, broken))
    monkeypatch.setattr("newsletter.ledger.SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(LedgerError, match="cannot open the delivery ledger"):
        DeliveryLedger(path, "2024-W11", "test", "smtp")
    with closing(sqlite3.connect(path)) as db, db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"deliveries"}
        assert db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0] == 1
    assert user_version(path) == 0


def test_transaction_commits_inside_the_block_and_rolls_back_only_an_open_one(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    db.execute("CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(RuntimeError), transaction(db):
        db.execute("INSERT INTO parent VALUES (1)")
        raise RuntimeError("stop")
    assert not db.in_transaction and db.execute("SELECT COUNT(*) FROM parent").fetchone()[0] == 0
    # The foreign key is only checked at COMMIT: a COMMIT that fails is part of the guarded block.
    with pytest.raises(sqlite3.IntegrityError), transaction(db):
        db.execute("INSERT INTO child VALUES (7)")
    assert not db.in_transaction and db.execute("SELECT COUNT(*) FROM child").fetchone()[0] == 0
    with transaction(db):
        db.execute("INSERT INTO parent VALUES (2)")
    assert db.execute("SELECT id FROM parent").fetchall() == [(2,)]
    db.close()


@pytest.mark.parametrize(
    "command", [["send", "--dry-run"], ["preview", "--subscriber", "reader0000@example.com"]]
)
@pytest.mark.parametrize(
    ("ledger", "message"),
    [("garbage", "the database file is damaged"), ("newer", "newer than this release knows")],
)
def test_dry_run_and_preview_refuse_a_ledger_they_cannot_read(
    tmp_path: Path, command: list[str], ledger: str, message: str
) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 2)
    config = write_config(tmp_path, host="embedded")
    path = tmp_path / "newsletter.db"
    if ledger == "garbage":
        path.write_bytes(b"\x00not a database" * 200)
    else:
        with_version(path, STORE_SCHEMA_VERSION + 1)
    before = path.read_bytes()
    result = CliRunner().invoke(
        main,
        ["--config", str(config), *command, "--out", str(tmp_path / "out")]
        if command[0] == "preview"
        else ["--config", str(config), *command],
    )
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert path.read_bytes() == before


def test_the_ledger_refuses_a_status_that_is_not_a_delivery_status(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    ledger = DeliveryLedger(path, "2024-W11", "test", "smtp")
    ledger.record(attempts=[Attempt("a@x.org", "<1@x>", ())])
    ledger.record(outcomes=[DeliveryResult("a@x.org", DeliveryStatus.DELIVERED, "250 ok")])
    ledger.close()
    with pytest.raises(sqlite3.IntegrityError), closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE deliveries SET status = 'lost'")


def test_a_version_1_ledger_learns_to_keep_withdrawn_rows_and_keeps_its_history(tmp_path: Path) -> None:
    path = unversioned(tmp_path / "l.db")
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("PRAGMA user_version = 1")  # the UNVERSIONED table is exactly version 1's
    ledger = DeliveryLedger(path, "2024-W11", "test", "smtp")
    ledger.record(attempts=[Attempt("bob@example.org", "<b@x>", ())])
    ledger.record(outcomes=[DeliveryResult("bob@example.org", DeliveryStatus.WITHDRAWN, "unsubscribed")])
    assert ledger.entries()["bob@example.org"].status == "withdrawn"
    assert ledger.papers_received_before() == {"ada@example.org": frozenset({"p1"})}
    ledger.close()
    assert user_version(path) == SCHEMA_VERSION
    with closing(sqlite3.connect(path)) as db:
        indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "deliveries_by_address" in indexes
