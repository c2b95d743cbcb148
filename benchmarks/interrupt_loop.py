"""Stop `newsletter send` many times at random moments and check what it says is exactly true.

    python benchmarks/interrupt_loop.py                      # 30 Ctrl-Cs to the process group
    python benchmarks/interrupt_loop.py --signal TERM        # SIGTERM, as systemd sends it
    python benchmarks/interrupt_loop.py --repo /old/checkout # measure another version

Each run: 400 subscribers, 2 builder processes, a local aiosmtpd server on loopback that takes
each message in ~5 ms; the signal goes to the whole process group (as a terminal's Ctrl-C and
systemd do) once the server has taken a random number of messages. Printed: exit codes, runs
with a traceback on stderr, and whether the stop message's counts match the ledger and server.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

REPO = Path(__file__).resolve().parents[1]


class Sink:
    """Counts accepted messages per recipient."""

    def __init__(self) -> None:
        self.received: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(0.005)
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.received[rcpt] += 1
        return "250 OK"


def write_project(folder: Path, port: int, subscribers: int, repo: Path) -> None:
    rows = ["email,name,keywords,status,subscribed_at,unsubscribed_at"]
    rows += [f"r{i:04d}@example.com,Reader {i},,active,," for i in range(subscribers)]
    (folder / "subscribers").mkdir()
    (folder / "subscribers" / "test.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / "newsletter.toml").write_text(
        f'issue_date = 2024-03-14\npapers = ["{repo / "examples"}"]\ndefault_list = "test"\n'
        'log_file = "send.log"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nconnections = 2\ncompose_processes = 2\n',
        encoding="utf-8",
    )


def ledger(folder: Path) -> collections.Counter[str]:
    if not (folder / "newsletter.db").exists():
        return collections.Counter()
    with sqlite3.connect(folder / "newsletter.db") as db:
        return collections.Counter(status for (status,) in db.execute("SELECT status FROM deliveries"))


@dataclass
class Run:
    """What one stopped run said, and what the ledger and the server saw."""

    exit: int
    traceback: bool
    lines: int
    said_delivered: int | None
    said_in_flight: int
    ledger_delivered: int
    ledger_sending: int
    received: int
    stderr: str


def one_run(repo: Path, sig: signal.Signals, subscribers: int, rng: random.Random) -> Run:
    sink = Sink()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            write_project(folder, port, subscribers, repo)
            env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
            env["PYTHONPATH"] = str(repo)
            process = subprocess.Popen(
                [sys.executable, "-m", "newsletter", "send"],
                cwd=folder,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            # Mid-run, at a random point: once the server has taken a random number of messages.
            target = rng.randint(1, subscribers - 50)
            while process.poll() is None and sum(sink.received.values()) < target:
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.02))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            _, err = process.communicate(timeout=60)
            time.sleep(0.2)  # let the sink finish counting what it took
            rows = ledger(folder)
            received = sum(1 for count in sink.received.values() if count)
            said = re.search(r"after (\d+) (?:sent|delivered)", err)
            flight = re.search(r"; (\d+) in flight", err)
            return Run(
                exit=process.returncode,
                traceback="Traceback" in err,
                # The local-trial warning at the start is not part of the stop message.
                lines=len([line for line in err.splitlines() if not line.startswith("WARNING ")]),
                said_delivered=int(said.group(1)) if said else None,
                said_in_flight=int(flight.group(1)) if flight else 0,
                ledger_delivered=rows["delivered"],
                ledger_sending=rows["sending"],
                received=received,
                stderr=err,
            )
    finally:
        controller.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--subscribers", type=int, default=400)
    parser.add_argument("--signal", choices=["INT", "TERM"], default="INT")
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout to run (default: this one)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sig = signal.Signals[f"SIG{args.signal}"]
    rng = random.Random(args.seed)
    results = [one_run(args.repo.resolve(), sig, args.subscribers, rng) for _ in range(args.runs)]
    stopped = [r for r in results if r.said_delivered is not None]
    exits = collections.Counter(r.exit for r in results)
    tracebacks = [r for r in results if r.traceback]
    wrong_count = [r for r in stopped if r.said_delivered != r.ledger_delivered]
    uncounted = [r for r in stopped if r.received > (r.said_delivered or 0) + r.said_in_flight]
    twice_unsaid = [r for r in stopped if r.ledger_sending and "same Message-ID" not in r.stderr]
    print(f"signal SIG{args.signal} to the process group, {args.runs} runs, repo {args.repo}")
    print(f"exit codes: {dict(sorted(exits.items(), key=str))}")
    print(f"runs with a traceback on stderr: {len(tracebacks)}")
    print(f"runs whose message was more than one line: {sum(1 for r in results if r.lines > 1)}")
    print(f"stopped mid-run: {len(stopped)}; stated delivered != ledger delivered: {len(wrong_count)}")
    print(f"server took more than stated delivered + in flight: {len(uncounted)}")
    print(f"rows left 'sending' but the message did not say they go again: {len(twice_unsaid)}")
    if tracebacks:
        print("first traceback:\n" + tracebacks[0].stderr[-1500:])


if __name__ == "__main__":
    main()
