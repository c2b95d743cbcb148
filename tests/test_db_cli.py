"""`newsletter db status | upgrade | copy --to URL` on both engines, through the real command line."""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers.databases import PostgresServer, database_at_version, sqlite_url
from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url

from newsletter.cli import main
from newsletter.store import SCHEMA_VERSION, Database, open_database, place_of
from newsletter.store.limits import count_hit
from newsletter.store.schema import database_identity, deliveries, feedback, metadata, subscribers

WHEN = "2026-03-14T10:00:00+00:00"


@pytest.fixture(autouse=True)
def _no_machine_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEWSLETTER_DATABASE_URL", raising=False)


def newsletter(folder: Path, database_url: str, *args: str) -> Result:
    """Run `newsletter ARGS` with a config in `folder` whose database is `database_url`."""
    config = folder / "newsletter.toml"
    config.write_text(f"database_url = {json.dumps(database_url)}\n", encoding="utf-8")
    return CliRunner().invoke(main, ["--config", str(config), *args])


def opened(url: str) -> Database:
    return open_database(place_of(url, Path("unused.db")))


def fill(url: str, readers: int = 3) -> None:
    """A database with rows in several tables, as sends, sign-ups and clicks leave them."""
    db = opened(url)
    with db.write() as conn:
        conn.execute(
            insert(subscribers),
            [
                {
                    "list": "news",
                    "email_key": f"r{i}@example.org",
                    "email": f"R{i}@example.org",
                    "status": "active",
                    "changed_at": WHEN,
                    "extra": json.dumps({"team": "ü"}),
                }
                for i in range(readers)
            ],
        )
        conn.execute(
            insert(deliveries),
            [
                {
                    "issue": "2026-W11",
                    "list": "news",
                    "email": f"r{i}@example.org",
                    "channel": "smtp",
                    "status": "delivered",
                    "attempts": 1,
                    "message_id": f"<{i}@x>",
                    "updated_at": WHEN,
                }
                for i in range(readers)
            ],
        )
        conn.execute(
            insert(feedback),
            {"list": "news", "email": "r0@example.org", "paper_id": "p", "verdict": "more", "at": WHEN},
        )
    count_hit(db, "signups per ip:abc", 10, 3600, 1_800_000_000)


