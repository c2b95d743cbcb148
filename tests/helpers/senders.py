"""`newsletter send` as real processes, as cron or several hosts start them, and waiting on them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from helpers.deliveries import attempted_twice, owners_of, sending_of, statuses
from helpers.smtp_servers import REPO, LoopbackServer, RecordingHandler, write_config, write_subscribers


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


@dataclass
class KillOutcome:
    """What the SMTP sink got when one of several senders was killed mid-batch."""

    active: list[str]  # every active subscriber
    copies: dict[str, list[str]]  # recipient -> the Message-IDs it got, one per copy
    resent: set[str]  # rows handed to the server more than once (the killed sender's in flight)
    exit_codes: list[int]  # of the senders that were not killed
    outputs: list[str]  # their stdout and stderr, for a failure's message
    statuses: set[str]  # of every delivery row at the end


def kill_one_of_three_senders(folder: Path, database_url: str, subscribers: int = 3000) -> KillOutcome:
    """Three `newsletter send` on one issue; once all three hold rows, SIGKILL the first while it
    has messages handed to the server; the other two finish the issue."""
    active = write_subscribers(folder / "subscribers" / "test.csv", subscribers)
    handler = RecordingHandler(delay=0.05)  # slow until all three have claimed, then full speed
    with LoopbackServer(handler) as server:
        write_config(folder, port=server.port, connections=4, compose_processes=0)
        senders = [start_send(folder, database_url=database_url) for _ in range(3)]
        wait_until(lambda: owners_of(database_url) >= 3 or any(s.poll() is not None for s in senders), 180)
        victim = senders[0]
        wait_until(lambda: sending_of(database_url, victim.pid) > 0 or victim.poll() is not None)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        handler.delay = 0.0
        outputs = ["".join(survivor.communicate(timeout=600)) for survivor in senders[1:]]
    copies: dict[str, list[str]] = {}
    for item in handler.received:
        copies.setdefault(item.recipient, []).append(item.message_id)
    return KillOutcome(
        active,
        copies,
        attempted_twice(database_url),
        [survivor.returncode for survivor in senders[1:]],
        outputs,
        set(statuses(database_url).values()),
    )
