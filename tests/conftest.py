"""Fixtures shared across test modules."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.recorded import RecordedServer

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
