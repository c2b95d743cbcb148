"""Several `newsletter serve` processes on one database, as behind a load balancer (issue 28).

    python benchmarks/bench_two_serve.py                            # SQLite, 1,000,000 rows
    python benchmarks/bench_two_serve.py --engine postgresql        # a throw-away PostgreSQL
    python benchmarks/bench_two_serve.py --database-url postgresql://user:pw@host/db
    python benchmarks/bench_two_serve.py --rows 100000 --instances 1

Fills the list in the database itself (one INSERT ... SELECT), starts --instances serves on it
and an SMTP server that records the confirmation mail, then releases all readers at once:
--signups readers sign up (form from one instance, post to the next, confirm link opened on the
first) and --unsubscribes press one-click unsubscribe. Prints the request rate, p50/p99/max
latency per kind of request, errors (any answer but 200, or none), the CPU each serve used,
the load average, and whether the database holds exactly what it should afterwards.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from helpers.databases import sqlite_url, start_server
from helpers.serve_processes import (
    LIST,
    ServeProcess,
    fill_list,
    reader,
    serve_environment,
    serve_processes,
    write_project,
)
from helpers.serve_readers import Answer, all_at_once, reader_signs_up, reader_unsubscribes
from helpers.smtp_servers import LoopbackServer, RecordingHandler

from newsletter.store import open_database, place_of
from newsletter.store.subscribers import SubscriberStore

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far, from /proc (the serves are not our children to wait for)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(len(ordered) * share) - 1))]


def report(answers: list[Answer], took: float) -> None:
    by_kind: dict[str, list[float]] = defaultdict(list)
    for answer in answers:
        by_kind[answer.kind if answer.status else "no answer"].append(answer.seconds)
    print(f"{len(answers)} requests in {took:.2f} s: {len(answers) / took:.0f} requests/s")
    for kind, seconds in by_kind.items():
        print(
            f"  {kind:12} {len(seconds):4}  p50 {statistics.median(seconds):.3f} s  "
            f"p99 {percentile(seconds, 0.99):.3f} s  max {max(seconds):.3f} s"
        )
    errors = [a for a in answers if a.status != 200]
    print(f"errors: {len(errors)}" + "".join(f"\n  {a.kind}: {a.status}" for a in errors[:10]))


def burst(serves: list[ServeProcess], smtp: RecordingHandler, rows: int, signups: int, leaving: int) -> None:
    """Every reader at once; what they saw, and what each serve spent."""
    addresses = [reader(i * (rows // max(1, leaving))) for i in range(leaving)]
    jobs = [partial(reader_signs_up, serves, smtp, i) for i in range(signups)]
    jobs += [partial(reader_unsubscribes, serves, a, i) for i, a in enumerate(addresses)]
    cpu_before = [cpu_seconds(s.process.pid) for s in serves]
    ours_before = time.process_time()
    started = time.perf_counter()
    answers = all_at_once(jobs)
    took = time.perf_counter() - started
    report(answers, took)
    spent = [cpu_seconds(s.process.pid) - before for s, before in zip(serves, cpu_before, strict=True)]
    print("CPU of each serve: " + ", ".join(f"{seconds:.2f} s" for seconds in spent), end="")
    print(f" (the readers, this process: {time.process_time() - ours_before:.2f} s)")


def check(database_url: str, rows: int, signups: int, leaving: int) -> None:
    """What the database holds afterwards, against what the readers did."""
    store = SubscriberStore(open_database(place_of(database_url, Path("unused.db"))), LIST)
    counts = {k: v for k, v in store.counts().items() if v}
    expected = {"active": rows - leaving + signups, "unsubscribed": leaving}
    print(f"database afterwards: {counts}; expected {expected}: {'ok' if counts == expected else 'WRONG'}")


def bench(database_url: str, engine: str, args: argparse.Namespace) -> None:
    print(f"{args.rows:,} rows, {engine}, {args.instances} serve processes")
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    started, cpu = time.perf_counter(), time.process_time()
    fill_list(database_url, args.rows)
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"fill (one INSERT ... SELECT): {took:.1f} s (this process's CPU {cpu:.1f} s)")
    smtp = LoopbackServer()
    smtp.start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-two-serve-") as tmp:
            write_project(Path(tmp), smtp.port)
            env = serve_environment(database_url, NEWSLETTER_SERVE__MAX_CONNECTIONS=str(args.max_connections))
            with serve_processes(Path(tmp), env, args.instances) as serves:
                assert isinstance(smtp.handler, RecordingHandler)
                burst(serves, smtp.handler, args.rows, args.signups, args.unsubscribes)
    finally:
        smtp.stop()
    check(database_url, args.rows, args.signups, args.unsubscribes)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--signups", type=int, default=100)
    parser.add_argument("--unsubscribes", type=int, default=100)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--max-connections", type=int, default=200, help="[serve] max_connections of each")
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--database-url", help="an empty PostgreSQL database to use (it is filled)")
    args = parser.parse_args()
    if args.database_url:
        bench(args.database_url, "postgresql", args)
    elif args.engine == "postgresql":
        postgres = start_server()
        try:
            bench(postgres.new_database(), "postgresql", args)
        finally:
            postgres.stop()
    else:
        with tempfile.TemporaryDirectory(prefix="bench-two-serve-db-") as tmp:
            bench(sqlite_url(Path(tmp)), "sqlite", args)


if __name__ == "__main__":
    main()
