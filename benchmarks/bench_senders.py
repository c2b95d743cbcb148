"""What the shared queue costs: claiming and recording N deliveries, by one or two processes.

    python benchmarks/bench_senders.py [--deliveries 100000] [--batch 500] [--engine postgresql|sqlite]

Each process claims a batch, records it 'sending' (the attempt, before DATA) and then the
server's answers ('delivered'), as a sender does, with no SMTP and no rendering: only the
database's part of a send. PostgreSQL is a throw-away cluster as the tests start it (or
NEWSLETTER_TEST_DATABASE_URL). Prints the time, deliveries per second, and checks that every
delivery was claimed exactly once.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this tree's code and the tests' helpers

from helpers.databases import sqlite_url, start_server
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


def measure(url: str, deliveries: int, batch: int, processes: int) -> None:
    db = open_database(place_of(url, Path("unused.db")))  # made and upgraded
    queue = SendQueue(db, ISSUE, LIST, CHANNEL)
    started = time.perf_counter()
    queue.fan_out(f"reader{n:07d}@example.org" for n in range(deliveries))
    queued = time.perf_counter() - started
    results: multiprocessing.Queue[int] = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_sender, args=(url, batch, results)) for _ in range(processes)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    taken = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    spent = time.perf_counter() - started
    with db.read() as conn:
        delivered = conn.execute(text("SELECT count(*) FROM deliveries WHERE status = 'delivered'")).scalar()
    print(
        f"{processes} process(es): queued {deliveries:,} in {queued:.2f}s; claimed and recorded them in "
        f"{spent:.2f}s ({deliveries / spent:,.0f}/s); claims per process {taken}; "
        f"{delivered:,} delivered, each once: {sum(taken) == deliveries == delivered}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--engine", choices=["postgresql", "sqlite"], default="postgresql")
    args = parser.parse_args()
    server = start_server() if args.engine == "postgresql" else None
    try:
        for processes in (1, 2):
            with tempfile.TemporaryDirectory() as folder:
                url = server.new_database() if server is not None else sqlite_url(Path(folder))
                measure(url, args.deliveries, args.batch, processes)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
