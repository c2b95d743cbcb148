"""Exactly once through `kill -9`: `newsletter send` as a real process, killed mid-run, then run again,
with its deliveries in SQLite or in PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import signal
from collections import defaultdict
from pathlib import Path

import pytest
from helpers.deliveries import attempted_twice, recorded, senders_of
from helpers.senders import start_send, wait_until
from helpers.smtp_servers import (
    LoopbackServer,
    RecordingHandler,
    write_config,
    write_subscribers,
)

SUBSCRIBERS = 300


def ledger(folder: Path) -> dict[str, tuple[str, str]]:
    """Address -> (status, Message-ID) in the default database beside the config."""
    return recorded(f"sqlite:///{folder / 'newsletter.db'}")


@pytest.mark.parametrize("builders", [0, 2], ids=["in-process", "builder-processes"])
def test_sigkill_mid_run_with_a_second_sender_running_delivers_everyone_exactly_once(
    tmp_path: Path, builders: int, database_url: str
) -> None:
    active = write_subscribers(tmp_path / "subscribers" / "test.csv", SUBSCRIBERS, unsubscribed=(5, 77))
    handler = RecordingHandler(delay=0.01)
    with LoopbackServer(handler) as server:
        write_config(tmp_path, port=server.port, connections=4, compose_processes=builders)
        first = start_send(tmp_path, database_url=database_url)
        wait_until(lambda: len(handler.received) >= 60 or first.poll() is not None)
        handler.delay = 0.5  # slow the first run to a crawl while a second one starts
        overlapping = start_send(tmp_path, database_url=database_url)  # a second cron job meanwhile
        wait_until(lambda: senders_of(database_url) == 2 or overlapping.poll() is not None)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        assert first.returncode == -signal.SIGKILL, first.stderr.read() if first.stderr else ""
        assert 0 < len(handler.received) < len(active)

        handler.delay = 0.0  # the second sender takes over what the killed one held, and finishes
        out, err = overlapping.communicate(timeout=120)
        again = start_send(tmp_path, "--json", database_url=database_url)
        again_out, again_err = again.communicate(timeout=120)
    assert overlapping.returncode == 0, err
    assert again.returncode == 0, again_err
    assert json.loads(again_out)["sent"] == 0  # nothing was left for a third run

    by_recipient: dict[str, set[str]] = defaultdict(set)
    copies: dict[str, int] = defaultdict(int)
    for item in handler.received:
        by_recipient[item.recipient].add(item.message_id)
        copies[item.recipient] += 1
    assert sorted(by_recipient) == active  # nobody skipped, no unsubscriber mailed
    assert all(len(ids) == 1 for ids in by_recipient.values())  # any duplicate has the same Message-ID
    resent = attempted_twice(database_url)  # handed over by the killed sender, sent again
    assert {email for email, n in copies.items() if n > 1} <= resent
    resumed = re.search(r"(\d+) resumed after an interrupted run", out)
    assert len(resent) == (int(resumed.group(1)) if resumed else 0), out
    rows = recorded(database_url)
    assert {status for status, _ in rows.values()} == {"delivered"}
    assert all(rows[email][1] in by_recipient[email] for email in active)
    assert database_url.startswith("sqlite") or not (tmp_path / "newsletter.db").exists()  # all in PostgreSQL


def test_the_sending_row_is_committed_before_data_so_a_kill_mid_data_is_resumed(
    tmp_path: Path, database_url: str
) -> None:
    active = write_subscribers(tmp_path / "subscribers" / "test.csv", 3)
    victim = active[0]
    handler = RecordingHandler(plan=lambda rcpt, tries: "stall" if rcpt == victim else None, stall_seconds=60)
    with LoopbackServer(handler) as server:
        write_config(tmp_path, port=server.port, connections=1, timeout=60)
        process = start_send(tmp_path, database_url=database_url)
        wait_until(lambda: victim in handler.attempts or process.poll() is not None)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    rows = recorded(database_url)
    status, message_id = rows[victim]
    assert status == "sending" and message_id
    in_flight = sum(1 for status, _ in rows.values() if status == "sending")  # queued ones too

    with LoopbackServer() as server:
        write_config(tmp_path, port=server.port, connections=1)
        again = start_send(tmp_path, "--json", database_url=database_url)
        out, err = again.communicate(timeout=60)
    report = json.loads(out)
    assert again.returncode == 0, err
    assert report["resumed"] == in_flight and report["sent"] == 3
    delivered = {item.recipient: item.message_id for item in server.handler.received}
    assert delivered[victim] == message_id


def test_ctrl_c_stops_cleanly_and_the_next_run_finishes(tmp_path: Path) -> None:
    active = write_subscribers(tmp_path / "subscribers" / "test.csv", SUBSCRIBERS)
    handler = RecordingHandler(delay=0.01)
    with LoopbackServer(handler) as server:
        write_config(tmp_path, port=server.port, connections=2, compose_processes=2)
        first = start_send(tmp_path, start_new_session=True)
        wait_until(lambda: len(handler.received) >= 40 or first.poll() is not None)
        os.killpg(first.pid, signal.SIGINT)  # the whole process group, as a terminal's Ctrl-C does
        _, err = first.communicate(timeout=30)
        assert first.returncode == 130, err
        assert err.startswith("Stopped by Ctrl-C after ") and "Run the same command again" in err
        assert "Traceback" not in err  # neither the sender nor a builder process
        with pytest.raises(ProcessLookupError):
            os.killpg(first.pid, 0)  # no builder process left behind

        handler.delay = 0.0
        second = start_send(tmp_path)
        _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert sorted({item.recipient for item in handler.received}) == active


@pytest.mark.parametrize("whom", ["process", "group"], ids=["timeout-style", "systemd-style"])
def test_sigterm_stops_like_ctrl_c_with_exact_counts_and_a_log_line(tmp_path: Path, whom: str) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", SUBSCRIBERS)
    handler = RecordingHandler(delay=0.01)
    with LoopbackServer(handler) as server:
        config = write_config(tmp_path, port=server.port, connections=2, compose_processes=2)
        config.write_text('log_file = "send.log"\n' + config.read_text(encoding="utf-8"), encoding="utf-8")
        first = start_send(tmp_path, start_new_session=True)
        wait_until(lambda: len(handler.received) >= 40 or first.poll() is not None)
        if whom == "group":
            os.killpg(first.pid, signal.SIGTERM)  # systemd signals every process of the unit
        else:
            first.send_signal(signal.SIGTERM)  # `timeout` signals only the command it ran
        _, err = first.communicate(timeout=30)
        received = len(handler.received)
    assert first.returncode == 130, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    match = re.fullmatch(
        r"Stopped by SIGTERM after (\d+) delivered in this run; (.*)\."
        r" Run the same command again to resume\.\n",
        err,
    )
    assert match, err
    statuses = [status for status, _ in ledger(tmp_path).values()]
    assert int(match.group(1)) == statuses.count("delivered")
    in_flight = statuses.count("sending")
    if in_flight:
        assert match.group(2).startswith(f"{in_flight} in flight") and "same Message-ID" in match.group(2)
    else:
        assert match.group(2) == "nothing was in flight, so nobody gets the issue twice"
    assert statuses.count("delivered") <= received <= statuses.count("delivered") + in_flight
    log = (tmp_path / "send.log").read_text(encoding="utf-8")
    assert "send stopped by SIGTERM after" in log and f"{in_flight} in flight" in log
    with pytest.raises(ProcessLookupError):
        os.killpg(first.pid, 0)  # no builder process left behind
