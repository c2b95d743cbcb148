"""A rewrite of a list (a compaction, an edit under the lock) leaves a fresh address index beside it.

The first lookup after `newsletter send` used to rebuild the index (seconds on a big list). Each
test counts the builds a lookup pays for and compares the index on disk with one built from
scratch from the same bytes; the crash and race tests kill a real process or interleave a real
one at the named moment and check that no stale index is ever believed.
"""

from __future__ import annotations

import errno
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import pytest
from helpers.lists import (
    assert_fresh_index,
    count_builds,
    index_rows,
    index_stamp,
    rebuilt_rows,
    settle,
    write,
)

from newsletter.models import Subscriber
from newsletter.statuses import SubscriberStatus
from newsletter.subscribers import SubscriberStore, addressindex, csvfile, indexwriter, journal, lookup
from newsletter.subscribers import store as store_module
from newsletter.subscribers.addressindex import AddressIndex, signature_of
from newsletter.subscribers.csvfile import CsvLayout
from newsletter.subscribers.statuscache import RACY_NS

P = ParamSpec("P")
T = TypeVar("T")

HEADER = "email,name,keywords,status,subscribed_at,unsubscribed_at\n"


def big_list(path: Path, rows: int = 14_000) -> SubscriberStore:
    """A list over indexwriter.MIN_BYTES (unless a test lowers it), indexed the usual way."""
    body = "".join(
        f"reader{i:05d}@example.org,Reader {i},agents,active,2026-10-01T00:00:00+00:00,\n"
        for i in range(rows)
    )
    store = SubscriberStore(write(path, HEADER + body))
    assert store.path.stat().st_size >= indexwriter.MIN_BYTES
    assert store.get("reader00000@example.org") is not None and store.index.path.is_file()
    return store


def journal_some_changes(store: SubscriberStore, emails: list[str]) -> None:
    """Unsubscribe, rename, remove, add, and remove-then-add again, through the journal."""
    store.record_unsubscribe(emails[0])
    store.record_change(emails[1], name="Renamed, with a comma\nand a line break")
    store.remove(emails[2])
    store.remove(emails[3])
    store.record_add(emails[3], name="Came back")
    store.record_add("new.reader@example.org", name="Zoë Ünïcode 中文")
    store.record_add("Mixed.Case@Example.org", name="Mixed")
    store.record_change("mixed.case@example.org", keywords="robotics")


def as_read(store: SubscriberStore) -> dict[str, Subscriber]:
    """Every address as the store reads the whole list (CSV and journal) right now."""
    return {s.key: s for s in store.read()}


def assert_lookups(store: SubscriberStore, expected: dict[str, Subscriber], gone: list[str]) -> None:
    for key, subscriber in expected.items():
        assert store.get(key.upper() if key.isascii() else key) == subscriber, key
    for key in gone:
        assert store.get(key) is None, key


def test_compaction_writes_an_index_the_next_lookup_uses_without_a_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = big_list(tmp_path / "big.csv")
    emails = [f"reader{i:05d}@example.org" for i in (5, 6000, 7000, 12_999)]
    journal_some_changes(store, emails)
    expected = as_read(store)
    builds = count_builds(monkeypatch, store.index.path)
    assert store.compact()
    assert store.journal.size() == 0 and not list(tmp_path.glob(".*"))
    assert index_stamp(store.index.path) == (signature_of(store.path), 0, b"", 0)
    assert stat.S_IMODE(store.index.path.stat().st_mode) == 0o600
    assert_fresh_index(store, tmp_path / "scratch")
    changed = [*emails, "new.reader@example.org", "mixed.case@example.org"]
    sample = {k: v for i, (k, v) in enumerate(expected.items()) if k in changed or i % 500 == 0}
    assert_lookups(SubscriberStore(store.path), sample, gone=[emails[2], "nobody@example.org"])
    assert expected[emails[0]].status is SubscriberStatus.UNSUBSCRIBED
    assert expected[emails[3]].name == "Came back"
    assert builds == []
    assert store.add("reader12345@example.org", on_conflict="skip") == "skipped"
    assert store.add(emails[2]) == "added"
    assert builds == []


def test_changes_journaled_after_the_compaction_apply_on_top_of_its_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = big_list(tmp_path / "big.csv")
    store.remove("reader00001@example.org")
    builds = count_builds(monkeypatch, store.index.path)
    store.compact()
    store.remove("reader00002@example.org")
    store.record_add("reader00001@example.org", name="Again")
    for reader in (store, SubscriberStore(store.path)):
        assert reader.get("reader00002@example.org") is None
        again = reader.get("reader00001@example.org")
        assert again is not None and again.name == "Again"
    assert builds == []
    _, journal_inode, _, applied = index_stamp(store.index.path)
    assert (journal_inode, applied) == (store.journal.path.stat().st_ino, store.journal.size())


