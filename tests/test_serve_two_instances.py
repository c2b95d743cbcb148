"""Issue 28, serving: two `newsletter serve` processes on one database, as behind a load balancer.

200 readers at once, split over both: 100 sign up (form from one instance, post to the other,
confirm link opened on the first) and 100 press the one-click unsubscribe of a big list. Nothing
may fail, get lost or be doubled, and the sign-up limits count across both instances. On
PostgreSQL the list has 1,000,000 rows; on SQLite (two processes on one file) 100,000.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest
from helpers.serve_processes import (
    LIST,
    ServeProcess,
    fill_list,
    reader,
    serve_environment,
    serve_processes,
    write_project,
)
from helpers.serve_readers import (
    Answer,
    all_at_once,
    confirm_link,
    new_reader,
    reader_signs_up,
    reader_unsubscribes,
    sign_up,
)
from helpers.smtp_servers import LoopbackServer, RecordingHandler

from newsletter.statuses import SubscriberStatus
from newsletter.store import open_database, place_of
from newsletter.store.subscribers import SubscriberStore
from newsletter.web.selfservice import MAILS_PER_ADDRESS_PER_HOUR, SIGNUPS_PER_IP_PER_HOUR

ROWS = {"postgresql": 1_000_000, "sqlite": 100_000}
SIGNUPS = 100
UNSUBSCRIBES = 100


@pytest.fixture
def smtp_server() -> Iterator[LoopbackServer]:
    server = LoopbackServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp(smtp_server: LoopbackServer) -> RecordingHandler:
    """What the SMTP server both serves send their confirmation mail to received."""
    handler = smtp_server.handler
    assert isinstance(handler, RecordingHandler)
    return handler


def engine_of(database_url: str) -> str:
    return "postgresql" if database_url.startswith("postgresql") else "sqlite"


@pytest.fixture
def two_serves(
    tmp_path: Path, database_url: str, smtp_server: LoopbackServer, request: pytest.FixtureRequest
) -> Iterator[list[ServeProcess]]:
    """Two serves on one database; the list filled first when the test is marked `big_list`."""
    if request.node.get_closest_marker("big_list"):
        fill_list(database_url, ROWS[engine_of(database_url)])
    write_project(tmp_path / "site", smtp_server.port)
    with serve_processes(tmp_path / "site", serve_environment(database_url), 2) as serves:
        yield serves
    for serve in serves:  # a request that failed inside serve would have been logged
        assert "Traceback" not in serve.said() and "ERROR" not in serve.said(), serve.said()[-3000:]


def store_at(database_url: str) -> SubscriberStore:
    return SubscriberStore(open_database(place_of(database_url, Path("unused.db"))), LIST)


def status_of(store: SubscriberStore, address: str) -> SubscriberStatus | None:
    found = store.get(address)
    return None if found is None else found.status


@pytest.mark.big_list
def test_two_serves_take_200_concurrent_signups_and_unsubscribes_with_nothing_lost_or_doubled(
    two_serves: list[ServeProcess], smtp: RecordingHandler, database_url: str
) -> None:
    rows = ROWS[engine_of(database_url)]
    leaving = [reader(i * (rows // UNSUBSCRIBES)) for i in range(UNSUBSCRIBES)]
    jobs = [partial(reader_signs_up, two_serves, smtp, i) for i in range(SIGNUPS)]
    jobs += [partial(reader_unsubscribes, two_serves, a, i) for i, a in enumerate(leaving)]
    answers = all_at_once(jobs)
    assert [a for a in answers if a.status != 200] == []  # no 5xx, no 429, no connection errors
    asked = {"form": SIGNUPS, "sign-up": SIGNUPS, "confirm": SIGNUPS, "unsubscribe": UNSUBSCRIBES}
    assert Counter(a.kind for a in answers) == asked
    store = store_at(database_url)
    joined = [new_reader(i) for i in range(SIGNUPS)]
    assert {a: status_of(store, a) for a in joined} == dict.fromkeys(joined, SubscriberStatus.ACTIVE)
    assert [store.suppression(a) for a in joined] == [None] * SIGNUPS
    assert {a: status_of(store, a) for a in leaving} == dict.fromkeys(leaving, SubscriberStatus.UNSUBSCRIBED)
    barred = [store.suppression(a) for a in leaving]
    assert [str(bar.reason) if bar else None for bar in barred] == ["unsubscribed"] * UNSUBSCRIBES
    counts = {"active": rows, "unsubscribed": UNSUBSCRIBES, "pending": 0, "bounced": 0}
    assert store.counts() == counts  # nobody twice, nobody lost
    assert Counter(m.recipient for m in smtp.received) == Counter(joined)  # one mail per sign-up


def test_sign_up_limits_count_across_both_serves(
    two_serves: list[ServeProcess], smtp: RecordingHandler
) -> None:
    statuses = []
    with httpx.Client(headers={"X-Forwarded-For": "10.9.9.9"}, timeout=60) as browser:
        for i in range(SIGNUPS_PER_IP_PER_HOUR + 1):  # half on each instance
            first, other = two_serves[i % 2], two_serves[(i + 1) % 2]
            statuses.append(sign_up(browser, first, other, f"same-network{i}@example.org")[-1].status)
    assert statuses == [200] * SIGNUPS_PER_IP_PER_HOUR + [429]
    for i in range(MAILS_PER_ADDRESS_PER_HOUR + 2):  # one mailbox, from networks of its own
        with httpx.Client(headers={"X-Forwarded-For": f"10.8.{i}.1"}, timeout=60) as browser:
            answer = sign_up(browser, two_serves[i % 2], two_serves[(i + 1) % 2], "target@example.org")
            assert answer[-1].status == 200
    confirm_link(smtp, "target@example.org")
    time.sleep(1)  # a mail sent after its page would come within this; none may
    to_target = [m for m in smtp.received if m.recipient == "target@example.org"]
    assert len(to_target) == MAILS_PER_ADDRESS_PER_HOUR


DOUBLED = 30


def test_one_address_signed_up_on_both_serves_at_once_is_recorded_once_without_an_error(
    two_serves: list[ServeProcess], smtp: RecordingHandler, database_url: str
) -> None:
    def twice(i: int, serve: int) -> list[Answer]:
        # A double click that the load balancer spread over both instances, for a new address.
        with httpx.Client(headers={"X-Forwarded-For": f"10.2.{i}.{serve + 1}"}, timeout=60) as browser:
            return sign_up(browser, two_serves[serve], two_serves[serve], f"twice{i:02d}@example.org")

    jobs = [partial(twice, i, serve) for i in range(DOUBLED) for serve in (0, 1)]
    answers = all_at_once(jobs)
    assert [(a.kind, a.status) for a in answers] == [("form", 200), ("sign-up", 200)] * 2 * DOUBLED
    store = store_at(database_url)
    assert store.counts()["pending"] == DOUBLED
    addresses = [f"twice{i:02d}@example.org" for i in range(DOUBLED)]
    for address in addresses:
        confirm_link(smtp, address)
    time.sleep(1)  # a second mail sent after its page would come within this; none may
    assert Counter(m.recipient for m in smtp.received) == Counter(addresses)
