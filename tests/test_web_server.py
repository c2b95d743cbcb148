"""A real uvicorn server on loopback: one-click POSTs land while other processes change the list.

Both engines: a SQLite file, and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from helpers.lists import store_of
from helpers.uvicorn_thread import serving

from newsletter.mail.tokens import unsubscribe_url
from newsletter.settings import Settings
from newsletter.statuses import SubscriberStatus
from newsletter.subscribers.rows import new_subscriber
from newsletter.subscribers.writeback import write_back
from newsletter.web.app import create_app

SECRET = "server-test-secret-Zq7mW4xR8vB1nT6kP3yH"
CHANGES = 500
POSTS = 100


def request(url: str, body: bytes | None = None) -> int:
    """Status of one request; urllib because it adds nothing between us and the server."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers)) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


ONE_CLICK = b"List-Unsubscribe=One-Click"


@pytest.fixture
def list_path(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    folder = tmp_path / "subscribers"
    folder.mkdir()
    rows = [f"p{i}@example.org,P{i},topic {i % 7},active,,,keep-{i}" for i in range(CHANGES // 2)]
    rows += [f"q{i}@example.org,Q{i},,active,,,keep-q{i}" for i in range(POSTS)]
    path = folder / "news.csv"
    path.write_text(
        "email,name,keywords,status,subscribed_at,unsubscribed_at,note\n" + "\n".join(rows) + "\n"
    )
    return path


@pytest.fixture
def base_url(list_path: Path) -> Iterator[str]:
    settings = Settings(secret=SECRET, subscribers_dir=list_path.parent, config_dir=list_path.parent.parent)
    with serving(create_app(settings)) as url:
        yield url


def test_one_click_post_through_a_real_server(base_url: str, list_path: Path) -> None:
    store = store_of(list_path)
    assert store.is_active("q1@example.org")
    url = unsubscribe_url(base_url, SECRET, "news", "q1@example.org")
    assert request(url) == 200 and store.is_active("q1@example.org")
    assert request(url, ONE_CLICK) == 200  # urllib does not follow redirects for POST: 200 is the answer
    assert not store.is_active("q1@example.org")  # the same store object sees it: a running send would
    forged = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    assert request(forged, ONE_CLICK) == 403


def _adder(path: str, prefix: str, count: int, start: threading.Barrier) -> None:
    store = store_of(Path(path))
    start.wait()
    for i in range(count):
        store.add(
            new_subscriber(f"{prefix}{i}@example.org", name=f"{prefix.upper()}{i}", keywords=f"k{i % 5}")
        )


def _bouncer(path: str, count: int, start: threading.Barrier) -> None:
    # Half adds, half status changes of rows that already exist: both kinds must survive.
    store = store_of(Path(path))
    start.wait()
    for i in range(count // 2):
        store.add(new_subscriber(f"b{i}@example.org"))
        store.set_status(f"p{i}@example.org", SubscriberStatus.BOUNCED)


def test_two_writers_and_the_server_lose_no_update(base_url: str, list_path: Path) -> None:
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(3)
    writers = [
        spawn.Process(target=_adder, args=(str(list_path), "a", CHANGES, start)),
        spawn.Process(target=_bouncer, args=(str(list_path), CHANGES, start)),
    ]
    for writer in writers:
        writer.start()
    start.wait(timeout=60)  # all three begin changing the list together
    overlapping = 0
    for i in range(POSTS):
        assert request(unsubscribe_url(base_url, SECRET, "news", f"q{i}@example.org"), ONE_CLICK) == 200
        overlapping += all(writer.is_alive() for writer in writers)
        time.sleep(0.01)  # spread the POSTs over the writers' run
    assert overlapping > 0
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0
    store = store_of(list_path)
    write_back(store, list_path)
    final = {s.key: s for s in store_of(list_path).read()}
    assert len(final) == CHANGES // 2 + POSTS + CHANGES + CHANGES // 2
    assert all(final[f"a{i}@example.org"].keywords == [f"k{i % 5}"] for i in range(CHANGES))
    assert all(f"b{i}@example.org" in final for i in range(CHANGES // 2))
    assert all(final[f"p{i}@example.org"].status == "bounced" for i in range(CHANGES // 2))
    assert all(final[f"p{i}@example.org"].extra == {"note": f"keep-{i}"} for i in range(CHANGES // 2))
    assert all(final[f"q{i}@example.org"].status == "unsubscribed" for i in range(POSTS))
    # Nothing beside the list but the database serve keeps its limits in.
    left = sorted(p.name for p in list_path.parent.iterdir() if not p.name.startswith("newsletter.db"))
    assert left == ["news.csv"]


def test_get_through_a_real_server_changes_nothing(base_url: str, list_path: Path) -> None:
    before = list_path.read_bytes()
    query = urlencode({"list": "news", "email": "q2@example.org", "token": "forged"})
    assert request(f"{base_url}/unsubscribe?{query}") == 403
    assert request(unsubscribe_url(base_url, SECRET, "news", "q2@example.org")) == 200
    assert list_path.read_bytes() == before