def test_a_rewrite_under_the_lock_writes_the_index_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = big_list(tmp_path / "big.csv")
    builds = count_builds(monkeypatch, store.index.path)
    with store.editing() as table:  # as an import or a bounce run does
        table.delete(table.find("reader00010@example.org") or 0)
        table.append(["late@example.org", "Late"], "late@example.org")
    assert_fresh_index(store, tmp_path / "scratch")
    assert store.get("reader00010@example.org") is None
    late = store.get("late@example.org")
    assert late is not None and late.name == "Late"
    assert builds == []


def test_a_small_list_is_left_to_the_usual_rebuild(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SubscriberStore(write(tmp_path / "news.csv", HEADER + "alice@example.org,Alice,,active,,\n"))
    assert store.get("alice@example.org") is not None
    before = index_stamp(store.index.path)
    store.record_add("bob@example.org")
    store.compact()
    assert index_stamp(store.index.path) == before  # the old one: it no longer matches
    builds = count_builds(monkeypatch, store.index.path)
    settle(store.path)
    assert store.get("bob@example.org") is not None
    assert len(builds) == 1


LAYOUTS = {
    "bom": "\ufeff" + HEADER + "alice@example.org,Alice,,active,,\nbob@example.org,Bob,,active,,\n",
    "crlf": (HEADER + "alice@example.org,Alice,,active,,\nbob@example.org,Bob,,active,,\n").replace(
        "\n", "\r\n"
    ),
    "quoted-multiline": HEADER
    + 'alice@example.org,"Alice\nof two lines",,active,,\n'
    + '"bob@example.org","Bob, ""Jr""\r\nthe second",,active,,\n'
    + 'carol@example.org,"Carol\rwith a lone CR",,active,,\n',
    "crlf-multiline": (
        HEADER + 'alice@example.org,"Alice\nof two lines",,active,,\nbob@example.org,Bob,,active,,\n'
    )
    .replace("\n", "\r\n")
    .replace("Alice\r\nof", "Alice\nof"),
    "semicolon": "e-mail;name;keywords\nalice@example.org;Alice, the first;a,b\nbob@example.org;Bob;c\n",
    "tab": "Name\tEmail Address\tStatus\nAlice\talice@example.org\tactive\nBob\tbob@example.org\t\n",
    "odd-rows": "name,email,status\n"
    + "Alice,alice@example.org,active\n"
    + ",,\n\n"  # blank rows
    + "Short\n"  # a short row with no address
    + "Bob,  Bob@Example.org  ,active\n"
    + "Bob again,bob@example.org,bounced\n"  # a duplicate: the first row is the one
    + "Zoë,zoe@example.org,active,extra,cells\n"
    + '"Quote ""in"" name","carol@example.org",active\n',
}


@pytest.mark.parametrize("text", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_every_layout_gets_an_index_equal_to_a_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setattr(indexwriter, "MIN_BYTES", 0)
    store = SubscriberStore(write(tmp_path / "news.csv", text))
    assert store.get("alice@example.org") is not None
    journal_some_changes(
        store, ["alice@example.org", "bob@example.org", "zoe@example.org", "carol@example.org"]
    )
    expected = as_read(store)
    builds = count_builds(monkeypatch, store.index.path)
    store.compact()
    assert_fresh_index(store, tmp_path / "scratch")
    assert_lookups(store, expected, gone=["zoe@example.org", "nobody@example.org"])
    assert builds == []


def test_a_header_that_would_read_back_as_another_dialect_gets_no_index_from_the_rewrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read with ';' (',' gives no email column), but written back unquoted, as render did before
    # it quoted such headers, it reads with ','. Should a writer ever do that again, the index
    # written with it is not believed.
    monkeypatch.setattr(csvfile, "header_reads_back", lambda layout: True)
    monkeypatch.setattr(indexwriter, "MIN_BYTES", 0)
    store = SubscriberStore(
        write(tmp_path / "news.csv", 'email;"x,email"\na@example.org;1\nb@example.org;2\n')
    )
    assert store.get("a@example.org") is not None
    old = index_stamp(store.index.path)
    store.remove("b@example.org")
    store.compact()
    assert index_stamp(store.index.path) == old and not list(tmp_path.glob(".*"))
    builds = count_builds(monkeypatch, store.index.path)
    settle(store.path)
    expected = as_read(store)
    assert_lookups(store, expected, gone=["b@example.org"])
    assert len(builds) == 1


def test_a_header_written_quoted_to_keep_its_dialect_gets_its_index_from_the_rewrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexwriter, "MIN_BYTES", 0)
    text = 'émoji;email;"x,email"\n1;a@example.org;2\n3;b@example.org;4\n'
    store = SubscriberStore(write(tmp_path / "news.csv", text))
    assert store.get("a@example.org") is not None
    store.remove("b@example.org")
    builds = count_builds(monkeypatch, store.index.path)
    store.compact()
    assert store.path.read_text(encoding="utf-8").startswith('"émoji";"email";"x,email"\n')
    assert_fresh_index(store, tmp_path / "scratch")
    assert_lookups(store, as_read(store), gone=["b@example.org"])
    assert builds == []


def test_a_failing_index_write_still_compacts_the_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = big_list(tmp_path / "big.csv")
    store.remove("reader00003@example.org")
    before = index_stamp(store.index.path)
    monkeypatch.setattr(indexwriter, "INSERT_ROW", "INSERT INTO nowhere VALUES (?, ?)")
    assert store.compact()
    assert store.journal.size() == 0 and not list(tmp_path.glob(".*"))
    assert index_stamp(store.index.path) == before  # nothing half-written was put in its place
    builds = count_builds(monkeypatch, store.index.path)
    assert store.get("reader00003@example.org") is None
    assert store.get("reader00004@example.org") is not None
    assert builds


def test_no_room_for_the_index_file_still_compacts_the_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexwriter, "MIN_BYTES", 0)
    store = big_list(tmp_path / "big.csv", rows=200)
    store.remove("reader00003@example.org")
    real_mkstemp = tempfile.mkstemp

    def full_for_the_index(*args: Any, **kwargs: Any) -> tuple[int, str]:
        if kwargs.get("suffix") == addressindex.WRITING:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", full_for_the_index)
    assert store.compact()
    assert store.journal.size() == 0 and not list(tmp_path.glob(".*"))
    assert store.get("reader00003@example.org") is None


