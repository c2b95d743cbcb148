#!/usr/bin/env python3
"""Concurrent web sign-ups on a big list: no error, nothing lost, and how long each waits.

A real `newsletter serve` app (uvicorn on loopback, in a child process so its memory is its own)
over a list of --rows subscribers and the shipped sample papers, with the embedded outbox.
--signups readers each load the form (cookie + CSRF token), then all post it at once; each comes
from its own address (X-Forwarded-For from the loopback proxy, as behind a reverse proxy), so
the per-IP limit does not apply. Afterwards every address must be on the list as `pending` and
have exactly one confirmation mail in the outbox.

Usage: python benchmarks/bench_signup.py [--rows 100000] [--signups 100]
"""

from __future__ import annotations

import argparse
import asyncio
import mailbox
import multiprocessing
import re
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx

from newsletter.settings import Settings
from newsletter.statuses import SubscriberStatus
from newsletter.subscribers import open_list

SECRET = "benchmark-secret-0123456789-0123456789-01"


def make_settings(root: Path) -> Settings:
    return Settings.model_validate(
        {
            "secret": SECRET,
            "title": "Bench Papers",
            "subscribers_dir": root / "subscribers",
            "papers": [REPO / "examples"],
            "issue_date": "2024-03-14",
            "default_list": "big",
            "templates_dir": REPO / "templates",
            "config_dir": root,
            "smtp": {"host": "embedded", "outbox": root / "outbox"},
        }
    )


def write_list(path: Path, rows: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    topics = ["diffusion models", "speech", "reinforcement learning", "graph neural networks", ""]
    with path.open("w", encoding="utf-8") as out:
        out.write("email,name,keywords,status,subscribed_at,unsubscribed_at\n")
        for i in range(rows):
            out.write(
                f"reader{i:07d}@example.org,Reader {i},{topics[i % 5]},active,2026-10-01T00:00:00+00:00,\n"
            )


def serve(root: str, port: int) -> None:
    import uvicorn

    from newsletter.web.app import create_app

    app = create_app(make_settings(Path(root)))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def start_serving(target: Callable[[str, int], None], folder: str) -> tuple[BaseProcess, str]:
    """`target(folder, port)` in a child process of its own (its memory is its own), once it answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = multiprocessing.get_context("spawn").Process(target=target, args=(folder, port))
    server.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(f"{base}/healthz", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    return server, base


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def one(client: httpx.AsyncClient, base: str, i: int, start: asyncio.Event) -> tuple[int, float]:
    ip = {"X-Forwarded-For": f"10.0.{i // 250}.{i % 250 + 1}"}
    form = await client.get(f"{base}/subscribe?list=big", headers=ip)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf, form.text[:300]
    data = {"list": "big", "csrf": csrf.group(1), "email": f"new{i:04d}@example.net", "keywords": "speech"}
    await start.wait()
    began = time.perf_counter()
    answer = await client.post(f"{base}/subscribe", data=data, headers=ip, cookies=form.cookies)
    return answer.status_code, time.perf_counter() - began


async def run(base: str, signups: int) -> list[tuple[int, float]]:
    start = asyncio.Event()
    limits = httpx.Limits(max_connections=signups)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        await client.get(f"{base}/subscribe?list=big")  # the first load reads the papers once
        tasks = [asyncio.create_task(one(client, base, i, start)) for i in range(signups)]
        await asyncio.sleep(1.0)
        start.set()
        return await asyncio.gather(*tasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--signups", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        settings = make_settings(root)
        write_list(settings.list_path("big"), args.rows)
        server, base = start_serving(serve, folder)
        began = time.perf_counter()
        results = asyncio.run(run(base, args.signups))
        wall = time.perf_counter() - began
        outbox = root / "outbox" / "new"
        deadline = time.monotonic() + 120  # mails leave right after each answer: wait for them
        while time.monotonic() < deadline and len(list(outbox.glob("*"))) < args.signups:
            time.sleep(0.1)
        mailed = time.perf_counter() - began
        rss = peak_rss_mib(server.pid or 0)
        server.terminate()
        server.join()
        store = open_list(settings.places, "big")
        pending = sum(
            1
            for i in range(args.signups)
            if (row := store.get(f"new{i:04d}@example.net")) and row.status is SubscriberStatus.PENDING
        )
        mails = len(mailbox.Maildir(root / "outbox", create=False)) if (root / "outbox").exists() else 0
        times = sorted(t for _, t in results)
        errors = sum(1 for status, _ in results if status != 200)
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(f"list rows: {args.rows:,}  concurrent sign-ups: {args.signups}")
        print(f"errors: {errors}  pending on the list: {pending}/{args.signups}  confirmation mails: {mails}")
        print(f"POST latency: p50 {statistics.median(times) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
        print(f"wall: all answered {wall:.1f} s, all mails in the outbox {mailed:.1f} s (forms loaded first)")
        print(f"server peak RSS: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
