"""The one database: built by the same numbered steps on SQLite and PostgreSQL, old ledgers upgraded
in place, and every failure one line that names the database."""

from __future__ import annotations

import sqlite3
import stat
import threading
from contextlib import closing
from pathlib import Path

import pytest
from helpers.databases import PostgresServer
from sqlalchemy import inspect, text

from newsletter.errors import ConfigError, StoreError
from newsletter.store import SCHEMA_VERSION, Database, forget_databases, open_database, place_of, upgrade
from newsletter.store.migrations import MIGRATIONS, current_version
from newsletter.store.schema import metadata


def opened(url: str) -> Database:
    return Database(place_of(url, Path("unused.db")))


def upgraded(url: str) -> Database:
    db = opened(url)
    with db.write() as conn:
        upgrade(conn, db.place.shown)
    return db


def shape(db: Database) -> dict[str, tuple[list[str], list[str], set[tuple[str, ...]]]]:
    """Each table's columns, primary key and indexed column sets, as the database reports them."""
    with db.read() as conn:
        seen = inspect(conn)
        return {
            table: (
                sorted(c["name"] for c in seen.get_columns(table)),
                sorted(seen.get_pk_constraint(table)["constrained_columns"]),
                {tuple(str(name) for name in i["column_names"]) for i in seen.get_indexes(table)},
            )
            for table in seen.get_table_names()
            if table != "schema_migrations"
        }


def test_a_new_database_is_built_to_exactly_the_schema_the_code_queries(database_url: str) -> None:
    db = upgraded(database_url)
    expected = {
        table.name: (
            sorted(c.name for c in table.columns),
            sorted(c.name for c in table.primary_key.columns),
            {tuple(c.name for c in index.columns) for index in table.indexes},
        )
        for table in metadata.sorted_tables
    }
    assert shape(db) == expected
    with db.read() as conn:
        assert current_version(conn) == SCHEMA_VERSION == len(MIGRATIONS)


def test_on_postgresql_a_delivery_row_has_room_to_be_rewritten_in_place(
    postgres_server: PostgresServer,
) -> None:
    """A sender's attempt and answer change no indexed column (the shape above) and find room on
    the row's page: PostgreSQL then writes no index entry for them (heap-only updates)."""
    db = upgraded(postgres_server.new_database())
    with db.read() as conn:
        options = conn.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'deliveries'")).scalar()
        queue = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'deliveries_queue'")
        ).scalar()
    assert options == ["fillfactor=60"]
    assert "status" not in str(queue) and "WHERE (owner IS NULL)" in str(queue)


def test_upgrading_twice_changes_nothing_and_reports_the_version_it_found(database_url: str) -> None:
    db = upgraded(database_url)
    with db.write() as conn:
        assert upgrade(conn, db.place.shown) == SCHEMA_VERSION


def test_two_processes_upgrading_at_once_run_each_step_once(database_url: str) -> None:
    errors: list[BaseException] = []

    def one() -> None:
        try:
            upgraded(database_url).dispose()
        except BaseException as exc:  # collected: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with opened(database_url).read() as conn:
        versions = conn.execute(text("SELECT version FROM schema_migrations ORDER BY version")).scalars()
        assert list(versions) == list(range(1, SCHEMA_VERSION + 1))


def _legacy_ledger(path: Path) -> None:
    """A ledger as released before the store: schema version 3, one delivery recorded."""
    with closing(sqlite3.connect(path, isolation_level=None)) as legacy:
        for migration in MIGRATIONS[:3]:
            fake = _RawConnection(legacy)
            migration.apply(fake)  # type: ignore[arg-type]
        legacy.execute(
            "INSERT INTO deliveries (issue, list, email, channel, status, attempts, message_id, updated_at)"
            " VALUES ('2024-W11', 'example', 'ada@example.com', 'smtp', 'delivered', 1, '<1@x>', 'then')"
        )
        legacy.execute("PRAGMA user_version = 3")