def test_a_hand_edit_right_after_a_compaction_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = big_list(tmp_path / "big.csv")
    store.remove("reader00003@example.org")
    store.compact()
    # The CSV was put in place no sooner than RACY_NS after its last write: an edit from now on
    # cannot land in the same mtime tick and go unseen by the index's stamp.
    assert time.time_ns() - store.path.stat().st_mtime_ns >= RACY_NS
    before = store.path.stat()
    data = store.path.read_bytes().replace(b"reader00004@", b"readerXXXX4@")
    with store.path.open("r+b") as handle:  # same inode, same size: only the mtime differs
        handle.write(data)
    assert (store.path.stat().st_ino, store.path.stat().st_size) == (before.st_ino, before.st_size)
    builds = count_builds(monkeypatch, store.index.path)
    assert store.get("reader00004@example.org") is None
    assert store.get("readerXXXX4@example.org") is not None
    assert builds  # the edit was noticed, and the index built again


def test_an_edit_before_the_index_is_installed_keeps_the_index_of_the_edited_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexwriter, "MIN_BYTES", 0)
    store = big_list(tmp_path / "big.csv", rows=2000)
    store.remove("reader00003@example.org")
    real_discard = journal.ChangeJournal.discard

    def edit_then_look_up(self: journal.ChangeJournal, upto: int) -> None:
        real_discard(self, upto)  # the new CSV is in place, its index not yet
        with store.path.open("a", encoding="utf-8") as out:
            out.write("handmade@example.org,Handmade,,active,,\n")
        settle(store.path)
        assert SubscriberStore(store.path).get("handmade@example.org") is not None  # indexes the edit

    monkeypatch.setattr(journal.ChangeJournal, "discard", edit_then_look_up)
    store.compact()
    assert index_stamp(store.index.path)[0] == signature_of(store.path)  # not the compaction's
    builds = count_builds(monkeypatch, store.index.path)
    assert store.get("handmade@example.org") is not None
    assert store.get("reader00003@example.org") is None
    assert builds == [] and not list(tmp_path.glob(".*"))


def small_list_with_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[SubscriberStore, dict[str, Subscriber]]:
    """2,000 rows indexed by rewrites as a big list is, a removal and an unsubscribe pending."""
    monkeypatch.setattr(indexwriter, "MIN_BYTES", 0)
    store = big_list(tmp_path / "big.csv", rows=2000)
    store.remove("reader00003@example.org")
    store.record_unsubscribe("reader00004@example.org")
    return store, as_read(store)


