"""Peak memory of each process of a whole `newsletter send` as the list grows, into Postfix's `smtp-sink`.

    python benchmarks/bench_send_memory.py                                  # 50,000, 100,000, 200,000
    python benchmarks/bench_send_memory.py --subscribers 1000000            # the issue's million
    python benchmarks/bench_send_memory.py --subscribers 100000 --code /tmp/old-checkout

For each size, a fresh folder whose list is in SQLite only (rows added through
`SubscriberStore.add_many`, the path `subscribers import` takes, in chunks), with the same readers,
config and features as bench_smtp_sink.py (1-3 keywords each, semantic ranking, feedback links,
VERP). Then the real CLI, `python -m newsletter send --json`, sends into one Postfix `smtp-sink`
on loopback (installed from Debian's postfix if missing, as bench_smtp_sink.py does).

Prints per size: messages sent, wall time, delivery rate, CPU of the whole process tree, the peak
RSS (VmHWM, read from /proc every 0.2 s) of the sender and of each builder process, and the load
average; then how much each process's peak grew per 100,000 readers between the sizes. A send
whose memory is flat in the list's length grows by about nothing; one that keeps something per
reader grows linearly.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_send import write_config
from bench_smtp_sink import CONNECTIONS, Sink, ensure_postfix  # one sink, the same readers

_CHUNK = 20_000  # rows added per transaction while the list is built


@dataclass
class Peaks:
    """What one send cost: time, CPU and each process's peak resident memory (KiB)."""

    subscribers: int
    sent: int
    seconds: float
    cpu_seconds: float
    sender_kib: int
    builders_kib: list[int]


def fill_list(folder: Path, count: int, code: Path) -> float:
    """The list in the database, as an import leaves it (no CSV): seconds it took."""
    script = f"""
import sys, time
sys.path.insert(0, {str(code)!r}); sys.path.insert(0, {str(REPO / "benchmarks")!r})
from itertools import islice
from pathlib import Path
from bench_smtp_sink import readers
from newsletter.configfile import ListPlaces
from newsletter.models import Subscriber
from newsletter.subscribers import open_list
store = open_list(ListPlaces(config_dir=Path({str(folder)!r})), "bench")
rows = readers({count})
while chunk := [Subscriber(email, name, keywords) for email, name, keywords in islice(rows, {_CHUNK})]:
    store.add_many(chunk)
"""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", script], check=True)
    return time.perf_counter() - started


def _hwm_kib(pid: int) -> int:
    """A process's peak resident set so far (VmHWM), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def run_send(folder: Path, code: Path) -> Peaks:
    """`newsletter send` of this checkout in its own process tree, its peaks sampled from /proc."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    out = folder / "send.json"
    command = [sys.executable, "-m", "newsletter", "--config", str(folder / "newsletter.toml")]
    started = time.perf_counter()
    with out.open("wb") as stdout, (folder / "send.err").open("wb") as stderr:
        run = subprocess.Popen(
            [*command, "send", "--json"],
            cwd=folder,
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
    sender, builders = 0, dict[int, int]()
    while True:
        pid, status, usage = os.wait4(run.pid, os.WNOHANG)
        if pid:
            break
        sender = max(sender, _hwm_kib(run.pid))
        for child in _children(run.pid):
            builders[child] = max(builders.get(child, 0), _hwm_kib(child))
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"newsletter send failed: {(folder / 'send.err').read_text()[-2000:]}")
    report = json.loads(out.read_text())
    # ru_maxrss of the command itself is not in wait4's usage (that is its children's), so the
    # sender's peak is the sampled one; a builder's is sampled too (the largest is in ru_maxrss).
    return Peaks(
        subscribers=0,
        sent=report["sent"],
        seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        sender_kib=sender,
        builders_kib=sorted(builders.values(), reverse=True),
    )


def measure(count: int, sink: Sink, root: Path, code: Path) -> Peaks:
    folder = root / f"n{count}"
    (folder / "subscribers").mkdir(parents=True)
    write_config(folder, sink.port, CONNECTIONS, features=True)
    filled = fill_list(folder, count, code)
    print(f"--- {count} subscribers in the database in {filled:.0f} s; sending", flush=True)
    peaks = run_send(folder, code)
    peaks.subscribers = count
    builders = ", ".join(f"{kib / 1024:.0f}" for kib in peaks.builders_kib) or "none"
    print(
        f"{count} subscribers: {peaks.sent} sent in {peaks.seconds:.0f} s"
        f" ({peaks.sent / peaks.seconds:.0f} msg/s), CPU {peaks.cpu_seconds:.0f} s"
        f" ({1000 * peaks.cpu_seconds / max(peaks.sent, 1):.2f} ms/msg, all processes)"
        f" | peak RSS: sender {peaks.sender_kib / 1024:.0f} MiB, builders {builders} MiB"
        f" | load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, nargs="+", default=[50_000, 100_000, 200_000])
    parser.add_argument("--code", type=Path, default=REPO, help="the checkout whose `newsletter` to run")
    args = parser.parse_args()
    sink_binary, _ = ensure_postfix()
    sink = Sink(sink_binary)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            runs = [measure(count, sink, Path(tmp), args.code.resolve()) for count in args.subscribers]
    finally:
        sink.stop()
    for small, large in itertools.pairwise(runs):
        per = 100_000 / (large.subscribers - small.subscribers)
        grown = max(large.builders_kib or [0]) - max(small.builders_kib or [0])
        print(
            f"{small.subscribers} -> {large.subscribers}: per 100,000 readers the sender's peak grew"
            f" {(large.sender_kib - small.sender_kib) * per / 1024:+.1f} MiB, the largest builder's"
            f" {grown * per / 1024:+.1f} MiB"
        )


if __name__ == "__main__":
    main()
