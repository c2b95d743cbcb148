"""A disk that fills during a whole `newsletter send` (a real process, a real SMTP server): one
line naming the file and the fix, exit 1, no traceback, and the database still says exactly who got
the issue, so the run once space is back sends each reader the issue once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.deliveries import statuses
from helpers.smtp_servers import REPO, LoopbackServer, RecordingHandler, write_config, write_subscribers

Done = subprocess.CompletedProcess[str]
READERS = 120
# Above what the start of a run writes (the snapshot, the feedback store), well below a
# whole run's write-ahead log: the limit is met part way through the deliveries.
FILE_SIZE_LIMIT = 900_000  # claims and leases write more than the one-sender ledger did
LIMITED = (
    "import resource, signal, sys\n"
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG\n"
    f"resource.setrlimit(resource.RLIMIT_FSIZE, ({FILE_SIZE_LIMIT}, {FILE_SIZE_LIMIT}))\n"
    "from newsletter.cli import main\n"
    "main(['send'])\n"
)


@pytest.fixture
def smtp() -> Iterator[LoopbackServer]:
    with LoopbackServer() as server:
        yield server


def send(folder: Path, *, limited: bool = False, ledger: Path | None = None, lease: str = "60") -> Done:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["PYTHONPATH"] = str(REPO)  # this tree's code, not the copy installed in .venv
    env["NEWSLETTER_LEASE_SECONDS"] = lease
    if ledger is not None:
        env["NEWSLETTER_LEDGER"] = str(ledger)
    command = ["-c", LIMITED] if limited else ["-m", "newsletter", "send"]
    return subprocess.run(
        [sys.executable, *command], cwd=folder, env=env, capture_output=True, text=True, timeout=300
    )


def received(smtp: LoopbackServer) -> Counter[str]:
    handler = smtp.handler
    assert isinstance(handler, RecordingHandler)
    return Counter(handler.recipients())


def ledger_says(ledger: Path) -> dict[str, str]:
    return statuses(f"sqlite:///{ledger}")


def check_stopped_part_way(result: Done, ledger: Path, smtp: LoopbackServer) -> str:
    """Exit 1 with one line and no traceback; the ledger names exactly the readers the server got."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "Exception" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith("Error: "), output
    assert f"in {ledger}," in lines[0] and "run the same command again afterwards: it resumes" in lines[0]
    got = received(smtp)
    assert 0 < len(got) < READERS, f"the limit was not met part way ({len(got)} sent): change FILE_SIZE_LIMIT"
    assert set(got.values()) == {1}
    says = ledger_says(ledger)
    assert {email for email, status in says.items() if status == "delivered"} == set(got)
    assert {status for email, status in says.items() if email not in got} <= {
        "queued",
        "sending",
    }  # never sent
    return lines[0]


def check_resumed(result: Done, ledger: Path, smtp: LoopbackServer) -> None:
    """Once there is room again: exit 0, everyone has the issue once, nobody twice."""
    assert result.returncode == 0, result.stdout + result.stderr
    got = received(smtp)
    assert len(got) == READERS and set(got.values()) == {1}, got.most_common(3)
    assert set(ledger_says(ledger).values()) == {"delivered"}


# With the longest lease no heartbeat falls inside the run and the limit meets a claim or a
# delivery write; with a 2 s lease heartbeats write three times a second and meet it as well.
@pytest.mark.parametrize("lease", ["3600", "2"])
def test_a_send_that_meets_the_file_size_limit_stops_in_one_line_and_resumes_exactly(
    tmp_path: Path, smtp: LoopbackServer, lease: str
) -> None:
    write_config(tmp_path, port=smtp.port)
    write_subscribers(tmp_path / "subscribers" / "test.csv", READERS)
    ledger = tmp_path / "newsletter.db"
    line = check_stopped_part_way(send(tmp_path, limited=True, lease=lease), ledger, smtp)
    assert f"the database reached the largest file this process may write ({FILE_SIZE_LIMIT} bytes," in line
    assert "raise the limit (`ulimit -f unlimited`" in line
    check_resumed(send(tmp_path), ledger, smtp)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 800 KiB tmpfs: a disk that really fills (ENOSPC) part way through a run, after the list is
    read in. Mounting needs root; CI runs as root."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the file size limit test covers the rest")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=800k,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"root but cannot mount a tmpfs on CI: {done.stderr.strip()}")
        pytest.skip(f"root but cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_send_that_fills_the_disk_stops_in_one_line_and_resumes_exactly(
    tmp_path: Path, smtp: LoopbackServer, small_disk: Path
) -> None:
    write_config(tmp_path, port=smtp.port)
    write_subscribers(tmp_path / "subscribers" / "test.csv", READERS)
    ledger = small_disk / "newsletter.db"
    line = check_stopped_part_way(send(tmp_path, ledger=ledger), ledger, smtp)
    assert "the disk holding the database is full" in line and "free space there" in line
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    check_resumed(send(tmp_path, ledger=ledger), ledger, smtp)
    assert not Path(f"{ledger}-reserve").exists()


def filed(outbox: Path) -> Counter[str]:
    """Whom the embedded server filed a message for, by the To: address of each file."""
    names: Counter[str] = Counter()
    for path in (outbox / "new").iterdir():
        head = path.read_bytes().split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
        to = next(line for line in head.splitlines() if line.startswith(b"To: "))
        names[to.decode().rsplit("<", 1)[-1].rstrip(">\r")] += 1
    return names


def test_an_outbox_that_fills_stops_in_one_line_and_gives_up_on_nobody(
    tmp_path: Path, small_disk: Path
) -> None:
    outbox = small_disk / "outbox"
    write_config(tmp_path, host="embedded", outbox=str(outbox))
    write_subscribers(tmp_path / "subscribers" / "test.csv", READERS)
    ledger = tmp_path / "newsletter.db"
    result = send(tmp_path)
    output = result.stdout + result.stderr
    assert "Traceback" not in output and result.returncode == 1, output
    assert output.strip().splitlines() == [
        f"Error: cannot file messages in the outbox: the disk is full, in {outbox}, free space there "
        "(or set smtp.outbox to a folder on another disk), then run send again: it resumes with those "
        "not yet filed"
    ]
    got, says = filed(outbox), ledger_says(ledger)
    assert 0 < len(got) < READERS and set(got.values()) == {1}
    assert {email for email, status in says.items() if status == "delivered"} == set(got)
    assert {status for email, status in says.items() if email not in got} <= {"queued", "sending", "deferred"}
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    assert send(tmp_path).returncode == 0
    got = filed(outbox)
    assert len(got) == READERS and set(got.values()) == {1}
