"""How long `newsletter serve` lets idle and half-sent connections live: opens N of each against a
real `newsletter serve` on loopback and prints how many the server still holds as time passes.

    python benchmarks/bench_serve_idle.py                     # 500 idle + 500 dripping, 40 s
    python benchmarks/bench_serve_idle.py --pythonpath /path/to/old/checkout   # "before" numbers

Idle connections never send a byte; dripping ones send a request line, then one header byte a
second (slowloris). Afterwards one normal request checks the server still answers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import select
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def still_open(socks: list[socket.socket]) -> list[socket.socket]:
    """The sockets the server has not closed (no EOF or reset readable on them)."""
    alive = []
    for sock in socks:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            try:
                if sock.recv(4096) == b"":
                    sock.close()
                    continue
            except OSError:
                sock.close()
                continue
        alive.append(sock)
    return alive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=500, help="of each kind")
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--pythonpath", help="import newsletter from this checkout instead")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.connections + 256)), hard))

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(NEWSLETTER_SECRET="b" * 43, NEWSLETTER_BASE_URL="https://papers.example.org")
    if args.pythonpath:
        env["PYTHONPATH"] = args.pythonpath
    with tempfile.TemporaryDirectory() as folder:
        os.mkdir(os.path.join(folder, "subscribers"))
        server = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "serve", "--port", str(port)],
            cwd=folder,
            env=env,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}/healthz"
            for _ in range(200):
                try:
                    urllib.request.urlopen(url, timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.1)
            idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(args.connections)]
            drip = [socket.create_connection(("127.0.0.1", port)) for _ in range(args.connections)]
            for sock in drip:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-")
            started = time.monotonic()
            print(f"{'after':>8} {'idle held':>10} {'dripping held':>14}")
            while (elapsed := time.monotonic() - started) < args.seconds:
                idle, drip = still_open(idle), still_open(drip)
                for sock in drip:
                    with contextlib.suppress(OSError):
                        sock.send(b"a")
                print(f"{elapsed:>6.0f} s {len(idle):>10} {len(drip):>14}", flush=True)
                time.sleep(5.0 if elapsed > 1 else 1.0)
            idle, drip = still_open(idle), still_open(drip)
            print(f"{args.seconds:>6.0f} s {len(idle):>10} {len(drip):>14}")
            try:
                status = urllib.request.urlopen(url, timeout=10).status
            except OSError as exc:
                status = f"failed ({exc})"
            print(f"a normal request afterwards: {status}")
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
