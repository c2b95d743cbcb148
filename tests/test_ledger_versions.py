"""Ledgers of earlier releases upgrade in place keeping their history; newer or broken databases
are one-line errors everywhere (a run, a dry run, a preview), never an empty history."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.deliveries import database, ledger, old_ledger
from helpers.smtp_servers import write_config, write_subscribers
from sqlalchemy import text

from newsletter.cli import main
from newsletter.errors import StoreError
from newsletter.statuses import DeliveryStatus
from newsletter.store import SCHEMA_VERSION, Database, opening, place_of
from newsletter.store import migrations as steps
from newsletter.store.deliveries import Attempt, DeliveryResult
from newsletter.store.sendqueue import SendQueue

ADA = (
    "2024-W10",
    "test",
    "ada@example.org",
    "smtp",
    "delivered",
    "1",
    "250 ok",
    "<a@x>",
    '["p1"]',
    "2024-03-07",
)


def user_version(path: Path) -> int:
    with closing(sqlite3.connect(path)) as db, db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def from_a_newer_release(url: str) -> None:
    with database(url).write() as conn:
        conn.execute(
            text("INSERT INTO schema_migrations (version, why, applied_at) VALUES (:v, 'later', 'later')"),
            {"v": SCHEMA_VERSION + 1},
        )
    opening.forget_databases()


@pytest.mark.parametrize("version", [0, 1], ids=["unversioned", "version-1"])
def test_a_ledger_of_an_earlier_release_is_upgraded_and_keeps_its_history(
    tmp_path: Path, version: int
) -> None:
    url = old_ledger(tmp_path / "l.db", version, ADA)
    run = ledger(url)
    assert run.papers_received_before() == {"ada@example.org": frozenset({"p1"})}
    run.record(attempts=[Attempt("bob@example.org", "<b@x>", ())])
    run.record(outcomes=[DeliveryResult("bob@example.org", DeliveryStatus.WITHDRAWN, "unsubscribed")])
    assert run.entries()["bob@example.org"].status == "withdrawn"  # what version 2 added
    assert user_version(tmp_path / "l.db") == SCHEMA_VERSION  # an older release now refuses it
    with closing(sqlite3.connect(tmp_path / "l.db")) as db:
        indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "deliveries_by_address" in indexes


def test_a_database_from_a_newer_release_is_refused_and_left_as_it_is(database_url: str) -> None:
    ledger(database_url).record(attempts=[Attempt("a@x.org", "<1@x>", ())])
    from_a_newer_release(database_url)
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer than"):
        ledger(database_url)
    assert version_and_deliveries(database_url) == (SCHEMA_VERSION + 1, 1)


def version_and_deliveries(url: str) -> tuple[int, int]:
    """Read around open_database, which would refuse the database: nothing is upgraded."""
    db = Database(place_of(url, Path("unused.db")))
    try:
        with db.read() as conn:
            version = conn.execute(text("SELECT max(version) FROM schema_migrations")).scalar_one()
            return int(version), int(conn.execute(text("SELECT count(*) FROM deliveries")).scalar_one())
    finally:
        db.dispose()


def test_a_file_that_is_not_newsletters_is_an_error_and_is_left_alone(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database\n" * 100)
    foreign = tmp_path / "foreign.db"
    with closing(sqlite3.connect(foreign)) as db, db:
        db.execute("CREATE TABLE photos (id INTEGER)")
    for path, what in ((garbage, "it is damaged or is not a database"), (foreign, "not newsletter's")):
        before = path.read_bytes()
        with pytest.raises(StoreError, match=what) as caught:
            ledger(f"sqlite:///{path}")
        assert str(path) in caught.value.message
        assert path.read_bytes() == before


def test_a_failing_upgrade_leaves_the_ledger_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "l.db"
    url = old_ledger(path, 0, ADA)
    broken = steps.Migration(
        "a step that fails half way", steps._run("CREATE TABLE half (x INTEGER)", "NOT SQL")
    )
    monkeypatch.setattr(steps, "MIGRATIONS", (*steps.MIGRATIONS, broken))
    monkeypatch.setattr(steps, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setattr(opening, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match="cannot write to the database"):
        ledger(url)
    with closing(sqlite3.connect(path)) as db, db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"deliveries"}
        assert db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0] == 1
    assert user_version(path) == 0


@pytest.mark.parametrize(
    "command", [["send", "--dry-run"], ["preview", "--subscriber", "reader0000@example.com"]]
)
@pytest.mark.parametrize(
    ("state", "message"),
    [("garbage", "cannot read the database: it is damaged"), ("newer", "newer than this release knows")],
)
def test_dry_run_and_preview_refuse_a_database_they_cannot_read(
    tmp_path: Path, command: list[str], state: str, message: str
) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 2)
    config = write_config(tmp_path, host="embedded")
    path = tmp_path / "newsletter.db"
    if state == "garbage":
        path.write_bytes(b"\x00not a database" * 200)
    else:
        from_a_newer_release(f"sqlite:///{path}")
    before = path.read_bytes()
    out = ["--out", str(tmp_path / "out")] if command[0] == "preview" else []
    result = CliRunner().invoke(main, ["--config", str(config), *command, *out])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert path.read_bytes() == before


def test_a_database_of_the_release_before_the_queue_upgrades_and_its_issue_resumes(tmp_path: Path) -> None:
    """schema5/newsletter.db was written by the release before many senders (1df78ce): ada got
    2024-W11, bob was deferred, cy was handed to the server with no answer."""
    path = tmp_path / "newsletter.db"
    path.write_bytes((Path(__file__).parent / "fixtures" / "schema5" / "newsletter.db").read_bytes())
    db = database(f"sqlite:///{path}")
    queue = SendQueue(db, "2024-W11", "lab", "smtp")
    queue.fan_out(["ada@example.org", "bob@example.org", "cy@example.org", "dee@example.org"])
    queue.register()
    claims = {claim.email: claim.status for claim in queue.claim(10)}
    assert claims == {
        "bob@example.org": DeliveryStatus.QUEUED,  # deferred: tried again
        "cy@example.org": DeliveryStatus.SENDING,  # uncertain: again with its Message-ID
        "dee@example.org": DeliveryStatus.QUEUED,
    }
    entries = ledger(f"sqlite:///{path}", "2024-W11", "lab").entries()
    assert entries["cy@example.org"].message_id == "<2.2024-W11@example.org>"
    assert entries["ada@example.org"].status == DeliveryStatus.DELIVERED
    assert user_version(path) == SCHEMA_VERSION
