"""The list in the database: reads stream in order, each change is one transaction, an unsubscribe
or bounce leaves a suppression that only a resubscribe or a confirmed sign-up lifts. Every test
runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from helpers.lists import store_of, write
from sqlalchemy import select

from newsletter.errors import SubscriberError
from newsletter.models import utc_now
from newsletter.statuses import SubscriberStatus
from newsletter.store import schema
from newsletter.store import subscribers as store_module
from newsletter.store.subscriberrows import change_stamp
from newsletter.store.subscribers import StatusWatch, SubscriberStore
from newsletter.subscribers.rows import new_subscriber

HEADER = "email,name,keywords,status,subscribed_at,unsubscribed_at,team\n"


@pytest.fixture
def list_path(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    return write(
        tmp_path / "subscribers" / "news.csv",
        HEADER
        + "alice@example.org,Alice,diffusion models; music,active,2026-11-01T10:00:00+00:00,,red\n"
        + "Bob@Example.org,Bob,,active,,,blue\n"
        + "carol@example.org,Carol,robotics,unsubscribed,,2026-11-02T00:00:00+00:00,green\n",
    )


@pytest.fixture
def store(list_path: Path) -> SubscriberStore:
    return store_of(list_path)


def suppression(store: SubscriberStore, email: str) -> tuple[str, str] | None:
    found = store.suppression(email)
    return None if found is None else (found.reason, found.since)


def test_the_file_is_read_with_every_column_and_unknown_ones_kept(store: SubscriberStore) -> None:
    alice, bob, carol = store.read()
    assert alice.keywords == ["diffusion models", "music"] and alice.extra == {"team": "red"}
    assert bob.key == "bob@example.org" and bob.email == "Bob@Example.org" and bob.is_active
    assert carol.status == "unsubscribed" and carol.unsubscribed_at is not None


def test_a_missing_list_names_the_file_and_the_fix(tmp_path: Path, list_path: Path) -> None:
    store = store_of(tmp_path / "subscribers" / "nope.csv")
    assert not store.exists()
    assert store.missing_error().message == (
        f"subscriber list nope not found, in {tmp_path / 'subscribers' / 'nope.csv'}, "
        "create it with `newsletter subscribers add` or pass --list"
    )


def test_is_active_sees_a_change_made_through_another_store(store: SubscriberStore, list_path: Path) -> None:
    assert store.is_active("BOB@example.org")
    store_of(list_path).set_status("bob@example.org", SubscriberStatus.UNSUBSCRIBED)
    assert not store.is_active("bob@example.org")
    assert not store.is_active("nobody@example.org")


def test_set_status_is_idempotent_and_stamps_unsubscribed_at(store: SubscriberStore) -> None:
    assert store.set_status("ALICE@example.org", SubscriberStatus.UNSUBSCRIBED) is True
    assert store.set_status("alice@example.org", SubscriberStatus.UNSUBSCRIBED) is False
    alice = store.get("alice@example.org")
    assert alice is not None and alice.status == "unsubscribed" and alice.unsubscribed_at is not None


def test_set_status_of_unknown_address_is_an_error(store: SubscriberStore) -> None:
    with pytest.raises(SubscriberError, match="not on list news"):
        store.set_status("zed@example.org", SubscriberStatus.BOUNCED)


@pytest.mark.parametrize("status", [SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED])
def test_leaving_bars_the_address_with_the_reason_and_the_time(
    store: SubscriberStore, status: SubscriberStatus
) -> None:
    store.set_status("alice@example.org", status)
    reason, since = suppression(store, "alice@example.org") or ("", "")
    assert reason == status.value and since.startswith("20")


def test_a_removed_address_that_had_left_cannot_be_added_back_without_resubscribe(
    store: SubscriberStore,
) -> None:
    assert store.remove("carol@example.org") is True
    assert store.remove("carol@example.org") is False
    with pytest.raises(
        SubscriberError, match=r"carol@example\.org unsubscribed from list news on 2026-11-02"
    ):
        store.add(new_subscriber("carol@example.org"))
    assert store.add(new_subscriber("carol@example.org"), on_conflict="skip") == "skipped"
    assert store.add(new_subscriber("carol@example.org"), resubscribe=True) == "added"
    assert store.is_active("carol@example.org") and suppression(store, "carol@example.org") is None


def test_a_resubscribe_lifts_the_bar(store: SubscriberStore) -> None:
    assert store.set_status("carol@example.org", SubscriberStatus.ACTIVE) is True
    carol = store.get("carol@example.org")
    assert carol is not None and carol.unsubscribed_at is None
    assert suppression(store, "carol@example.org") is None


def test_add_refuses_duplicates_in_any_case_and_never_resubscribes_on_update(store: SubscriberStore) -> None:
    with pytest.raises(SubscriberError, match="already on list"):
        store.add(new_subscriber("ALICE@EXAMPLE.ORG"))
    assert store.add(new_subscriber("alice@example.org"), on_conflict="skip") == "skipped"
    assert store.add(new_subscriber("carol@example.org", name="C."), on_conflict="update") == "updated"
    carol = store.get("carol@example.org")
    assert carol is not None and carol.name == "C." and carol.status == "unsubscribed"
    assert store.add(new_subscriber("dave@example.org", name="Dave", keywords="a; b")) == "added"
    dave = store.get("dave@example.org")
    assert dave is not None and dave.keywords == ["a", "b"]


def test_an_invalid_address_is_refused_before_the_store(store: SubscriberStore) -> None:
    with pytest.raises(ValueError, match="not a valid address"):
        new_subscriber("not-an-address")


def test_unsubscribe_leaves_a_bounced_address_bounced(store: SubscriberStore) -> None:
    store.set_status("bob@example.org", SubscriberStatus.BOUNCED)
    assert store.unsubscribe("bob@example.org") is False
    bob = store.get("bob@example.org")
    assert bob is not None and bob.status == "bounced"


def test_an_unsubscribe_for_an_address_the_list_lacks_bars_it_all_the_same(store: SubscriberStore) -> None:
    assert store.unsubscribe("stranger@example.org") is False
    assert suppression(store, "stranger@example.org") is not None
    assert store.add(new_subscriber("stranger@example.org"), on_conflict="skip") == "skipped"


def test_an_update_expecting_what_the_reader_saw_loses_to_a_change_made_meanwhile(
    store: SubscriberStore,
) -> None:
    store.set_status("alice@example.org", SubscriberStatus.BOUNCED)  # by bounce processing, meanwhile
    assert not store.update("alice@example.org", {"status": "active"}, expect={"status": "active"})
    assert store.update("alice@example.org", {"name": "Alice M."})
    alice = store.get("alice@example.org")
    assert alice is not None and (alice.status, alice.name) == ("bounced", "Alice M.")


def test_counts_name_every_status(store: SubscriberStore) -> None:
    assert store.counts() == {"active": 2, "unsubscribed": 1, "bounced": 0, "pending": 0}


def test_a_long_list_streams_in_order_of_arrival_a_page_at_a_time(
    store: SubscriberStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "PAGE", 2)
    store.add_many([new_subscriber(f"u{i}@example.org") for i in range(5)])
    keys = [s.key for s in store.iter_subscribers()]
    assert keys == ["alice@example.org", "bob@example.org", "carol@example.org"] + [
        f"u{i}@example.org" for i in range(5)
    ]
    assert [s.key for s in store.iter_subscribers(statuses=["unsubscribed"])] == ["carol@example.org"]


def test_a_send_sees_a_reader_leave_and_come_back(store: SubscriberStore) -> None:
    watch = StatusWatch(store, every=0)
    assert watch.still_wanted("alice@example.org")
    store.unsubscribe("alice@example.org")
    assert not watch.still_wanted("alice@example.org") and watch.still_wanted("bob@example.org")
    store.set_status("alice@example.org", SubscriberStatus.ACTIVE)
    assert watch.still_wanted("alice@example.org")


def test_a_send_polling_for_leavers_reads_only_the_rows_that_left(store: SubscriberStore) -> None:
    # A list imported just before the send changed every row: polling must not read them all again.
    store.add_many([new_subscriber(f"u{i}@example.org") for i in range(50)])
    store.unsubscribe("u7@example.org")
    since = change_stamp(utc_now() - timedelta(minutes=1))
    everyone = store.changes_since(since)
    leavers = store.changes_since(since, leavers_only=True)
    assert ("u7@example.org", "unsubscribed") in leavers and len(everyone) > 50
    assert sorted(leavers) == sorted(row for row in everyone if row[1] != "active")


def test_stale_sign_ups_and_their_requests_are_dropped(store: SubscriberStore) -> None:
    from datetime import UTC, datetime, timedelta

    old = datetime(2026, 1, 1, tzinfo=UTC)
    store.add(new_subscriber("p@example.org", status=SubscriberStatus.PENDING))
    store.update("p@example.org", {"subscribed_at": "2025-12-01T00:00:00+00:00"})
    store.save_request("carol@example.org", "Carol", "x", "weekly")
    assert store.drop_pending(old + timedelta(days=1)) == 1
    assert store.get("p@example.org") is None and store.get("alice@example.org") is not None
    with store.db.read() as conn:
        assert conn.execute(select(schema.signups.c.email)).all() == [("carol@example.org",)]