def contents(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every copied table, in a stable order, through an engine of its own."""
    db = Database(place_of(url, Path("unused.db")))
    try:
        with db.read() as conn:
            return {
                table.name: sorted(tuple(row) for row in conn.execute(select(table)))
                for table in metadata.sorted_tables
                if table is not database_identity
            }
    finally:
        db.dispose()


def counts_printed(result: Result) -> dict[str, tuple[int, int]]:
    rows = re.findall(r"^  (\w+)\s+([\d,]+)\s+([\d,]+)$", result.output, flags=re.M)
    return {name: (int(a.replace(",", "")), int(b.replace(",", ""))) for name, a, b in rows}


# --- status -------------------------------------------------------------------------------------


def test_status_shows_engine_place_version_and_rows_per_table(tmp_path: Path, database_url: str) -> None:
    fill(database_url)
    result = newsletter(tmp_path, database_url, "db", "status")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    engine = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    assert lines[0] == f"engine: {engine}"
    assert lines[1] == f"where: {place_of(database_url, Path('unused.db')).shown}"
    assert lines[2] == f"schema version: {SCHEMA_VERSION} (current)"
    rows = dict(re.findall(r"^  (\w+)\s+([\d,]+)$", result.output, flags=re.M))
    assert rows["subscribers"] == "3" and rows["deliveries"] == "3" and rows["feedback"] == "1"
    assert rows["rate_limits"] == "1" and rows["signups"] == "0"
    assert set(rows) == {table.name for table in metadata.sorted_tables}


def test_status_json_has_the_same_facts(tmp_path: Path, database_url: str) -> None:
    fill(database_url, readers=2)
    result = newsletter(tmp_path, database_url, "db", "status", "--json")
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["schema_version"] == status["release_schema_version"] == SCHEMA_VERSION
    assert status["state"] == "current" and status["tables"]["subscribers"] == 2
    assert status["engine"] in database_url


def test_status_never_shows_the_password(tmp_path: Path, postgres_server: PostgresServer) -> None:
    url = make_url(postgres_server.new_database()).set(password="hunter2").render_as_string(False)
    result = newsletter(tmp_path, url, "db", "status", "--json")  # the test server trusts the socket
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output and "postgres:***@" in result.output


def test_status_of_a_database_not_made_yet_creates_none(tmp_path: Path) -> None:
    result = newsletter(tmp_path, "", "db", "status")
    assert result.exit_code == 0, result.output
    assert "schema version: none (not created yet)" in result.output
    assert not (tmp_path / "newsletter.db").exists()


def test_status_says_an_older_database_can_be_upgraded_and_leaves_it_older(
    tmp_path: Path, database_url: str
) -> None:
    database_at_version(database_url, 3)
    result = newsletter(tmp_path, database_url, "db", "status", "--json")
    status = json.loads(result.output)
    assert status["schema_version"] == 3 and status["state"] == "upgradable"
    assert status["tables"] == {"deliveries": 1, "issue_snapshots": 0}
    assert (
        json.loads(newsletter(tmp_path, database_url, "db", "status", "--json").output)["schema_version"] == 3
    )


# --- upgrade ------------------------------------------------------------------------------------


def test_upgrade_says_from_which_version_to_which_and_keeps_the_rows(
    tmp_path: Path, database_url: str
) -> None:
    database_at_version(database_url, 3)
    shown = place_of(database_url, Path("unused.db")).shown
    first = newsletter(tmp_path, database_url, "db", "upgrade")
    assert first.exit_code == 0, first.output
    assert first.output == f"Upgraded the database {shown} from schema version 3 to {SCHEMA_VERSION}.\n"
    again = newsletter(tmp_path, database_url, "db", "upgrade")
    assert again.output == f"The database {shown} is at schema version {SCHEMA_VERSION} already.\n"
    assert len(contents(database_url)["deliveries"]) == 1


def test_upgrade_imports_an_old_feedback_file(tmp_path: Path, database_url: str) -> None:
    with closing(sqlite3.connect(tmp_path / "feedback.db")) as old, old:
        old.executescript(
            "CREATE TABLE papers (id TEXT PRIMARY KEY, title TEXT NOT NULL, vector BLOB NOT NULL,"
            " seen REAL NOT NULL, terms TEXT NOT NULL DEFAULT '');"
            "CREATE TABLE feedback (list TEXT NOT NULL, email TEXT NOT NULL, paper_id TEXT NOT NULL,"
            " verdict TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (list, email, paper_id));"
            "INSERT INTO papers VALUES ('p', 'A paper', x'0038', 0, '');"
            "INSERT INTO feedback VALUES ('news', 'ada@example.org', 'p', 'more', 0);"
            "PRAGMA user_version = 2;"
        )
    result = newsletter(tmp_path, database_url, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "Imported 1 feedback verdict(s) and 1 paper(s)" in result.output
    assert str(tmp_path / "feedback.db.imported") in result.output
    assert len(contents(database_url)["feedback"]) == 1


def test_upgrade_refuses_a_database_from_a_newer_release_in_one_line(
    tmp_path: Path, database_url: str
) -> None:
    db = opened(database_url)
    with db.write() as conn:
        conn.execute(
            text("INSERT INTO schema_migrations VALUES (:v, 'future', :at)"),
            {"v": SCHEMA_VERSION + 1, "at": WHEN},
        )
    result = newsletter(tmp_path, database_url, "db", "upgrade")
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: the database has schema version {SCHEMA_VERSION + 1}, newer")
    assert result.output.count("\n") == 1


# --- copy ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("source_engine", ["sqlite", "postgresql"])
def test_copy_moves_every_table_to_the_other_engine_and_prints_both_sides(
    tmp_path: Path, postgres_server: PostgresServer, source_engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("newsletter.store.copying.BATCH", 2)  # several batches per table
    sqlite, postgresql = sqlite_url(tmp_path), postgres_server.new_database()
    source, target = (sqlite, postgresql) if source_engine == "sqlite" else (postgresql, sqlite)
    fill(source)

    result = newsletter(tmp_path, source, "db", "copy", "--to", target)

    assert result.exit_code == 0, result.output
    assert contents(target) == contents(source)
    printed = counts_printed(result)
    assert (
        printed["subscribers"] == (3, 3) and printed["deliveries"] == (3, 3) and printed["feedback"] == (1, 1)
    )
    assert all(a == b for a, b in printed.values()) and len(printed) == len(metadata.sorted_tables) - 1


def test_copy_into_postgresql_keeps_handing_out_new_subscriber_ids(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    target = postgres_server.new_database()
    fill(sqlite_url(tmp_path))
    assert newsletter(tmp_path, sqlite_url(tmp_path), "db", "copy", "--to", target).exit_code == 0
    with opened(target).write() as conn:
        added = conn.execute(
            insert(subscribers)
            .values(
                list="news",
                email_key="new@example.org",
                email="new@example.org",
                status="active",
                changed_at=WHEN,
            )
            .returning(subscribers.c.id)
        ).scalar_one()
    assert added == 4


def test_copying_again_replaces_the_earlier_copy_with_the_source_as_it_is_now(
    tmp_path: Path, database_url: str
) -> None:
    source = f"sqlite:///{tmp_path / 'source' / 'newsletter.db'}"
    fill(source, readers=3)
    assert newsletter(tmp_path, source, "db", "copy", "--to", database_url).exit_code == 0
    with opened(source).write() as conn:
        conn.execute(subscribers.delete().where(subscribers.c.email_key == "r2@example.org"))
    again = newsletter(tmp_path, source, "db", "copy", "--to", database_url)
    assert again.exit_code == 0, again.output
    assert contents(database_url) == contents(source)
    assert counts_printed(again)["subscribers"] == (2, 2)


def test_copy_refuses_a_target_holding_other_data_and_changes_nothing(
    tmp_path: Path, database_url: str
) -> None:
    fill(database_url, readers=1)
    before = contents(database_url)
    source = f"sqlite:///{tmp_path / 'source' / 'newsletter.db'}"
    fill(source)
    result = newsletter(tmp_path, source, "db", "copy", "--to", database_url)
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output.startswith(
        "Error: the target already holds rows that are not a copy of this database"
    )
    assert "1 in subscribers" in result.output and "copy into an empty database" in result.output
    assert contents(database_url) == before


def test_copy_refuses_a_target_newer_than_this_release(tmp_path: Path, database_url: str) -> None:
    with opened(database_url).write() as conn:
        conn.execute(
            text("INSERT INTO schema_migrations VALUES (:v, 'future', :at)"),
            {"v": SCHEMA_VERSION + 1, "at": WHEN},
        )
    source = f"sqlite:///{tmp_path / 'source' / 'newsletter.db'}"
    fill(source)
    result = newsletter(tmp_path, source, "db", "copy", "--to", database_url)
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert f"schema version {SCHEMA_VERSION + 1}, newer than this release knows" in result.output
    assert contents(database_url)["subscribers"] == []


@pytest.mark.parametrize(
    ("to", "said"),
    [
        ("newsletter-copy.db", "the URL 'newsletter-copy.db' is not a database address, in --to"),
        ("mysql://u:pw@db/x", "the URL names 'mysql', which newsletter does not support, in --to"),
    ],
)
def test_copy_to_something_that_is_not_a_database_url_is_one_line(tmp_path: Path, to: str, said: str) -> None:
    result = newsletter(tmp_path, "", "db", "copy", "--to", to)
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output.startswith(f"Error: {said}") and "pw" not in result.output


def test_copy_refuses_to_copy_a_database_onto_itself(tmp_path: Path) -> None:
    fill(sqlite_url(tmp_path))
    result = newsletter(tmp_path, "", "db", "copy", "--to", sqlite_url(tmp_path))
    assert result.exit_code == 1 and "the target is the database in use" in result.output
