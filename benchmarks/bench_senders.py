"""What the shared queue costs: claiming and recording N deliveries, by one or two processes;
and a whole `newsletter send` by one sender process against `--workers 2`, into Postfix's smtp-sink.

    python benchmarks/bench_senders.py [--deliveries 100000] [--batch 500] [--engine postgresql|sqlite]
    python benchmarks/bench_senders.py --sink [--subscribers 10000] [--engine ...]

Each process claims a batch, records it 'sending' (the attempt, before DATA) and then the
server's answers ('delivered'), as a sender does, with no SMTP and no rendering: only the
database's part of a send. PostgreSQL is a throw-away cluster as the tests start it (or
NEWSLETTER_TEST_DATABASE_URL). Prints the time, deliveries per second, the CPU of the
sending processes and of the PostgreSQL server per delivery, and checks that every delivery was
claimed exactly once.

With --sink: the real CLI on a list with semantic ranking, feedback links and VERP
(benchmarks/bench_smtp_sink.py's setup), one process and then `--workers 2`, interleaved over the
rounds, into one smtp-sink: msg/s of each and the CPU of the whole process tree per message.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]  # code, test helpers

from bench_smtp_sink import Sink, ensure_postfix, fresh_folder, write_list
from helpers.databases import PostgresServer, sqlite_url, start_server
from sqlalchemy import text

from newsletter.statuses import DeliveryStatus
from newsletter.store import Database, open_database, place_of
from newsletter.store.deliveries import Attempt, DeliveryLedger, DeliveryResult
from newsletter.store.sendqueue import Heartbeat, SendQueue

ISSUE, LIST, CHANNEL = "2026-W50", "bench", "smtp"


def _sender(url: str, batch: int, claimed: multiprocessing.Queue[int]) -> None:
    """One process: claim, record attempts, record answers, until the queue is empty."""
    db = Database(place_of(url, Path("unused.db")))
    queue = SendQueue(db, ISSUE, LIST, CHANNEL)
    queue.register()
    heartbeat = Heartbeat(queue)  # as a sender's: a run longer than the lease keeps its rows
    heartbeat.start()
    ledger = DeliveryLedger(db, ISSUE, LIST, CHANNEL, owner=queue.owner)
    taken = 0
    while claims := queue.claim(batch):
        emails = [claim.email for claim in claims]
        ledger.record(attempts=[Attempt(email, f"<{email}>", ("p1", "p2")) for email in emails])
        ledger.record([DeliveryResult(email, DeliveryStatus.DELIVERED, "250 2.0.0 ok") for email in emails])
        taken += len(claims)
    heartbeat.stop()
    queue.finish(completed=True)
    claimed.put(taken)


def _stat(pid: str) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def server_cpu(server: PostgresServer | None) -> float:
    """CPU seconds of the PostgreSQL cluster we started: the postmaster with its exited backends
    (reaped into its children's time) and the backends alive now (Linux /proc)."""
    if server is None or server.folder is None:
        return 0.0
    postmaster = (server.folder / "data" / "postmaster.pid").read_text().split()[0]
    fields = _stat(postmaster)
    ticks = sum(int(value) for value in fields[11:15])
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = _stat(stat.parent.name)
        except OSError:
            continue
        if fields[1] == postmaster:  # its parent: a backend or a background worker
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def measure(url: str, deliveries: int, batch: int, processes: int, server: PostgresServer | None) -> None:
    db = open_database(place_of(url, Path("unused.db")))  # made and upgraded
    queue = SendQueue(db, ISSUE, LIST, CHANNEL)
    started = time.perf_counter()
    queue.fan_out(f"reader{n:07d}@example.org" for n in range(deliveries))
    queued = time.perf_counter() - started
    results: multiprocessing.Queue[int] = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_sender, args=(url, batch, results)) for _ in range(processes)]
    started, children, database = time.perf_counter(), os.times(), server_cpu(server)
    for worker in workers:
        worker.start()
    taken = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    spent = time.perf_counter() - started
    time.sleep(0.5)  # the senders' server processes exit and are reaped into the postmaster's time
    after = os.times()
    senders = after.children_user + after.children_system - children.children_user - children.children_system
    database = server_cpu(server) - database
    with db.read() as conn:
        delivered = conn.execute(text("SELECT count(*) FROM deliveries WHERE status = 'delivered'")).scalar()
    print(
        f"{processes} process(es): queued {deliveries:,} in {queued:.2f}s; claimed and recorded them in "
        f"{spent:.2f}s ({deliveries / spent:,.0f}/s); claims per process {taken}; "
        f"{delivered:,} delivered, each once: {sum(taken) == deliveries == delivered}; CPU per delivery:"
        f" senders {1e6 * senders / deliveries:.0f} us, database server {1e6 * database / deliveries:.0f} us;"
        f" load average {os.getloadavg()[0]:.1f}"
    )


