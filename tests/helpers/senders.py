"""`newsletter send` as real processes, as cron or several hosts start them, and waiting on them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from helpers.smtp_servers import REPO


def start_send(
    folder: Path, *args: str, start_new_session: bool = False, database_url: str | None = None
) -> subprocess.Popen[str]:
    """`newsletter send ARGS` on the config in `folder`, its deliveries in `database_url` if that
    is PostgreSQL (else the default SQLite file beside the config)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    env = {key: value for key, value in env.items() if not key.startswith("NEWSLETTER_")}
    if database_url is not None and database_url.startswith("postgresql"):
        env["NEWSLETTER_DATABASE_URL"] = database_url  # else the default: newsletter.db in folder
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "--config", str(folder / "newsletter.toml"), "send", *args],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=start_new_session,
    )


def wait_until(condition: Callable[[], object], seconds: float = 60.0) -> None:
    """Poll `condition` until it holds; fail the test after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)
