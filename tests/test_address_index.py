"""The address index beside a list: used when it matches the CSV and journal, rebuilt when it does not.

Each test first makes the index (and checks it is the one answering), then changes the list the
way a person or another process would, and checks the answer is the list's, not the stale index's.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path
from typing import BinaryIO

import pytest
from click.testing import CliRunner
from helpers.lists import AN_HOUR, settle, write

from newsletter.cli import main
from newsletter.errors import SubscriberError
from newsletter.statuses import SubscriberStatus
from newsletter.subscribers import SubscriberStore
from newsletter.subscribers.addressindex import AddressIndex, CsvSignature
from newsletter.subscribers.csvfile import CsvLayout

HEADER = "email,name,keywords,status,subscribed_at,unsubscribed_at\n"
ROWS = (
    "alice@example.org,Alice,music,active,,\n"
    "Bob@Example.org,Bob,,active,,\n"
    "carol@example.org,Carol,,bounced,,\n"
)


@pytest.fixture
def store(tmp_path: Path) -> SubscriberStore:
    return SubscriberStore(write(tmp_path / "news.csv", HEADER + ROWS))


def indexed(store: SubscriberStore) -> sqlite3.Connection:
    """The index file as it is on disk (it must be there)."""
    assert store.index.path.is_file()
    return sqlite3.connect(store.index.path)


def index_keys(store: SubscriberStore) -> set[str]:
    with indexed(store) as db:
        return {key for (key,) in db.execute("SELECT key FROM rows")}


def test_the_index_is_built_beside_the_list_for_the_owner_only_and_answers(store: SubscriberStore) -> None:
    bob = store.get("BOB@example.org")
    assert bob is not None and bob.name == "Bob"
    assert index_keys(store) == {"alice@example.org", "bob@example.org", "carol@example.org"}
    assert stat.S_IMODE(store.index.path.stat().st_mode) == 0o600
    found = store.index.find("carol@example.org")
    assert found is not None and found.row is not None and found.row[3] == "bounced"
    assert store.index.find("nobody@example.org") == type(found)(found.layout, None, [])


def test_a_fresh_csv_is_answered_but_its_index_is_not_kept(tmp_path: Path) -> None:
    store = SubscriberStore(write(tmp_path / "news.csv", HEADER + ROWS, settled=False))
    assert store.get("alice@example.org") is not None
    assert not store.index.path.exists()  # an edit in the same mtime tick would go unseen
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".building")] == []


def test_a_hand_edit_that_adds_a_row_is_seen(store: SubscriberStore) -> None:
    assert store.get("dave@example.org") is None
    with store.path.open("a", encoding="utf-8") as out:
        out.write("dave@example.org,Dave,,active,,\n")
    with pytest.raises(SubscriberError, match="already on list"):
        store.add("dave@example.org")
    settle(store.path)
    assert store.get("dave@example.org") is not None
    assert "dave@example.org" in index_keys(store)


def test_a_same_size_hand_edit_in_place_is_seen(store: SubscriberStore) -> None:
    assert store.get("alice@example.org") is not None
    before = store.path.stat()
    data = store.path.read_bytes().replace(b"alice@example.org", b"alexa@example.org")
    with store.path.open("r+b") as handle:  # same inode, same size: only the mtime differs
        handle.write(data)
    settle(store.path, AN_HOUR // 2)
    assert (store.path.stat().st_ino, store.path.stat().st_size) == (before.st_ino, before.st_size)
    assert store.get("alice@example.org") is None
    assert store.add("alice@example.org") == "added"
    alexa = store.get("alexa@example.org")
    assert alexa is not None and alexa.name == "Alice"


def test_journaled_changes_made_after_the_index_apply(store: SubscriberStore) -> None:
    assert store.get("bob@example.org") is not None
    assert store.remove("bob@example.org")
    assert store.add("erin@example.org", name="Erin") == "added"
    assert store.unsubscribe("alice@example.org")
    for reader in (store, SubscriberStore(store.path)):  # this process, and a fresh one
        assert reader.get("bob@example.org") is None
        erin = reader.get("ERIN@example.org")
        assert erin is not None and erin.name == "Erin"
        alice = reader.get("alice@example.org")
        assert alice is not None and alice.status is SubscriberStatus.UNSUBSCRIBED
    with indexed(store) as db:
        (applied,) = db.execute("SELECT journal_applied FROM state").fetchone()
    assert applied == store.journal.size()  # the records are in the index now
    assert store.add("bob@example.org") == "added"
    with pytest.raises(SubscriberError, match="already on list"):
        store.add("erin@example.org")


def test_compaction_rewrites_the_csv_and_the_index_follows(store: SubscriberStore) -> None:
    assert store.add("erin@example.org") == "added"
    assert store.remove("alice@example.org")
    assert store.compact()
    settle(store.path)
    assert store.journal.size() == 0
    assert store.get("alice@example.org") is None
    with pytest.raises(SubscriberError, match="already on list"):
        store.add("erin@example.org")
    assert index_keys(store) == {"bob@example.org", "carol@example.org", "erin@example.org"}


def test_a_new_journal_after_a_compaction_that_changed_nothing_is_read_from_its_start(
    store: SubscriberStore,
) -> None:
    # An unsubscribe of a bounced address changes no row: folding the journal under the lock
    # (as import and bounces do) drops it and leaves the CSV as it was, so the index stays valid
    # but its journal records must go.
    store.record_unsubscribe("carol@example.org")
    assert store.get("carol@example.org") is not None
    csv_before = store.path.stat()
    with store.editing() as table:
        assert not table.changed
    assert store.journal.size() == 0
    assert (store.path.stat().st_ino, store.path.stat().st_mtime_ns) == (
        csv_before.st_ino,
        csv_before.st_mtime_ns,
    )
    # A new journal, maybe on the old one's inode, longer than the old one, written unseen.
    store.record_change("bob@example.org", name="Robert, who renamed himself at length")
    bob = store.get("bob@example.org")
    assert bob is not None and bob.name == "Robert, who renamed himself at length"
    carol = store.get("carol@example.org")
    assert carol is not None and carol.status is SubscriberStatus.BOUNCED
    assert store.remove("bob@example.org")
    assert store.get("bob@example.org") is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.write_bytes(b"not a database at all " * 100),
        lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
        lambda path: path.write_bytes(b""),
        lambda path: _sql(path, "UPDATE rows SET offset = offset + 3"),
        lambda path: _sql(path, "UPDATE state SET version = 99"),
        lambda path: _sql(path, "DROP TABLE pending"),
    ],
    ids=["garbage", "truncated", "empty", "wrong-offsets", "other-version", "missing-table"],
)
def test_a_damaged_index_is_never_trusted_and_is_rebuilt(store: SubscriberStore, damage: object) -> None:
    assert store.get("alice@example.org") is not None
    assert callable(damage)
    damage(store.index.path)
    for _ in range(2):
        alice = store.get("alice@example.org")
        assert alice is not None and (alice.email, alice.name) == ("alice@example.org", "Alice")
        assert store.get("nobody@example.org") is None
    assert index_keys(store) == {"alice@example.org", "bob@example.org", "carol@example.org"}


def _sql(path: Path, statement: str) -> None:
    with sqlite3.connect(path) as db:
        db.execute(statement)
    db.close()


def test_a_deleted_index_is_rebuilt(store: SubscriberStore) -> None:
    assert store.get("alice@example.org") is not None
    store.index.path.unlink()
    assert store.add("frank@example.org") == "added"
    with pytest.raises(SubscriberError, match="already on list"):
        store.add("alice@example.org")
    assert store.index.path.is_file()


def test_the_cli_adds_through_a_damaged_index_with_no_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("NEWSLETTER_SUBSCRIBERS_DIR", "NEWSLETTER_DEFAULT_LIST"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "subscribers").mkdir()
    write(tmp_path / "subscribers" / "news.csv", HEADER + ROWS)
    (tmp_path / "subscribers" / "news.index").write_bytes(os.urandom(4096))
    added = CliRunner().invoke(main, ["subscribers", "add", "gina@example.org", "--list", "news"])
    assert (added.exit_code, added.output) == (0, "Added gina@example.org to news.\n")
    again = CliRunner().invoke(main, ["subscribers", "add", "alice@example.org", "--list", "news"])
    assert again.exit_code == 1 and again.output.startswith(
        "Error: alice@example.org is already on list news"
    )


def test_concurrent_adds_through_the_index_keep_one_row_per_address(store: SubscriberStore) -> None:
    assert store.get("alice@example.org") is not None
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        mine = SubscriberStore(store.path)  # its own index connection, as another process has
        try:
            for i in range(10):
                mine.add(f"w{n}-{i}@example.org", on_conflict="skip")
                mine.add("shared@example.org", on_conflict="skip")
                assert mine.get(f"w{n}-{i}@example.org") is not None
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    keys = [s.key for s in store.read()]
    assert len(keys) == len(set(keys)) == 3 + 60 + 1
    assert store.compact()
    settle(store.path)
    assert store.get("shared@example.org") is not None
    assert len(index_keys(store)) == 64


def test_quoted_cells_spanning_lines_are_indexed_at_their_first_line(tmp_path: Path) -> None:
    store = SubscriberStore(
        write(
            tmp_path / "news.csv",
            HEADER
            + 'alice@example.org,"Alice\nof two lines",,active,,\n"bob@example.org","Bob, Jr",,active,,\n',
        )
    )
    bob = store.get("bob@example.org")
    assert bob is not None and bob.name == "Bob, Jr"
    alice = store.get("alice@example.org")
    assert alice is not None and alice.name == "Alice\nof two lines"
    assert index_keys(store) == {"alice@example.org", "bob@example.org"}


def test_a_list_the_store_cannot_read_gets_no_index_and_the_same_errors(tmp_path: Path) -> None:
    stray = SubscriberStore(
        write(tmp_path / "stray.csv", HEADER + 'alice@example.org,"Alice,,active,,\n' + ROWS)
    )
    assert stray.index.find("alice@example.org") is None
    latin = SubscriberStore(write(tmp_path / "latin.csv", HEADER + "zoe@example.org,Zo\xe9,,active,,\n"))
    latin.path.write_bytes(latin.path.read_bytes().replace("é".encode(), b"\xe9"))
    settle(latin.path)
    assert latin.index.find("zoe@example.org") is None
    with pytest.raises(SubscriberError, match="not UTF-8"):
        latin.add("new@example.org")
    assert not stray.index.path.exists() and not latin.index.path.exists()


def test_many_stores_of_one_list_build_its_index_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """serve makes a store per request: a burst of sign-ups on an unindexed list indexes it once."""
    rows = "".join(f"reader{i:06d}@example.org,Reader {i},,active,,\n" for i in range(20_000))
    path = write(tmp_path / "big.csv", HEADER + rows)
    builds: list[int] = []
    real_build = AddressIndex._build

    def counted(
        self: AddressIndex, handle: BinaryIO, layout: CsvLayout, signature: CsvSignature
    ) -> tuple[sqlite3.Connection, Path | None] | None:
        builds.append(1)
        return real_build(self, handle, layout, signature)

    monkeypatch.setattr(AddressIndex, "_build", counted)
    start = threading.Barrier(8)
    found: list[bool] = []

    def sign_up(i: int) -> None:
        store = SubscriberStore(path)
        start.wait()
        found.append(store.get(f"reader{i * 1000:06d}@example.org") is not None)

    threads = [threading.Thread(target=sign_up, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == [True] * 8
    assert len(builds) == 1
