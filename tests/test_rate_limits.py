"""Rate limits live in the database: every `serve` on it shares them, and a restart keeps them."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

from helpers.signup_site import make_site, outbox, sign_up
from sqlalchemy import select

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from newsletter.store import Database, open_database, place_of
from newsletter.store.limits import KEPT_FOR, count_hit
from newsletter.store.schema import rate_limits
from newsletter.web.app import create_app
from newsletter.web.selfservice import SIGNUPS_PER_IP_PER_HOUR

HOUR = 3600
NOON = 1_800_000_000  # a whole hour: the windows below start here


def opened(database_url: str) -> Database:
    return open_database(place_of(database_url, Path("unused.db")))


def test_two_serve_processes_on_one_database_share_the_sign_up_limit_per_ip(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_site(tmp_path, database_url=database_url)
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        answers = [sign_up((one, two)[i % 2], f"r{i}@example.org").status_code for i in range(12)]
    assert answers == [200] * SIGNUPS_PER_IP_PER_HOUR + [429] * 2


def test_a_restarted_serve_remembers_whom_it_mailed_this_hour(tmp_path: Path, database_url: str) -> None:
    settings = make_site(tmp_path, database_url=database_url)
    with TestClient(create_app(settings)) as before:
        sign_up(before, "new@example.org")
    with TestClient(create_app(settings)) as after:
        sign_up(after, "NEW@example.org")
        sign_up(after, "other@example.org")
    assert sorted(m["To"] for m in outbox(tmp_path)) == ["new@example.org", "other@example.org"]


def test_no_two_processes_take_the_last_allowed_hit(database_url: str) -> None:
    """Each thread has an engine of its own, as a separate process would."""
    allowed: list[bool] = []
    errors: list[BaseException] = []

    def hit() -> None:
        db = Database(place_of(database_url, Path("unused.db")))
        try:
            for _ in range(5):
                allowed.append(count_hit(db, "signups per ip:x", 7, HOUR, NOON + 10))
        except BaseException as exc:  # collected: a thread's failure must fail the test
            errors.append(exc)
        finally:
            db.dispose()

    opened(database_url)  # the schema, made once before the threads race
    threads = [threading.Thread(target=hit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and allowed.count(True) == 7 and len(allowed) == 20


def test_a_new_window_starts_counting_afresh_and_refused_hits_are_not_counted(database_url: str) -> None:
    db = opened(database_url)
    assert [count_hit(db, "k", 2, HOUR, NOON + s) for s in (0, 1, 2, 3)] == [True, True, False, False]
    assert count_hit(db, "other", 2, HOUR, NOON + 4)  # another key has its own count
    assert [count_hit(db, "k", 2, HOUR, NOON + HOUR + s) for s in (0, 1, 2)] == [True, True, False]
    with db.read() as conn:
        rows = conn.execute(select(rate_limits.c.key, rate_limits.c.window_start, rate_limits.c.hits))
        counted = {(key, start): hits for key, start, hits in rows}
    assert counted == {("k", NOON): 2, ("other", NOON): 1, ("k", NOON + HOUR): 2}


def test_windows_older_than_a_day_are_pruned_when_a_new_window_opens(database_url: str) -> None:
    db = opened(database_url)
    for key in ("a", "b", "c"):
        count_hit(db, key, 5, HOUR, NOON)
    count_hit(db, "a", 5, HOUR, NOON + KEPT_FOR - HOUR)  # within a day: nothing is old enough yet
    with db.read() as conn:
        assert len(conn.execute(select(rate_limits)).all()) == 4
    count_hit(db, "d", 5, HOUR, NOON + KEPT_FOR + HOUR)
    with db.read() as conn:
        left = {(row.key, row.window_start) for row in conn.execute(select(rate_limits))}
    assert left == {("a", NOON + KEPT_FOR - HOUR), ("d", NOON + KEPT_FOR + HOUR)}


def test_no_address_or_ip_is_stored_in_clear(tmp_path: Path, database_url: str) -> None:
    settings = make_site(tmp_path, database_url=database_url)
    with TestClient(create_app(settings)) as client:
        sign_up(client, "private.person@example.org")
    with opened(database_url).read() as conn:
        keys = list(conn.execute(select(rate_limits.c.key)).scalars())
    assert len(keys) == 2
    assert not any("private" in key or "example" in key or "testclient" in key for key in keys)