class _RawConnection:
    """Just enough of a SQLAlchemy connection for the SQLite-only steps 1-3 on a raw sqlite3 file."""

    class dialect:  # mirrors Connection.dialect.name
        name = "sqlite"

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def exec_driver_sql(self, statement: str) -> None:
        self.db.execute(statement)


def test_a_ledger_from_before_the_store_is_upgraded_in_place_keeping_its_deliveries(tmp_path: Path) -> None:
    path = tmp_path / "newsletter.db"
    _legacy_ledger(path)
    db = upgraded(f"sqlite:///{path}")
    with db.read() as conn:
        rows = conn.execute(text("SELECT email, status FROM deliveries")).all()
        assert [tuple(row) for row in rows] == [("ada@example.com", "delivered")]
        assert current_version(conn) == SCHEMA_VERSION
    with closing(sqlite3.connect(path)) as raw:
        # An older release reads only user_version: it must see a newer file and refuse it.
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_database_from_a_newer_release_is_refused_in_one_line(database_url: str) -> None:
    db = upgraded(database_url)
    with db.write() as conn:
        conn.execute(
            text("INSERT INTO schema_migrations (version, why, applied_at) VALUES (:v, 'future', 'later')"),
            {"v": SCHEMA_VERSION + 1},
        )
    with pytest.raises(StoreError) as caught, db.write() as conn:
        upgrade(conn, db.place.shown)
    assert f"schema version {SCHEMA_VERSION + 1}, newer than this release knows" in caught.value.message
    assert db.place.shown in caught.value.message


def test_a_database_holding_someone_elses_tables_is_left_alone(database_url: str) -> None:
    db = opened(database_url)
    with db.write() as conn:
        conn.execute(text("CREATE TABLE invoices (id INTEGER PRIMARY KEY)"))
    with pytest.raises(StoreError, match=r"not newsletter's .*invoices"), db.write() as conn:
        upgrade(conn, db.place.shown)
    with db.read() as conn:
        assert inspect(conn).get_table_names() == ["invoices"]


def test_the_sqlite_file_is_created_for_its_owner_only(tmp_path: Path) -> None:
    upgraded(f"sqlite:///{tmp_path / 'state' / 'newsletter.db'}")
    assert stat.S_IMODE((tmp_path / "state" / "newsletter.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700


def test_sqlite_writers_in_several_threads_queue_instead_of_failing_as_busy(tmp_path: Path) -> None:
    db = upgraded(f"sqlite:///{tmp_path / 'newsletter.db'}")
    errors: list[BaseException] = []

    def hit(n: int) -> None:
        try:
            for i in range(20):
                with db.write() as conn:
                    seen = conn.execute(text("SELECT count(*) FROM rate_limits")).scalar_one()
                    conn.execute(
                        text("INSERT INTO rate_limits (key, window_start, hits) VALUES (:k, :w, :h)"),
                        {"k": f"t{n}", "w": i, "h": seen},
                    )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hit, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with db.read() as conn:
        hits = sorted(conn.execute(text("SELECT hits FROM rate_limits")).scalars())
    assert hits == list(range(80))  # each writer saw every earlier write: they ran one at a time


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("mysql://u:secret@db/x", "names 'mysql', which newsletter does not support"),
        ("::not a url::", "is not a database address"),
    ],
)
def test_a_database_url_newsletter_cannot_use_is_a_config_error(url: str, said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        place_of(url, Path("unused.db"))
    assert said in caught.value.message
    assert "secret" not in caught.value.message


def test_an_unreachable_postgresql_is_one_line_naming_it_without_the_password(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    db = opened(f"postgresql://digest:hunter2@/newsletter?host={tmp_path}")  # no server listens there
    with pytest.raises(StoreError) as caught, db.read():
        pass
    message = caught.value.message
    assert message.startswith("cannot reach the PostgreSQL server")
    assert str(tmp_path) in message and "hunter2" not in message


def test_opening_a_database_brings_it_up_to_date_once(database_url: str) -> None:
    place = place_of(database_url, Path("unused.db"))
    db = open_database(place)
    assert open_database(place) is db  # one engine per process
    with db.read() as conn:
        assert current_version(conn) == SCHEMA_VERSION
    forget_databases()
