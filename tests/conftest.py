"""Fixtures shared across test modules."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.databases import (
    ENGINES,
    REQUIRE_POSTGRES,
    PostgresServer,
    sqlite_url,
    started_server,
    why_no_server,
)
from helpers.recorded import RecordedServer

from newsletter.store import forget_databases

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped config and sample data, as a fresh clone has them, with no
    NEWSLETTER_* variables leaking in from the machine running the tests."""
    shutil.copy(ROOT / "newsletter.toml", tmp_path / "newsletter.toml")
    for folder in ("examples", "subscribers", "templates"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    for key in [k for k in os.environ if k.startswith("NEWSLETTER_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture()
def server() -> Iterator[RecordedServer]:
    """A local HTTP server replaying recorded answers (queue them with server.queue)."""
    recorded = RecordedServer()
    recorded.start()
    yield recorded
    recorded.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throw-away PostgreSQL for the whole run (or NEWSLETTER_TEST_DATABASE_URL's)."""
    reason = why_no_server()
    if reason:
        # CI sets NEWSLETTER_TEST_REQUIRE_POSTGRES: there a missing server is a failure, not a skip.
        if REQUIRE_POSTGRES:
            pytest.fail(reason)
        pytest.skip(reason)
    yield from started_server()


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each engine in turn: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


@pytest.fixture(autouse=True)
def _close_databases() -> Iterator[None]:
    """Close the engines a test opened (one per database, kept by open_database): their pooled
    connections would otherwise pile up until PostgreSQL has none left to give."""
    yield
    forget_databases()
