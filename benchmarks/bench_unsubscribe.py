"""The subscriber store on a big list, on either engine, through the real commands and `serve`.

    python benchmarks/bench_unsubscribe.py                          # 1,000,000 rows, SQLite
    python benchmarks/bench_unsubscribe.py --engine postgresql      # a throw-away PostgreSQL
    python benchmarks/bench_unsubscribe.py --database-url postgresql://user:pw@host/db
    python benchmarks/bench_unsubscribe.py --rows 100000 --posts 80

Prints, for a list kept as subscribers/big.csv:
- import: the first command on the list (`subscribers list --status bounced`), which reads the
  CSV into the database, wall clock and peak RSS;
- add: the whole `newsletter subscribers add` command (median of 7, new addresses each);
- edit pickup: a hand edit of one row, then the whole next command (median of 3 edits), and
  whether the edit is in the database afterwards;
- write-back: `subscribers sync` after those changes, then again with nothing changed;
- one-click: --posts concurrent POSTs at a real `newsletter serve`: errors (any answer but 200, or
  none within --timeout), latency p50/p99/max, the server's peak RSS, and whether every
  unsubscribe is visible to the next command.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parents[1]
SECRET = "bench-unsubscribe-secret-0123456789-abcdefghijklmnop"
LIST = "big"
RUNS = 7


def legacy_token(list_name: str, email: str) -> str:
    message = f"unsubscribe\n{list_name}\n{email.strip().lower()}".encode()
    digest = hmac.new(SECRET.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def address(i: int) -> str:
    return f"reader{i:07d}@example.org"


def row(i: int, name: str = "") -> str:
    keywords = ["diffusion models", "language models; agents", "reinforcement learning", "", "robotics"]
    return f"{address(i)},{name or f'Reader {i}'},{keywords[i % 5]},active,2026-10-01T00:00:00+00:00,\n"


def write_list(path: Path, rows: int) -> None:
    """A list like a real one: names, keywords, statuses, timestamps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        out.write("email,name,keywords,status,subscribed_at,unsubscribed_at\n")
        for start in range(0, rows, 10_000):
            out.write("".join(row(i) for i in range(start, min(rows, start + 10_000))))


