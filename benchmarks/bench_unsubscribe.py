"""One-click unsubscribes against a big list, through a real `newsletter serve` (uvicorn on loopback).

    python benchmarks/bench_unsubscribe.py                           # 1,000,000 rows, 200 POSTs at once
    python benchmarks/bench_unsubscribe.py --rows 100000 --posts 80
    python benchmarks/bench_unsubscribe.py --code /tmp/old-checkout  # the same attack on other code

Prints: the list's size, errors (any answer but 200, or no answer within --timeout), latency
p50/p99/max, the server's peak RSS (VmHWM), whether every unsubscribe is visible to a reader
afterwards, and the time of `subscribers add` on that list: building the address index once (the
first lookup after the CSV changed; 0 for checkouts without one), the store call alone, the whole
CLI command, and the CLI's start-up (`newsletter --help`) for reference: each command the median
of 7 runs, with the package's bytecode compiled first, as `pip install` does. Also the byte search
that lists without an index fall back to, for the last address of the list (0 for checkouts
without one). Tokens are the `?list&email&token` kind, which every version honours, so --code can
point at older checkouts.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parents[1]
SECRET = "bench-unsubscribe-secret-0123456789-abcdefghijklmnop"
LIST = "big"


def legacy_token(list_name: str, email: str) -> str:
    message = f"unsubscribe\n{list_name}\n{email.strip().lower()}".encode()
    digest = hmac.new(SECRET.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def write_list(path: Path, rows: int) -> None:
    """A list like a real one: names, keywords, statuses, timestamps."""
    keywords = ["diffusion models", "language models; agents", "reinforcement learning", "", "robotics"]
    with path.open("w", encoding="utf-8") as out:
        out.write("email,name,keywords,status,subscribed_at,unsubscribed_at\n")
        chunk: list[str] = []
        for i in range(rows):
            chunk.append(
                f"reader{i:07d}@example.org,Reader {i},{keywords[i % 5]},active,2026-10-01T00:00:00+00:00,\n"
            )
            if len(chunk) == 10_000:
                out.write("".join(chunk))
                chunk.clear()
        out.write("".join(chunk))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(code: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        PYTHONPATH=str(code), NEWSLETTER_SECRET=SECRET, NEWSLETTER_BASE_URL="https://bench.example.org"
    )
    return env


def start_server(folder: Path, code: Path, port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--port", str(port)],
        cwd=folder,
        env=environment(code),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
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


def run_python(code: Path, folder: Path, script: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=folder,
        env=environment(code),
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def count_unsubscribed(code: Path, folder: Path, emails: list[str]) -> int:
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from newsletter.subscribers import SubscriberStore\n"
        f"wanted = set({emails!r})\n"
        f"store = SubscriberStore(Path('subscribers/{LIST}.csv'))\n"
        "print(sum(1 for s in store.iter_subscribers() if s.key in wanted and s.status == 'unsubscribed'))\n"
    )
    return int(run_python(code, folder, script))


RUNS = 7  # commands timed: the median is reported, the spread printed


def time_add(code: Path, folder: Path, last: str) -> dict[str, float]:
    store_call = (
        "import time\n"
        "from pathlib import Path\n"
        "from newsletter.subscribers import SubscriberStore\n"
        f"store = SubscriberStore(Path('subscribers/{LIST}.csv'))\n"
        "started = time.perf_counter()\n"
        "index = getattr(store, 'index', None)\n"  # older checkouts have none
        "index is not None and index.find('someone@example.org')\n"
        "built = time.perf_counter()\n"
        "store.add('new-reader-1@example.org', name='New', keywords='agents')\n"
        "print(built - started, time.perf_counter() - built)\n"
    )
    build, call = (float(x) for x in run_python(code, folder, store_call).split())
    byte_search = (
        "import time\n"
        "from pathlib import Path\n"
        "try:\n"
        "    from newsletter.subscribers.csvfile import read_layout\n"
        "    from newsletter.subscribers.lookup import find_row\n"
        "except ImportError:\n"  # older checkouts
        "    print(0)\n"
        "else:\n"
        f"    path = Path('subscribers/{LIST}.csv')\n"
        "    started = time.perf_counter()\n"
        f"    find_row(path, read_layout(path), {last!r})\n"
        "    print(time.perf_counter() - started)\n"
    )
    search = float(run_python(code, folder, byte_search))
    # As after `pip install`, which compiles the bytecode: with PYTHONDONTWRITEBYTECODE set (as
    # on CI machines) an editable checkout would otherwise be compiled again on every command.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(code / "newsletter")], check=True)
    cli = [sys.executable, "-m", "newsletter"]

    def wall(*args: str) -> float:
        started = time.perf_counter()
        subprocess.run([*cli, *args], cwd=folder, env=environment(code), check=True, capture_output=True)
        return time.perf_counter() - started

    adds = [wall("subscribers", "add", f"reader-{n}@example.org", "--list", LIST) for n in range(RUNS)]
    helps = [wall("--help") for _ in range(RUNS)]
    command, startup = statistics.median(adds), statistics.median(helps)
    print(f"  cli add runs (s): {' '.join(f'{t:.3f}' for t in adds)}", file=sys.stderr)
    return {
        "index_build_s": build,
        "store_add_s": call,
        "cli_add_s": command,
        "cli_startup_s": startup,
        "byte_search_s": search,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--posts", type=int, default=200, help="POSTs, all sent at once")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a client waits for an answer")
    parser.add_argument("--code", type=Path, default=REPO, help="checkout whose `newsletter` to run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-unsub-") as tmp:
        folder = Path(tmp)
        (folder / "subscribers").mkdir()
        (folder / "newsletter.toml").write_text(f'default_list = "{LIST}"\nsubscribers_dir = "subscribers"\n')
        csv_path = folder / "subscribers" / f"{LIST}.csv"
        write_list(csv_path, args.rows)
        step = max(1, args.rows // args.posts)
        emails = [f"reader{i * step:07d}@example.org" for i in range(args.posts)]
        port = free_port()
        server = start_server(folder, args.code.resolve(), port)
        try:
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=args.posts) as pool:
                answers = list(pool.map(lambda e: post(port, e, args.timeout), emails))
            wall = time.perf_counter() - started
            rss = peak_rss_mib(server.pid)
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:  # old code: worker threads still rewriting the list
                server.kill()
                server.wait()
        latencies = sorted(seconds for _, seconds in answers)
        statuses: dict[str, int] = {}
        for status, _ in answers:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        result: dict[str, object] = {
            "rows": args.rows,
            "list_mib": round(csv_path.stat().st_size / (1 << 20), 1),
            "posts": args.posts,
            "errors": sum(status != 200 for status, _ in answers),
            "answers": statuses,
            "p50_s": round(statistics.median(latencies), 3),
            "p99_s": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 3),
            "max_s": round(latencies[-1], 3),
            "wall_s": round(wall, 2),
            "server_peak_rss_mib": round(rss, 1),
            "unsubscribed_visible": count_unsubscribed(args.code.resolve(), folder, emails),
        }
        last = f"reader{args.rows - 1:07d}@example.org"
        result.update({k: round(v, 3) for k, v in time_add(args.code.resolve(), folder, last).items()})
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.posts} concurrent one-click POSTs on a {args.rows:,}-row list ({args.code}):")
    for key, value in result.items():
        print(f"  {key:<22} {value}")


if __name__ == "__main__":
    main()
