"""A lost, damaged, full or unwritable database is one line naming the file and the fix, never a
traceback and never a silent re-send of the whole issue."""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers.deliveries import database, fill_after, ledger, statuses
from helpers.smtp_servers import LoopbackServer, RecordingHandler, write_config, write_subscribers

from newsletter.cli import main
from newsletter.errors import StoreError
from newsletter.statuses import DeliveryStatus
from newsletter.store import forget_databases
from newsletter.store.deliveries import Attempt


@pytest.fixture
def smtp() -> Iterator[LoopbackServer]:
    with LoopbackServer() as server:
        yield server


@pytest.fixture
def folder(tmp_path: Path, smtp: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_config(tmp_path, port=smtp.port)
    write_subscribers(tmp_path / "subscribers" / "test.csv", 3)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def send(*args: str) -> Result:
    return CliRunner().invoke(main, ["send", *args])


def received(smtp: LoopbackServer) -> int:
    handler = smtp.handler
    assert isinstance(handler, RecordingHandler)
    return len(handler.received)


def one_line_error(result: Result) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("loss", ["deleted", "truncated"])
def test_a_lost_ledger_is_noticed_and_nothing_is_sent_again(
    folder: Path, smtp: LoopbackServer, loss: str
) -> None:
    assert send().exit_code == 0 and received(smtp) == 3
    ledger = folder / "newsletter.db"
    for leftover in folder.glob("newsletter.db-*"):
        leftover.unlink()
    forget_databases()  # as a new process would: no engine still holding the old file open
    if loss == "deleted":
        ledger.unlink()
    else:
        ledger.write_bytes(b"")
    line = one_line_error(send())
    assert f"in {ledger}" in line and "restore" in line and "--new-ledger" in line
    assert received(smtp) == 3
    assert send("--new-ledger").exit_code == 0 and received(smtp) == 6  # the way out, when chosen


def test_a_new_list_or_a_first_run_needs_no_flag(folder: Path, smtp: LoopbackServer) -> None:
    assert send().exit_code == 0
    assert send().exit_code == 0 and received(smtp) == 3  # the second run resumes, sends nothing


def test_the_local_outbox_trial_can_start_over_freely(project: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["send"]).exit_code == 0
    forget_databases()
    (project / "newsletter.db").unlink()
    assert runner.invoke(main, ["send"]).exit_code == 0


def _scribble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[100:middle] = os.urandom(middle - 100)
    path.write_bytes(bytes(data))


def test_a_damaged_ledger_is_one_line_and_keeps_the_file(folder: Path, smtp: LoopbackServer) -> None:
    assert send().exit_code == 0
    ledger = folder / "newsletter.db"
    with closing(sqlite3.connect(ledger)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    _scribble(ledger)
    damaged = ledger.read_bytes()
    line = one_line_error(send())
    assert f"in {ledger}" in line and "restore" in line
    assert ledger.read_bytes() == damaged and received(smtp) == 3
    line = one_line_error(CliRunner().invoke(main, ["report"]))
    assert f"in {ledger}" in line
    doctor = CliRunner().invoke(main, ["doctor"]).output
    assert f"FAIL database: {ledger}: " in doctor and "damaged" in doctor  # the store's words


def test_a_disk_that_fills_during_a_run_is_one_line_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'newsletter.db'}"
    run = ledger(url)
    fill_after(database(url), 8)  # as if the disk were full 32 KiB further on
    attempts = [Attempt(f"r{i}@example.org", f"<{i}@x>", ("p" * 500,)) for i in range(200)]
    with pytest.raises(StoreError) as caught:
        run.record(attempts=attempts)
    assert caught.value.message.startswith("the disk holding the database is full")
    assert str(tmp_path / "newsletter.db") in caught.value.message
    assert run.counts() == {}  # the batch was rolled back whole: no half-recorded attempt
    run.record(attempts=attempts[:1])
    assert run.counts() == {DeliveryStatus.SENDING: 1}


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in (root ignores modes: use a read-only mount)."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    for candidate in (Path("/sys/kernel"), Path("/proc/sys")):
        try:
            tempfile.TemporaryFile(dir=candidate).close()
        except OSError:
            return candidate
    pytest.skip("no unwritable folder on this machine")


def test_a_ledger_in_a_read_only_folder_is_one_line(folder: Path, smtp: LoopbackServer) -> None:
    place = unwritable_folder(folder) / "newsletter.db"
    config = folder / "newsletter.toml"
    config.write_text(config.read_text().replace('ledger = "newsletter.db"', f'ledger = "{place}"'))
    line = one_line_error(send())
    assert str(place.parent) in line and "writable" in line
    assert received(smtp) == 0


def test_doctor_really_writes_to_the_ledger(folder: Path) -> None:
    place = unwritable_folder(folder) / "newsletter.db"
    config = folder / "newsletter.toml"
    config.write_text(config.read_text().replace('ledger = "newsletter.db"', f'ledger = "{place}"'))
    result = CliRunner().invoke(main, ["doctor"])
    assert "FAIL database" in result.output and str(place) in result.output


@pytest.mark.parametrize(
    ("number", "says"),
    [
        (errno.ENOSPC, "the disk holding the database is full"),
        (errno.EFBIG, "the database reached the largest file this process may write"),
        (errno.EDQUOT, "the disk quota of this user is used up"),
    ],
)
def test_each_way_of_running_out_of_space_is_named(tmp_path: Path, number: int, says: str) -> None:
    db = database(f"sqlite:///{tmp_path / 'newsletter.db'}")
    error = db.error(OSError(number, os.strerror(number)), "write to")
    assert error.message.startswith(says) and str(tmp_path / "newsletter.db") in error.message
    assert "run the same command again afterwards: it resumes" in str(error.fix)


def test_a_ledger_that_fills_mid_dispatch_stops_sending_and_records_every_answer(tmp_path: Path) -> None:
    """In process, so the failing write is the same every time: no hang, no message after the
    failure, and the ledger's 'delivered' is exactly what the server received."""
    import asyncio

    from newsletter.delivery.dispatch import Dispatcher, Job
    from newsletter.delivery.smtp import SmtpTarget
    from newsletter.mail.compose import ComposedMessage
    from newsletter.settings import SmtpSecurity, SmtpSettings

    url = f"sqlite:///{tmp_path / 'newsletter.db'}"
    run = ledger(url)
    fill_after(database(url), 16)  # as if the disk were full 64 KiB further on
    papers = tuple(f"paper-{n:04d}-" + "x" * 200 for n in range(6))
    jobs = [
        Job(
            f"r{i:03d}@example.org",
            ComposedMessage.of(f"<{i}@x>", f"r{i:03d}@example.org", b"Subject: hi\r\n\r\nhello\r\n"),
            papers,
        )
        for i in range(300)
    ]
    with LoopbackServer() as smtp:
        target = SmtpTarget(host="127.0.0.1", port=smtp.port, security=SmtpSecurity.NONE, timeout=5)
        dispatcher = Dispatcher(target, "digest@example.org", SmtpSettings(connections=3), ledger=run)
        with pytest.raises(StoreError, match="disk holding the database is full"):
            asyncio.run(asyncio.wait_for(dispatcher.run(jobs), 60))  # a hang fails, it does not wait
    run.close()
    got = (
        {item.recipient for item in smtp.handler.received}
        if isinstance(smtp.handler, RecordingHandler)
        else set()
    )
    says = statuses(url)
    assert 0 < len(got) < len(jobs)
    assert {email for email, status in says.items() if status == "delivered"} == got
    assert {status for email, status in says.items() if email not in got} <= {"sending"}
