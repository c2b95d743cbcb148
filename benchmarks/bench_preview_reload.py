"""Live reload latency of `newsletter preview --serve`: save a template, time until the page knows.

    python benchmarks/bench_preview_reload.py            # 10 saves of digest.html
    python benchmarks/bench_preview_reload.py --saves 30

A real uvicorn server on loopback serves a copy of the sample project; a client holds the
page's event stream open. For each save it prints the time until the 'reload' event arrives
(watcher + session reload) and until /api/message returns the edited digest (what the page
shows: event + rebuild), then the median and worst of each.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx
import uvicorn

from newsletter.preview.app import create_preview_app
from newsletter.preview.owner import cookie_name, new_owner_token
from newsletter.preview.session import PreviewSession
from newsletter.settings import load_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        shutil.copy(REPO / "newsletter.toml", project / "newsletter.toml")
        for name in ("examples", "subscribers", "templates"):
            shutil.copytree(REPO / name, project / name)
        token = new_owner_token()
        app = create_preview_app(
            PreviewSession(load_settings(project / "newsletter.toml")), owner_token=token
        )
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        port = sock.getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        try:
            measure(base, project / "templates" / "digest.html", args.saves, {cookie_name(port): token})
        finally:
            app.state.api.close()
            server.should_exit = True
            thread.join(10)


def measure(base: str, template: Path, saves: int, owner: dict[str, str]) -> None:
    query = {"subscriber": "alice@example.org"}
    with httpx.Client(timeout=30, cookies=owner) as client:
        client.get(f"{base}/api/message", params=query)  # warm: the issue is loaded once
        original = template.read_text(encoding="utf-8")
        event_ms, page_ms = [], []
        with client.stream("GET", f"{base}/events") as events:
            lines = events.iter_lines()
            next(line for line in lines if line.startswith("data:"))  # hello
            for n in range(saves):
                marker = f"bench-{n}-{time.time_ns()}"
                started = time.perf_counter()
                template.write_text(original.replace("<body>", f"<body><!--{marker}-->", 1), encoding="utf-8")
                next(line for line in lines if line.startswith("event: reload"))
                event_ms.append((time.perf_counter() - started) * 1000)
                shown = client.get(f"{base}/api/message", params=query).json()
                assert marker in shown["html"]["light"], "the page did not get the edit"
                page_ms.append((time.perf_counter() - started) * 1000)
                print(
                    f"save {n + 1:2d}: reload event {event_ms[-1]:6.1f} ms,"
                    f" edited digest {page_ms[-1]:6.1f} ms"
                )
                time.sleep(0.3)  # separate saves, as a person makes them
        template.write_text(original, encoding="utf-8")
    for label, values in (("reload event", event_ms), ("edited digest", page_ms)):
        print(
            f"{label}: median {statistics.median(values):.1f} ms, worst {max(values):.1f} ms ({saves} saves)"
        )


if __name__ == "__main__":
    main()
