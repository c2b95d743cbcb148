"""PostgreSQL restarted (or gone) in the middle of a send, with real processes and a real cluster:
the sender waits and carries on, nobody is lost or sent twice; a server that stays down ends the
run in one line, and the next run resumes."""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.databases import PostgresServer, start_server
from helpers.deliveries import statuses
from helpers.senders import start_send, wait_until
from helpers.smtp_servers import LoopbackServer, RecordingHandler, write_config, write_subscribers

READERS = 200


@pytest.fixture
def cluster() -> Iterator[PostgresServer]:
    """A cluster of this test's own: restarting the suite's would cut every other test's sessions."""
    server = start_server()
    if server.folder is None:
        pytest.skip("NEWSLETTER_TEST_DATABASE_URL names a server these tests cannot restart")
    try:
        yield server
    finally:
        server.stop()


def delivered(url: str) -> int:
    try:
        return sum(status == "delivered" for status in statuses(url).values())
    except Exception:  # the server is restarting, or the tables are not made yet
        return 0


def sending(folder: Path, port: int, url: str, reconnect_seconds: int) -> subprocess.Popen[str]:
    """A `newsletter send` on READERS readers into `url`, once some of them are delivered."""
    write_subscribers(folder / "subscribers" / "test.csv", READERS)
    config = write_config(folder, port=port, connections=2, compose_processes=0)
    config.write_text(f"reconnect_seconds = {reconnect_seconds}\n" + config.read_text())
    sender = start_send(folder, database_url=url)
    wait_until(lambda: delivered(url) >= 30 or sender.poll() is not None, 180)
    return sender


def copies(handler: RecordingHandler) -> Counter[str]:
    return Counter(item.recipient for item in handler.received)


def test_a_restart_mid_send_is_waited_out_and_every_reader_gets_the_issue_once(
    tmp_path: Path, cluster: PostgresServer
) -> None:
    url = cluster.new_database()
    handler = RecordingHandler(delay=0.01)
    with LoopbackServer(handler) as server:
        sender = sending(tmp_path, server.port, url, reconnect_seconds=60)
        cluster.restart()
        out, err = sender.communicate(timeout=300)
    assert sender.returncode == 0, out + err
    assert "Traceback" not in err
    got = copies(handler)
    assert len(got) == READERS and set(got.values()) == {1}, got.most_common(3)
    assert set(statuses(url).values()) == {"delivered"}


def test_a_server_that_stays_down_ends_the_send_in_one_line_and_the_next_run_resumes(
    tmp_path: Path, cluster: PostgresServer
) -> None:
    url = cluster.new_database()
    handler = RecordingHandler(delay=0.01)
    with LoopbackServer(handler) as server:
        sender = sending(tmp_path, server.port, url, reconnect_seconds=3)
        cluster.restart(down=True)
        out, err = sender.communicate(timeout=120)
        errors = [line for line in (out + err).splitlines() if line.startswith("Error:")]
        assert sender.returncode == 1 and "Traceback" not in err, out + err
        assert len(errors) == 1 and "for 3 s" in errors[0] and "it resumes" in errors[0], out + err
        cluster.restart()  # back up: the same command again
        again = start_send(tmp_path, database_url=url)
        out, err = again.communicate(timeout=300)
    assert again.returncode == 0, out + err
    got = copies(handler)
    assert sorted(got) == sorted(statuses(url)) and len(got) == READERS
    # Only messages handed over while their answers could not be recorded come twice: the batch
    # recorded ahead of the connections at most, and with their Message-ID.
    twice = [recipient for recipient, count in got.items() if count > 1]
    assert len(twice) <= 16, twice
    ids: dict[str, set[str]] = {}
    for item in handler.received:
        ids.setdefault(item.recipient, set()).add(item.message_id)
    assert all(len(ids[recipient]) == 1 for recipient in twice)
    assert set(statuses(url).values()) == {"delivered"}