def environment(database_url: str | None, folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed copy has its bytecode: so do we, once made
    env.update(
        PYTHONPATH=str(REPO),
        PYTHONPYCACHEPREFIX=str(folder / "bytecode"),
        NEWSLETTER_SECRET=SECRET,
        NEWSLETTER_BASE_URL="https://bench.example.org",
    )
    if database_url:
        env["NEWSLETTER_DATABASE_URL"] = database_url
    return env


# The console script's code path; its peak RSS is printed last, on stderr, as "VmHWM <kB>".
RUN_AND_MEASURE = """
import atexit, sys
from pathlib import Path
from newsletter.cli import main

def peak():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            print("VmHWM", line.split()[1], file=sys.stderr)

atexit.register(peak)
main(sys.argv[1:], prog_name="newsletter")
"""


# CPU seconds (user + system) of each command run, in order: on a busy machine the wall clock
# measures the neighbours, this measures the command.
CPU: list[float] = []


def command(folder: Path, env: dict[str, str], *args: str) -> tuple[float, float, str]:
    """Run `newsletter ARGS`: (wall seconds, peak RSS MiB of that process, stdout); its CPU in CPU."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_MEASURE, *args], cwd=folder, env=env, capture_output=True, text=True
    )
    took = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"newsletter {' '.join(args)} failed: {done.stderr.strip()[-800:]}")
    kib = [int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("VmHWM ")]
    return took, (kib[-1] / 1024 if kib else float("nan")), done.stdout


def store_says(folder: Path, env: dict[str, str], expression: str) -> str:
    """What the list's store answers, asked the way every command opens it."""
    script = (
        "from newsletter.configfile import load_list_places\n"
        "from newsletter.subscribers import open_list\n"
        f"store = open_list(load_list_places(), {LIST!r})\n"
        f"print({expression})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=folder, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-800:])
    return done.stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(folder: Path, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(folder / "serve.log").open("w"),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the server did not come up")


def post(port: int, email: str, timeout: float) -> tuple[int, float]:
    query = urlencode({"list": LIST, "email": email, "token": legacy_token(LIST, email)})
    started = time.perf_counter()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        connection.request(
            "POST",
            f"/unsubscribe?{query}",
            body=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        status = connection.getresponse().status
        connection.close()
    except OSError:
        status = 0
    return status, time.perf_counter() - started


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def edit_one_row(path: Path, rows: int, n: int) -> str:
    """Rename the reader in the middle of the file, in place, as an editor saving it would."""
    target, name = rows // 2 + n, f"Edited {n}"
    text = path.read_text(encoding="utf-8")
    old = row(target)
    assert old in text
    path.write_text(text.replace(old, row(target, name), 1), encoding="utf-8")
    return address(target)


def bench(rows: int, posts: int, timeout: float, database_url: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        folder = Path(tmp)
        (folder / "newsletter.toml").write_text(f'default_list = "{LIST}"\n')
        path = folder / "subscribers" / f"{LIST}.csv"
        write_list(path, rows)
        env = environment(database_url, folder)
        engine = "postgresql" if database_url else "sqlite"
        print(f"{rows:,} rows, {path.stat().st_size / 2**20:.0f} MiB of CSV, {engine}")
        print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

        took, rss, _ = command(folder, env, "subscribers", "list", "--status", "bounced", "--json")
        print(f"import (first command on the list): {took:.1f} s (CPU {CPU[-1]:.1f} s), peak {rss:.0f} MiB")

        adds = [command(folder, env, "subscribers", "add", f"new{i}@example.org")[0] for i in range(RUNS)]
        print(
            f"subscribers add, whole command: median {statistics.median(adds):.3f} s "
            f"(min {min(adds):.3f}, max {max(adds):.3f}); CPU median {statistics.median(CPU[-RUNS:]):.3f} s"
        )

        pickups, rss_pickup = [], 0.0
        for n in range(3):
            edited = edit_one_row(path, rows, n)
            took, rss, _ = command(folder, env, "subscribers", "add", f"after-edit{n}@example.org")
            pickups.append(took)
            rss_pickup = max(rss_pickup, rss)
        merged = store_says(folder, env, f"store.get({edited!r}).name")
        print(
            f"hand edit of one row, then the whole next command: median {statistics.median(pickups):.2f} s "
            f"(max {max(pickups):.2f}; CPU median {statistics.median(CPU[-3:]):.2f} s), "
            f"peak {rss_pickup:.0f} MiB; "
            f"the edit is in the database: {merged == 'Edited 2'}"
        )

        took, rss, _ = command(folder, env, "subscribers", "sync")
        print(f"subscribers sync after those changes: {took:.2f} s (CPU {CPU[-1]:.2f} s), peak {rss:.0f} MiB")
        time.sleep(3)  # past the write-back's clock margin: the next one sees only what changes later
        mtime = path.stat().st_mtime_ns
        took, rss, _ = command(folder, env, "subscribers", "sync")
        print(
            f"subscribers sync with nothing changed: {took:.2f} s (CPU {CPU[-1]:.2f} s), peak {rss:.0f} MiB; "
            f"file rewritten: {path.stat().st_mtime_ns != mtime}"
        )

        port = free_port()
        # uvicorn counts each request twice against [serve] max_connections (as a connection and
        # as a task): at the default 200, 200 requests at once get 503s before the store is asked.
        server = start_server(folder, {**env, "NEWSLETTER_SERVE__MAX_CONNECTIONS": "1000"}, port)
        try:
            targets = [address(i * (rows // posts)) for i in range(posts)]
            with ThreadPoolExecutor(max_workers=posts) as pool:
                results = list(pool.map(lambda email: post(port, email, timeout), targets))
            rss_server = peak_rss_mib(server.pid)
        finally:
            server.terminate()
            server.wait(30)
        latencies = sorted(seconds for _, seconds in results)
        errors = sum(1 for status, _ in results if status != 200)
        kinds = Counter(status for status, _ in results if status != 200)  # 0: no answer in time
        p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
        print(
            f"{posts} one-click POSTs at once: {errors} errors {dict(kinds) or ''}, "
            f"p50 {statistics.median(latencies):.3f} s, "
            f"p99 {p99:.3f} s, max {latencies[-1]:.3f} s, server peak {rss_server:.0f} MiB"
        )
        if errors:  # what the server said about them
            said = [line for line in (folder / "serve.log").read_text().splitlines() if "rror" in line]
            print("\n".join(said[:5]))
        asked = f"sum(not store.is_active(e) for e in {targets!r})"
        print(f"unsubscribes visible to the next command: {store_says(folder, env, asked)} of {posts}")
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--database-url", help="a PostgreSQL database to use (it is filled)")
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    if args.engine == "postgresql" and not args.database_url:
        sys.path.insert(0, str(REPO / "tests"))
        from helpers.databases import start_server as start_postgres

        postgres = start_postgres()
        try:
            bench(args.rows, args.posts, args.timeout, postgres.new_database())
        finally:
            postgres.stop()
        return
    bench(args.rows, args.posts, args.timeout, args.database_url)


if __name__ == "__main__":
    main()
