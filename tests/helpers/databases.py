"""A real PostgreSQL server for the tests, started from Debian's `postgresql` package, and the
database URLs that let one test run against both engines.

The server is a throw-away cluster in a temporary folder, reached over a unix socket only, with
fsync off (about a second to start). As root (CI), initdb and pg_ctl run as the `postgres` user
through runuser, since PostgreSQL refuses to run as root. `NEWSLETTER_TEST_DATABASE_URL` (a role
that may CREATE DATABASE) is used instead when set. Each test gets a database of its own, copied
from a template that holds nothing yet.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

from newsletter.store import Database, place_of
from newsletter.store.migrations import MIGRATIONS

ENGINES = ("sqlite", "postgresql")
# Read once and taken out of the environment: the tool under test (and every process it starts)
# takes each NEWSLETTER_* variable for a setting, and refuses one it does not know.
TEST_DATABASE_URL = os.environ.pop("NEWSLETTER_TEST_DATABASE_URL", None)
REQUIRE_POSTGRES = bool(os.environ.pop("NEWSLETTER_TEST_REQUIRE_POSTGRES", None))
_TEMPLATE = "newsletter_template"
_counter = itertools.count(1)


@dataclass
class PostgresServer:
    """A server and an admin URL on it; `new_database` makes an empty database for one test."""

    admin_url: str
    folder: Path | None = None  # the cluster we started, if we started one
    options: str = ""  # its server options and log file, to start it again
    log: str = ""

    def new_database(self) -> str:
        name = f"t_{os.getpid()}_{next(_counter)}"
        _admin(self.admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{_TEMPLATE}"')
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def restart(self, *, down: bool = False) -> None:
        """Stop the cluster we started as an operator would (fast: sessions are cut), and start it
        again unless `down`; every client's connection is lost on the way."""
        assert self.folder is not None, "only a cluster the tests started can be restarted"
        data = str(self.folder / "data")
        if (self.folder / "data" / "postmaster.pid").exists():
            _as_postgres([_bin("pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"])
        if not down:  # `pg_ctl restart` would keep our pipe as the server's output: start anew
            _as_postgres([_bin("pg_ctl"), "-D", data, "-o", self.options, "-l", self.log, "-w", "start"])

    def stop(self) -> None:
        if self.folder is not None:
            if (self.folder / "data" / "postmaster.pid").exists():  # a test may have stopped it
                _as_postgres([_bin("pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "stop"])
            shutil.rmtree(self.folder, ignore_errors=True)


def _admin(url: str, statement: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else (shutil.which(name) or name)


def why_no_server() -> str | None:
    """None when a server can be had here, else the reason the PostgreSQL half is skipped."""
    if TEST_DATABASE_URL:
        return None
    if not Path(_bin("initdb")).is_file() or not Path(_bin("pg_ctl")).is_file():
        return (
            "no PostgreSQL here: install Debian's postgresql (.ci/run does)"
            " or set NEWSLETTER_TEST_DATABASE_URL"
        )
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "PostgreSQL refuses to run as root and runuser is missing"
    return None


def _as_postgres(command: list[str]) -> None:
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


def start_server() -> PostgresServer:
    """The server of NEWSLETTER_TEST_DATABASE_URL, or a new throw-away cluster."""
    given = TEST_DATABASE_URL
    if given:
        server = PostgresServer(make_url(given).set(drivername="postgresql+psycopg").render_as_string(False))
    else:
        folder = Path(tempfile.mkdtemp(prefix="nl-pg-"))
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        data = folder / "data"
        _as_postgres([_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"])
        options = f"-k {folder} -c listen_addresses='' -c fsync=off -c full_page_writes=off"
        options += " -c synchronous_commit=off -c max_connections=200"
        log = str(folder / "log")
        _as_postgres([_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", log, "-w", "start"])
        url = f"postgresql+psycopg://postgres@/postgres?host={folder}"
        server = PostgresServer(url, folder, options, log)
    _admin(server.admin_url, f'DROP DATABASE IF EXISTS "{_TEMPLATE}"')
    _admin(server.admin_url, f'CREATE DATABASE "{_TEMPLATE}"')
    return server


def sqlite_url(folder: Path) -> str:
    """A SQLite database file in a test's own folder."""
    return f"sqlite:///{folder / 'newsletter.db'}"


def started_server() -> Iterator[PostgresServer]:
    """For a session fixture: start once, stop at the end."""
    server = start_server()
    try:
        yield server
    finally:
        server.stop()


def database_at_version(url: str, version: int, when: str = "2026-03-14T10:00:00+00:00") -> None:
    """A database as an older release left it: the first `version` steps applied, one delivery."""
    db = Database(place_of(url, Path("unused.db")))
    try:
        with db.write() as conn:
            for migration in MIGRATIONS[:version]:
                migration.apply(conn)
            conn.exec_driver_sql(
                "CREATE TABLE schema_migrations"
                " (version INTEGER PRIMARY KEY, why TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            for number in range(1, version + 1):
                conn.execute(
                    text("INSERT INTO schema_migrations VALUES (:v, 'then', :at)"), {"v": number, "at": when}
                )
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql(f"PRAGMA user_version = {version:d}")
            conn.execute(
                text(
                    "INSERT INTO deliveries"
                    " (issue, list, email, channel, status, attempts, message_id, updated_at) VALUES"
                    " ('2024-W11', 'example', 'ada@example.com', 'smtp', 'delivered', 1, '<1@x>', :at)"
                ),
                {"at": when},
            )
    finally:
        db.dispose()