KILL = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from newsletter.subscribers import SubscriberStore, addressindex, csvfile, indexwriter, journal

    def die(*args, **kwargs):
        os._exit(9)  # as SIGKILL: no cleanup, no finally

    owner, name = {
        "before-the-csv-is-renamed": (indexwriter.IndexWriter, "finish"),
        "before-the-journal-is-cut": (journal.ChangeJournal, "discard"),
        "before-the-index-is-installed": (addressindex.AddressIndex, "install_written"),
    }[sys.argv[2]]
    setattr(owner, name, die)
    indexwriter.MIN_BYTES = 0  # as in the test: a small list stands for a big one
    SubscriberStore(Path(sys.argv[1])).compact()
    """
)


@pytest.mark.parametrize(
    "moment", ["before-the-csv-is-renamed", "before-the-journal-is-cut", "before-the-index-is-installed"]
)
def test_a_compaction_killed_at_any_moment_leaves_no_index_that_is_believed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moment: str
) -> None:
    store, expected = small_list_with_changes(tmp_path, monkeypatch)
    killed = subprocess.run([sys.executable, "-c", KILL, str(store.path), moment], check=False)
    assert killed.returncode == 9
    assert len(list(tmp_path.glob(f".big.index.*{addressindex.WRITING}"))) == 1  # left as a kill leaves it
    builds = count_builds(monkeypatch, store.index.path)
    assert as_read(store) == expected
    sample = {
        k: v for i, (k, v) in enumerate(expected.items()) if i % 100 == 0 or k.startswith("reader00004")
    }
    assert_lookups(store, sample, gone=["reader00003@example.org"])
    assert len(builds) == (0 if moment == "before-the-csv-is-renamed" else 1)
    assert_fresh_index(store, tmp_path / "scratch")
    store.compact()  # the next rewrite under the lock clears what the killed one left
    assert list(tmp_path.glob(".*")) == []


COMPACT = (
    "import sys; from pathlib import Path; from newsletter.subscribers import SubscriberStore, indexwriter; "
    "indexwriter.MIN_BYTES = 0; SubscriberStore(Path(sys.argv[1])).compact()"
)


def compact_elsewhere(path: Path) -> None:
    """A compaction by another process (`newsletter send` starting), run to its end now."""
    subprocess.run([sys.executable, "-c", COMPACT, str(path)], check=True)


@pytest.mark.parametrize(
    "moment", ["before-the-index-is-opened", "before-the-journal-is-read", "during-a-build"]
)
def test_a_compaction_by_another_process_during_a_lookup_is_looked_up_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moment: str
) -> None:
    store, expected = small_list_with_changes(tmp_path, monkeypatch)
    if moment == "during-a-build":
        store.index.discard()
    fired: list[str] = []

    def once() -> None:
        if not fired:
            fired.append(moment)
            compact_elsewhere(store.path)

    def with_compaction_first(real: Callable[P, T]) -> Callable[P, T]:
        """`real`, with the compaction elsewhere run just before its first call."""

        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            once()
            return real(*args, **kwargs)

        return wrapper

    if moment == "before-the-index-is-opened":
        monkeypatch.setattr(addressindex, "layout_of", with_compaction_first(addressindex.layout_of))
    elif moment == "before-the-journal-is-read":
        monkeypatch.setattr(AddressIndex, "_journal_tail", with_compaction_first(AddressIndex._journal_tail))
    else:
        monkeypatch.setattr(addressindex, "_entries", with_compaction_first(addressindex._entries))
    builds = count_builds(monkeypatch, store.index.path)
    assert store.get("reader00003@example.org") is None  # removed in the journal the compaction cut
    assert fired == [moment]
    unsubscribed = store.get("reader00004@example.org")
    assert unsubscribed == expected["reader00004@example.org"]
    assert unsubscribed is not None and unsubscribed.status is SubscriberStatus.UNSUBSCRIBED
    # The index the compaction wrote is the one in place and used: the lookup that began on the
    # old file built nothing for it (or, caught mid-build, did not put its build over the new one).
    assert len(builds) == (1 if moment == "during-a-build" else 0)
    assert index_stamp(store.index.path)[0] == signature_of(store.path)
    assert index_rows(store.index.path) == rebuilt_rows(store.path, tmp_path / "scratch")


def test_a_compaction_by_another_process_during_a_lookup_without_an_index_is_not_missed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexwriter, "MIN_BYTES", 0)
    store = big_list(tmp_path / "big.csv", rows=2000)
    store.remove("reader00003@example.org")
    monkeypatch.setattr(AddressIndex, "find", lambda self, key: None)  # no index: a byte search
    real_find_row = lookup.find_row

    def then_compact(path: Path, layout: CsvLayout, email: str) -> list[str] | None:
        row = real_find_row(path, layout, email)
        compact_elsewhere(store.path)
        return row

    monkeypatch.setattr(store_module, "find_row", then_compact)
    assert store.get("reader00003@example.org") is None
