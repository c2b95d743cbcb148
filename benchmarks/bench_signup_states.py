#!/usr/bin/env python3
"""Does the sign-up form tell who is on the list by how long it takes? Medians per address state.

A real `newsletter serve` (uvicorn on loopback in a child process, serve's own config, the
embedded outbox) over a list of --rows readers holding --tries addresses in each state: pending,
active, unsubscribed and bounced, plus addresses the list does not have. One client posts the
sign-up form for each address once, the states taken in turn so any drift hits all alike, and
waits for each answer's mail before the next (a trusted proxy names a new client each time, so
the per-IP limit stays out of it). It prints the
median answer time per state and how far the slowest median is above the fastest; issue 22 row
6 asks for at most 10%.

Usage: python benchmarks/bench_signup_states.py [--rows 20000] [--tries 100]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import httpx
from bench_signup import SECRET, start_serving  # the sign-up bench's secret and server start, one definition

from newsletter.settings import Settings
from newsletter.subscribers import open_list

STATES = ("new", "pending", "active", "unsubscribed", "bounced")


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
            "serve": {"trusted_proxies": ["127.0.0.1"]},
        }
    )


def address(state: str, i: int) -> str:
    return f"{state}{i:04d}@example.org"


def write_list(path: Path, rows: int, tries: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        out.write("email,name,keywords,status,subscribed_at,unsubscribed_at\n")
        for i in range(rows):
            out.write(f"reader{i:07d}@example.org,Reader {i},speech,active,2026-10-01T00:00:00+00:00,\n")
        for state in STATES[1:]:
            left = "2026-10-20T00:00:00+00:00" if state == "unsubscribed" else ""
            for i in range(tries):
                since = "2026-10-01T00:00:00+00:00"
                out.write(f"{address(state, i)},{state} {i},diffusion models,{state},{since},{left}\n")


def serve(root: str, port: int) -> None:
    import uvicorn

    from newsletter.web.app import create_app
    from newsletter.web.server import ServeLimits, server_config

    settings = make_settings(Path(root))
    limits = ServeLimits(max_connections=1000)
    config = server_config(create_app(settings), "127.0.0.1", port, limits, trusted_proxies=["127.0.0.1"])
    uvicorn.Server(config).run()


def sign_up(client: httpx.Client, email: str, n: int) -> float:
    """Seconds the POST of one sign-up took (the form is loaded first, untimed)."""
    ip = {"X-Forwarded-For": f"10.{n // 62500}.{n // 250 % 250}.{n % 250 + 1}"}
    form = client.get("/subscribe?list=big", headers=ip)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf, form.text[:300]
    data = {"list": "big", "csrf": csrf.group(1), "email": email, "name": "Mallory", "keywords": "casino"}
    began = time.perf_counter()
    answer = client.post("/subscribe", data=data, headers=ip)
    took = time.perf_counter() - began
    assert answer.status_code == 200, (answer.status_code, answer.text[:300])
    return took


def wait_for_mail(outbox: Path, count: int) -> None:
    """Wait (up to 10 s) until the outbox holds `count` mails: every sign-up here mails once."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sum(1 for sub in ("new", "cur") for _ in (outbox / sub).glob("*")) >= count:
            return
        time.sleep(0.002)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--tries", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        settings = make_settings(root)
        write_list(settings.list_path("big"), args.rows, args.tries)
        open_list(settings.places, "big")  # as serve does before it starts
        server, base = start_serving(serve, folder)
        times: dict[str, list[float]] = {state: [] for state in STATES}
        with httpx.Client(base_url=base, timeout=60) as client:
            sign_up(client, "warmup@example.org", 0)  # the first load reads the papers once
            n = 1
            for i in range(args.tries):
                # Each round starts at another state, so no state always follows the same one.
                for state in STATES[i % len(STATES) :] + STATES[: i % len(STATES)]:
                    times[state].append(sign_up(client, address(state, i), n))
                    wait_for_mail(root / "outbox", n + 1)  # the last answer's mail is out of the way
                    n += 1
        server.terminate()
        server.join()
    medians = {state: statistics.median(found) * 1000 for state, found in times.items()}
    print(f"list rows: {args.rows:,}  sign-ups per state: {args.tries}")
    for state, median in medians.items():
        print(f"  {state:<13} median {median:6.2f} ms")
    spread = max(medians.values()) / min(medians.values()) - 1
    print(f"slowest median above the fastest: {spread:.1%} ({'within' if spread <= 0.10 else 'over'} 10%)")


if __name__ == "__main__":
    main()
