"""Three senders on one issue, one killed with SIGKILL mid-batch, N times (issue 28's fault test).

    python benchmarks/senders_faults.py --runs 10 --subscribers 3000 [--engine postgresql|sqlite]

Prints per run: how long, how many readers got two copies, how many the killed sender had in
flight (the only ones allowed two), and whether every check held. PostgreSQL is a throw-away
cluster (Debian's postgresql package), as the tests start it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this tree's code and the tests' helpers

from helpers.databases import sqlite_url, start_server
from helpers.senders import kill_one_of_three_senders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--subscribers", type=int, default=3000)
    parser.add_argument("--engine", choices=["postgresql", "sqlite"], default="postgresql")
    args = parser.parse_args()
    server = start_server() if args.engine == "postgresql" else None
    failures = 0
    try:
        for run in range(1, args.runs + 1):
            with tempfile.TemporaryDirectory() as folder:
                url = server.new_database() if server is not None else sqlite_url(Path(folder))
                started = time.monotonic()
                outcome = kill_one_of_three_senders(Path(folder), url, args.subscribers)
                twice = {r for r, ids in outcome.copies.items() if len(ids) > 1}
                ok = (
                    outcome.exit_codes == [0, 0]
                    and sorted(outcome.copies) == outcome.active
                    and all(len(set(ids)) == 1 for ids in outcome.copies.values())
                    and twice <= outcome.resent
                    and outcome.statuses == {"delivered"}
                )
                failures += not ok
                print(
                    f"run {run}: {time.monotonic() - started:.1f}s, {len(outcome.copies)} delivered, "
                    f"{len(twice)} twice, {len(outcome.resent)} in flight when killed: "
                    f"{'ok' if ok else 'FAILED'}",
                    flush=True,
                )
    finally:
        if server is not None:
            server.stop()
    print(f"{args.runs - failures}/{args.runs} runs held every check")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
