"""The CSV store: streamed reads, locked atomic changes, unknown columns kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from newsletter.errors import SubscriberError
from newsletter.statuses import SubscriberStatus
from newsletter.subscribers import SubscriberStore

HEADER = "email,name,keywords,status,subscribed_at,unsubscribed_at,team\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8", newline="")
    return path


@pytest.fixture
def store(tmp_path: Path) -> SubscriberStore:
    write(
        tmp_path / "news.csv",
        HEADER
        + "alice@example.org,Alice,diffusion models; music,active,2026-11-01T10:00:00+00:00,,red\n"
        + "Bob@Example.org,Bob,,active,,,blue\n"
        + "carol@example.org,Carol,robotics,unsubscribed,,2026-11-02T00:00:00+00:00,green\n",
    )
    return SubscriberStore(tmp_path / "news.csv")


def test_read_parses_every_column_and_keeps_unknown_ones(store: SubscriberStore) -> None:
    alice, bob, carol = store.read()
    assert alice.keywords == ["diffusion models", "music"] and alice.extra == {"team": "red"}
    assert bob.key == "bob@example.org" and bob.is_active
    assert carol.status == "unsubscribed" and carol.unsubscribed_at is not None


def test_missing_list_names_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(SubscriberError) as caught:
        SubscriberStore(tmp_path / "nope.csv").iter_subscribers()
    assert caught.value.message == (
        f"subscriber list nope not found, in {tmp_path / 'nope.csv'}, "
        "create it with `newsletter subscribers add` or pass --list"
    )


def test_is_active_sees_a_change_made_through_another_store(store: SubscriberStore) -> None:
    assert store.is_active("BOB@example.org")
    SubscriberStore(store.path).set_status("bob@example.org", SubscriberStatus.UNSUBSCRIBED)
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


def test_rewrite_keeps_unknown_columns_order_and_untouched_rows(store: SubscriberStore) -> None:
    before = store.path.read_text().splitlines()
    store.set_status("bob@example.org", SubscriberStatus.BOUNCED)
    store.compact()
    after = store.path.read_text().splitlines()
    assert after[0] == before[0] and after[1] == before[1] and after[3] == before[3]
    assert after[2] == "Bob@Example.org,Bob,,bounced,,,blue"


def test_add_refuses_duplicates_in_any_case(store: SubscriberStore) -> None:
    with pytest.raises(SubscriberError, match="already on list"):
        store.add("ALICE@EXAMPLE.ORG")
    assert store.add("alice@example.org", on_conflict="skip") == "skipped"
    assert store.add("dave@example.org", name="Dave", keywords="a; b") == "added"
    dave = store.get("dave@example.org")
    assert dave is not None and dave.keywords == ["a", "b"]


def test_add_refuses_an_invalid_address(store: SubscriberStore) -> None:
    with pytest.raises(SubscriberError, match="not a valid address"):
        store.add("not-an-address")


def test_add_creates_a_missing_list(tmp_path: Path) -> None:
    store = SubscriberStore(tmp_path / "subs" / "new.csv")
    store.add("a@example.org", name="A")
    assert (
        store.path.read_text().splitlines()[0] == "email,name,keywords,status,subscribed_at,unsubscribed_at"
    )
    assert [s.email for s in store.read()] == ["a@example.org"]


def test_remove_deletes_every_row_of_the_address(store: SubscriberStore) -> None:
    assert store.remove("bob@EXAMPLE.org") is True
    assert store.remove("bob@example.org") is False
    assert [s.key for s in store.read()] == ["alice@example.org", "carol@example.org"]


def test_no_temporary_files_are_left_behind(store: SubscriberStore) -> None:
    for i in range(5):
        store.add(f"u{i}@example.org")
    store.compact()
    names = sorted(p.name for p in store.path.parent.iterdir())
    assert [n for n in names if n != "news.index"] == ["news.csv", "news.csv.lock"]  # the index is kept


def test_unsubscribe_leaves_a_bounced_address_bounced(store: SubscriberStore) -> None:
    store.set_status("bob@example.org", SubscriberStatus.BOUNCED)
    assert store.unsubscribe("bob@example.org") is False
    bob = store.get("bob@example.org")
    assert bob is not None and bob.status == "bounced"


def test_a_temp_file_left_by_a_crashed_writer_is_cleaned_up(store: SubscriberStore) -> None:
    stale = store.path.parent / f".{store.path.name}.abc123.tmp"
    stale.write_text("half a list")
    store.set_status("bob@example.org", SubscriberStatus.BOUNCED)
    store.compact()
    assert not stale.exists()


def test_is_active_sees_an_in_place_edit_that_keeps_size_and_mtime(tmp_path: Path) -> None:
    path = write(tmp_path / "l.csv", "email,status\na@example.org,active\n")
    store = SubscriberStore(path)
    assert store.is_active("a@example.org")
    stat = path.stat()
    with path.open("r+b") as handle:  # same inode, same size
        handle.write(b"email,status\na@example.org,bounce\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime: only freshness tells
    assert not store.is_active("a@example.org")


def test_is_active_trusts_its_cache_once_the_file_is_old(tmp_path: Path) -> None:
    path = write(tmp_path / "l.csv", "email,status\na@example.org,active\n")
    os.utime(path, ns=(0, 0))
    store = SubscriberStore(path)
    assert store.is_active("a@example.org")
    loaded = store.status_cache.loaded
    assert store.is_active("a@example.org") and store.status_cache.loaded is loaded
