"""Compaction of a big list, and the first lookup after it: is the address index still fresh?

    python benchmarks/bench_compact.py                            # 1,000,000 rows
    python benchmarks/bench_compact.py --rows 100000
    python benchmarks/bench_compact.py --code /tmp/old-checkout   # the same steps on other code

Each step runs in its own process, as `send` and `subscribers add` do. The list is indexed once
(dated an hour back, as a list nobody has touched for a while is), then the journal gets --changes
records (unsubscribes, adds, removes) and is folded into the CSV, as `newsletter send` does.
Prints: the compaction's time and peak RSS (VmHWM), whether the index on disk after it is the one
the compaction wrote, the first whole `subscribers add` command after a compaction, then (after a
second compaction) the first lookup alone, each with whether it rebuilt the index, and a lookup
once the index is warm for reference. Rebuilds are seen in the index file itself: a rebuilt index
is a new file (new inode) written after the step started.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_unsubscribe import write_list as write_rows  # the same list, row for row

REPO = Path(__file__).resolve().parents[1]
LIST = "big"
SETUP = """
import json, os, sys, time
from pathlib import Path
from newsletter.subscribers import SubscriberStore
store = SubscriberStore(Path('subscribers/big.csv'))
store.get('someone@example.org')  # builds the index of the settled list
rows, changes, round_ = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
step = max(1, rows // changes)
for n, i in enumerate(range(0, rows, step)):
    email = f'reader{i:07d}@example.org'
    if n % 3 == 0:
        store.record_unsubscribe(email)
    elif n % 3 == 1:
        store.record_change(email, name=f'Renamed {i} {round_}')
    else:
        store.remove(email)
    store.record_add(f'joined{round_}-{n}@example.org', name=f'Joined {n}')
print(json.dumps({'journal_bytes': store.journal.size()}))
"""
COMPACT = """
import json, time
from pathlib import Path
from newsletter.subscribers import SubscriberStore
store = SubscriberStore(Path('subscribers/big.csv'))
started = time.perf_counter()
store.compact()
elapsed = time.perf_counter() - started
hwm = next(l for l in Path('/proc/self/status').read_text().splitlines() if l.startswith('VmHWM:'))
print(json.dumps({'compact_s': elapsed, 'compact_peak_rss_mib': int(hwm.split()[1]) / 1024}))
"""
LOOKUP = """
import json, sys, time
from pathlib import Path
from newsletter.subscribers import SubscriberStore
store = SubscriberStore(Path('subscribers/big.csv'))
started = time.perf_counter()
found = store.get(sys.argv[1])
print(json.dumps({'lookup_s': time.perf_counter() - started, 'found': found is not None}))
"""


def write_list(path: Path, rows: int) -> None:
    """The list bench_unsubscribe.py attacks, dated an hour back."""
    write_rows(path, rows)
    settle(path)


def settle(path: Path) -> None:
    when = time.time_ns() - 3600 * 10**9
    os.utime(path, ns=(when, when))


def run(code: Path, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["PYTHONPATH"] = str(code)
    return subprocess.run(args, cwd=folder, env=env, check=True, capture_output=True, text=True)


def python(code: Path, folder: Path, script: str, *args: str) -> dict[str, float]:
    result: dict[str, float] = json.loads(run(code, folder, sys.executable, "-c", script, *args).stdout)
    return result


def index_identity(folder: Path) -> tuple[int, int] | None:
    try:
        stat = (folder / "subscribers" / f"{LIST}.index").stat()
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_mtime_ns)


def rebuilt(folder: Path, before: tuple[int, int] | None, started_ns: int) -> bool:
    """Whether the step left a different index file, written after it started."""
    after = index_identity(folder)
    return after is not None and after != before and after[1] >= started_ns


def compact_round(code: Path, folder: Path, args: argparse.Namespace, round_: str) -> dict[str, object]:
    setup = python(code, folder, SETUP, str(args.rows), str(args.changes), round_)
    before = index_identity(folder)
    compacted = python(code, folder, COMPACT)
    after = index_identity(folder)
    return {
        "journal_bytes": setup["journal_bytes"],
        "compact_s": round(compacted["compact_s"], 3),
        "compact_peak_rss_mib": round(compacted["compact_peak_rss_mib"], 1),
        "index_written_by_compaction": after is not None and after != before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=3_000, help="journal records per compaction")
    parser.add_argument("--code", type=Path, default=REPO, help="checkout whose `newsletter` to run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    code = args.code.resolve()

    result: dict[str, object] = {"rows": args.rows}
    with tempfile.TemporaryDirectory(prefix="bench-compact-") as tmp:
        folder = Path(tmp)
        (folder / "subscribers").mkdir()
        (folder / "newsletter.toml").write_text(f'default_list = "{LIST}"\nsubscribers_dir = "subscribers"\n')
        write_list(folder / "subscribers" / f"{LIST}.csv", args.rows)

        first = compact_round(code, folder, args, "a")
        result.update(first)
        time.sleep(0.2)  # a person types the next command
        before, started = index_identity(folder), time.time_ns()
        clock = time.perf_counter()
        cli = [sys.executable, "-m", "newsletter", "subscribers", "add", "first-after@example.org"]
        run(code, folder, *cli, "--list", LIST)
        result["first_cli_add_after_compact_s"] = round(time.perf_counter() - clock, 3)
        result["first_cli_add_rebuilt_index"] = rebuilt(folder, before, started)

        second = compact_round(code, folder, args, "b")
        result["compact_s_second"] = second["compact_s"]
        time.sleep(0.2)
        before, started = index_identity(folder), time.time_ns()
        lookup = python(code, folder, LOOKUP, f"reader{args.rows // 2 + 1:07d}@example.org")
        result["first_lookup_after_compact_s"] = round(lookup["lookup_s"], 3)
        result["first_lookup_rebuilt_index"] = rebuilt(folder, before, started)
        result["first_lookup_found"] = bool(lookup["found"])
        warm = python(code, folder, LOOKUP, "joinedb-7@example.org")
        result["warm_lookup_s"] = round(warm["lookup_s"], 4)
        result["warm_lookup_found"] = bool(warm["found"])
    if args.json:
        print(json.dumps(result))
        return
    print(f"compaction of a {args.rows:,}-row list, then the first lookup ({args.code}):")
    for key, value in result.items():
        print(f"  {key:<32} {value}")


if __name__ == "__main__":
    main()
