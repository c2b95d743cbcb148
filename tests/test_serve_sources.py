"""No page of a real `serve` waits on a [[sources]] feed: the issue is refreshed in the background.

Before, a feed that accepted and never answered held every GET /subscribe for the fetch's
timeout, and one-click unsubscribe behind them (issue 22, row 11).
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers.http_servers import LocalHttpServer, Reply
from helpers.uvicorn_thread import serving

from newsletter.mail.tokens import unsubscribe_url
from newsletter.settings import load_settings
from newsletter.subscribers import open_list
from newsletter.web.app import create_app
from newsletter.web.sample import REFRESH_THREAD

ROOT = Path(__file__).resolve().parents[1]
SECRET = "serve-sources-test-secret-Zq7mW4xR8vB1nT6k"
ALICE = "alice@example.org"


class HeldFeed(LocalHttpServer):
    """A Hugging Face stand-in that accepts every request and answers only once released."""

    def __init__(self) -> None:
        self.released = threading.Event()
        super().__init__(self.answer)

    def answer(self, path: str, query: dict[str, str]) -> Reply:
        self.released.wait()
        recorded = ROOT / "examples" / f"daily_papers_{query.get('date')}.json"
        if query.get("p", "0") != "0" or not recorded.is_file():
            return 200, {}, b"[]"
        return 200, {}, recorded.read_bytes()


@pytest.fixture
def feed() -> Iterator[HeldFeed]:
    server = HeldFeed()
    server.start()
    yield server
    server.released.set()
    # The refresh asks for more once released: stopping the feed under it would leave it retrying,
    # and its warning would land in whatever test runs next.
    for thread in threading.enumerate():
        if thread.name == REFRESH_THREAD:
            thread.join(timeout=60)
    server.stop()


@pytest.fixture
def site(project: Path, feed: HeldFeed, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real `serve` whose papers come only from the held feed."""
    config = project / "newsletter.toml"
    text = config.read_text().replace('papers = ["examples/"]', "papers = []")
    # Fetch deadlines longer than any client waits: a page held by the fetch is never answered.
    text += "\n[fetch]\ntimeout = 900\nrequest_deadline = 900\nfetch_deadline = 900\n"
    config.write_text(text + f'\n[[sources]]\nkind = "hf"\nbase_url = "{feed.url}"\n')
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    with serving(create_app(load_settings(config))) as url:
        yield url


def fetch(url: str, body: bytes | None = None) -> tuple[int, str]:
    """(status, page); the timeout only ends a request that waits on the feed, as they did."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=60) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def until(condition: Callable[[], object]) -> None:
    """Wait for something the server does on its own time (a background fetch)."""
    deadline = time.monotonic() + 60
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert condition()


def test_pages_and_one_click_answer_while_the_feed_holds_every_request(
    site: str, feed: HeldFeed, project: Path
) -> None:
    status, page = fetch(f"{site}/subscribe")
    assert status == 200 and 'name="email"' in page and "e.g." not in page
    until(lambda: feed.requests)  # the refresh has asked the feed, which holds the request
    for _ in range(3):
        assert fetch(f"{site}/subscribe")[0] == 200
    one_click = unsubscribe_url(site, SECRET, "example", ALICE)
    assert fetch(one_click, b"List-Unsubscribe=One-Click")[0] == 200
    settings = load_settings(project / "newsletter.toml")
    assert not open_list(settings.places, "example").is_active(ALICE)
    assert len(feed.requests) == 1  # one refresh at a time, however many pages were asked for


def test_the_feeds_papers_reach_the_pages_once_it_answers(site: str, feed: HeldFeed) -> None:
    assert "e.g." not in fetch(f"{site}/subscribe")[1]  # starts the background refresh
    feed.released.set()
    until(lambda: "e.g. <em>" in fetch(f"{site}/subscribe")[1])  # keyword examples from the papers
