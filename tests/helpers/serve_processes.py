"""Real `newsletter serve` processes on one database, and a big list filled by the database itself.

Used by the two-serve test and by benchmarks/bench_two_serve.py: each serve is `python -m
newsletter serve` in a project folder whose newsletter.toml names the SMTP server; the database,
the secret and the public address come from the environment, as an operator would set them.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Text, cast, func, literal, select
from sqlalchemy.sql import Select

from newsletter.store import open_database, place_of
from newsletter.store.schema import subscribers
from newsletter.store.subscriberrows import change_stamp
from newsletter.store.subscribers import SubscriberStore

REPO = Path(__file__).resolve().parents[2]
SECRET = "two-serve-secret-0123456789-abcdefghijklmnop"
BASE_URL = "https://news.example.org"  # behind the load balancer: links name it, not an instance
LIST = "news"
START_WAIT = 120.0  # seconds a serve may take to come up on a loaded machine


def reader(i: int) -> str:
    """The address of row `i` of a filled list."""
    return f"reader{i:07d}@example.org"


def _series(dialect: str, rows: int) -> Select[tuple[int]]:
    """The numbers 0..rows-1 as a query: generate_series on PostgreSQL, a recursive CTE on SQLite."""
    if dialect == "postgresql":
        return select(func.generate_series(0, rows - 1).column_valued("i").label("i"))
    top = select(literal(0).label("i")).cte("series", recursive=True)
    top = top.union_all(select(top.c.i + 1).where(top.c.i < rows - 1))
    return select(top.c.i)


def _zero_padded(dialect: str, number: Any) -> Any:
    """A number as seven digits, as `reader` writes it."""
    if dialect == "postgresql":
        return func.lpad(cast(number, Text), 7, "0")
    return func.printf("%07d", number)


def fill_list(database_url: str, rows: int, list_name: str = LIST) -> float:
    """Make `list_name` with `rows` active readers in one INSERT ... SELECT; the seconds it took."""
    db = open_database(place_of(database_url, Path("unused.db")))
    SubscriberStore(db, list_name).create()
    started = time.perf_counter()
    with db.write() as conn, db.roomy(conn):
        n = _series(conn.dialect.name, rows).subquery()
        digits = _zero_padded(conn.dialect.name, n.c.i)
        address = literal("reader").concat(digits).concat("@example.org")
        keywords = func.substr(literal("diffusion models"), 1, 16 * (n.c.i % 2))
        stamp = change_stamp()
        source = select(
            literal(list_name),
            address,
            address,
            literal("Reader ").concat(cast(n.c.i, Text)),
            keywords,
            literal("active"),
            literal("2026-10-01T00:00:00+00:00"),
            literal(stamp),
        )
        columns = ["list", "email_key", "email", "name", "keywords", "status", "subscribed_at", "changed_at"]
        conn.execute(subscribers.insert().from_select(columns, source))
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_project(folder: Path, smtp_port: int) -> None:
    """A project folder as an operator keeps it on each web host: the config, no list files."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "newsletter.toml").write_text(
        f'title = "Lab Papers"\ndefault_list = "{LIST}"\nissue_date = 2024-03-14\n'
        f'papers = ["{REPO / "examples"}"]\ntemplates_dir = "{REPO / "templates"}"\n'
        '[sender]\nname = "Lab Papers"\naddress = "digest@example.org"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nsecurity = "none"\n'
        # One load balancer in front, on this host: it names the client in X-Forwarded-For.
        '[serve]\ntrusted_proxies = ["127.0.0.1"]\n',
        encoding="utf-8",
    )


def serve_environment(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of one serve: what every instance shares (database, secret, address)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        PYTHONPATH=str(REPO),
        NEWSLETTER_DATABASE_URL=database_url,
        NEWSLETTER_SECRET=SECRET,
        NEWSLETTER_BASE_URL=BASE_URL,
        **extra,
    )
    return env


@dataclass
class ServeProcess:
    """One running `newsletter serve`."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def said(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def _up(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False


def _start(folder: Path, env: dict[str, str], name: str) -> ServeProcess:
    port = free_port()
    log = folder / f"serve-{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "serve", "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return ServeProcess(process, port, log)


def _wait_until_up(serve: ServeProcess) -> None:
    deadline = time.monotonic() + START_WAIT
    while not _up(serve.port):
        assert serve.process.poll() is None, f"serve exited: {serve.said()[-2000:]}"
        assert time.monotonic() < deadline, f"serve did not come up: {serve.said()[-2000:]}"
        time.sleep(0.1)


def _stop(serve: ServeProcess) -> None:
    """SIGTERM, as an orchestrator stops it; killed if it does not go."""
    serve.process.terminate()
    try:
        serve.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        serve.process.kill()
        serve.process.wait()


@contextmanager
def serve_processes(folder: Path, env: dict[str, str], count: int) -> Iterator[list[ServeProcess]]:
    """`count` serves on one database, as behind a load balancer, until the block ends."""
    started: list[ServeProcess] = []
    try:
        for n in range(count):
            started.append(_start(folder, env, str(n)))
        for serve in started:
            _wait_until_up(serve)
        yield started
    finally:
        for serve in started:
            _stop(serve)