def send_once(
    folder: Path, sink: Sink, total: int, workers: int, server: PostgresServer | None
) -> tuple[float, float, float]:
    """The real CLI, one process or `--workers N`: msg/s, CPU ms per message of its whole tree, and
    the PostgreSQL server's CPU ms per message (0 on SQLite, where it is inside the tree's)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if server is not None:  # a database of its own on the shared server
        env["NEWSLETTER_DATABASE_URL"] = server.new_database()
    command = [sys.executable, "-m", "newsletter", "--config", str(folder / "newsletter.toml"), "send"]
    command += ["--json"] + (["--workers", str(workers)] if workers > 1 else [])
    before, started, children, database = sink.mark(), time.perf_counter(), os.times(), server_cpu(server)
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    after = os.times()
    time.sleep(0.5)  # the run's server processes exit and are reaped into the postmaster's time
    database = server_cpu(server) - database
    if done.returncode:
        raise SystemExit(f"Error: newsletter send failed ({done.returncode}): {done.stderr[-2000:]}")
    time.sleep(0.3)  # the sink's last counter line
    sent = int(json.loads(done.stdout)["sent"])  # readers with nothing new this week get no mail
    if sink.mark() - before != sent or sent < total * 0.99:
        got = sink.mark() - before
        raise SystemExit(f"Error: the sink got {got} messages, the send says {sent} of {total}")
    cpu = after.children_user + after.children_system - children.children_user - children.children_system
    return sent / elapsed, 1000 * cpu / sent, 1000 * database / sent


def sink_rounds(subscribers: int, rounds: int, server: PostgresServer | None) -> None:
    """One sender process against two, interleaved, into one smtp-sink."""
    sink = Sink(ensure_postfix()[0])
    rates: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            write_list(root / "bench.csv", subscribers)
            for round_no in range(1, rounds + 1):
                for workers in (1, 2):
                    folder = fresh_folder(root, subscribers, sink.port, f"r{round_no}w{workers}")
                    rate, cpu, database = send_once(folder, sink, subscribers, workers, server)
                    rates[workers].append((rate, cpu))
                    share = (
                        f", PostgreSQL server {database:.2f} ms/msg ({database / (cpu + database):.1%})"
                        if server is not None
                        else ""
                    )
                    print(
                        f"round {round_no}, {workers} sender process(es): {rate:.0f} msg/s whole command,"
                        f" CPU {cpu:.2f} ms/msg (all its processes){share}, load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
    finally:
        sink.stop()
    one, two = max(r for r, _ in rates[1]), max(r for r, _ in rates[2])
    print(f"best of {rounds}: 1 process {one:.0f} msg/s, 2 processes {two:.0f} msg/s, ratio {two / one:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--engine", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--sink", action="store_true", help="whole sends into smtp-sink: 1 process vs 2")
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    server = start_server() if args.engine == "postgresql" else None
    try:
        if args.sink:
            sink_rounds(args.subscribers, args.rounds, server)
            return
        for processes in (1, 2):
            with tempfile.TemporaryDirectory() as folder:
                url = server.new_database() if server is not None else sqlite_url(Path(folder))
                measure(url, args.deliveries, args.batch, processes, server)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
