"""Each attack of the hostile HTTP server against `newsletter papers fetch`, in its own process:
prints how it ended, its peak RSS and its wall time.

    python benchmarks/bench_hostile_fetch.py                  # 1 GiB bodies, 60 s cap per attack
    python benchmarks/bench_hostile_fetch.py --size-mb 256 --cap 30 --attack drip --attack gzip-bomb
    python benchmarks/bench_hostile_fetch.py --pythonpath /path/to/old/checkout   # "before" numbers

The server runs in this process (tests/helpers/hostile_http.py); the client is a fresh
`python -m newsletter papers fetch --source hf` with no config, so the [fetch] defaults apply.
An attack still running after --cap seconds is killed and reported as such.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.hostile_http import ATTACKS, MIB, HostileHttpServer


def run_attack(url: str, attack: str, cap: float, pythonpath: str | None) -> tuple[str, float, float, str]:
    """(outcome, peak RSS in MiB, wall seconds, first line of stderr) of one fetch."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "newsletter", "papers", "fetch", "--source", "hf"]
        command += ["--date", "2024-03-14", "--base-url", f"{url}/{attack}", "-o", "out.jsonl"]
        err_path = Path(folder) / "stderr.txt"
        with err_path.open("wb") as err:
            started = time.monotonic()
            child = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=err)
            killed = False
            while True:
                pid, status, usage = os.wait4(child.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() - started > cap:
                    child.send_signal(signal.SIGKILL)
                    killed = True
                    pid, status, usage = os.wait4(child.pid, 0)
                    break
                time.sleep(0.05)
            wall = time.monotonic() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        lines = err_path.read_text(errors="replace").strip().splitlines()
        first = lines[0] if lines else ""
        if len(lines) > 1 and "Traceback" in lines[0]:
            first = f"traceback ({len(lines)} lines): {lines[-1]}"
    outcome = f"killed after {cap:.0f} s" if killed else f"exit {child.returncode}"
    return outcome, usage.ru_maxrss / 1024, wall, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=1024, help="size of the big bodies, inflated")
    parser.add_argument("--cap", type=float, default=60.0, help="seconds before an attack is killed")
    parser.add_argument("--attack", action="append", choices=ATTACKS, help="run only these (repeatable)")
    parser.add_argument("--pythonpath", help="import newsletter from this checkout instead")
    args = parser.parse_args()

    server = HostileHttpServer(size=int(args.size_mb * MIB), interval=1.0).start()
    bomb = server.gzip_bomb()  # built before any timing starts
    print(f"hostile server {server.url}, bodies of {args.size_mb} MiB, gzip bomb {len(bomb) / MIB:.1f} MiB")
    print(f"{'attack':<15} {'outcome':<18} {'peak RSS':>10} {'wall':>8}  message")
    try:
        for attack in args.attack or ATTACKS:
            outcome, rss, wall, message = run_attack(server.url, attack, args.cap, args.pythonpath)
            print(f"{attack:<15} {outcome:<18} {rss:>6.0f} MiB {wall:>6.1f} s  {message[:150]}", flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
