"""The change journal: O(1) durable changes every reader sees, folded in without clobbering hand edits."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from multiprocessing.context import SpawnProcess
from pathlib import Path

import pytest

from newsletter.subscribers import SubscriberStore, overlay
from newsletter.subscribers.csvfile import CsvLayout, Rows
from newsletter.subscribers.journal import ChangeJournal, Snapshot

HEADER = "email,name,keywords,status,subscribed_at,unsubscribed_at,team\n"
ROWS = (
    "alice@example.org,Alice,diffusion,active,2026-11-01T10:00:00+00:00,,red\n"
    "Bob@Example.org,Bob,,active,,,blue\n"
    "carol@example.org,Carol,robotics,bounced,,,green\n"
)


@pytest.fixture
def store(tmp_path: Path) -> SubscriberStore:
    path = tmp_path / "news.csv"
    path.write_text(HEADER + ROWS, encoding="utf-8", newline="")
    return SubscriberStore(path)


def statuses(store: SubscriberStore) -> dict[str, str]:
    return {s.key: s.status for s in store.iter_subscribers()}


def test_a_change_is_one_journal_record_and_the_csv_is_not_rewritten(store: SubscriberStore) -> None:
    before = store.path.stat()
    store.record_unsubscribe("BOB@example.org")
    assert store.path.stat().st_ino == before.st_ino and store.path.read_text() == HEADER + ROWS
    assert len(store.journal.path.read_bytes().splitlines()) == 1
    assert statuses(store)["bob@example.org"] == "unsubscribed"
    assert not store.is_active("bob@example.org")
    bob = store.get("bob@example.org")
    assert bob is not None and bob.status == "unsubscribed" and bob.unsubscribed_at is not None


def test_every_reader_applies_adds_preferences_and_removals(store: SubscriberStore) -> None:
    store.record_add("dan@example.org", name="Dan", frequency="daily")
    store.record_change("alice@example.org", keywords="music; robots", pause_until="2026-12-24")
    store.remove("carol@example.org")
    rows = {s.key: s for s in store.read()}
    assert sorted(rows) == ["alice@example.org", "bob@example.org", "dan@example.org"]
    assert rows["dan@example.org"].is_active and rows["dan@example.org"].frequency == "daily"
    assert rows["alice@example.org"].keywords == ["music", "robots"]
    assert str(rows["alice@example.org"].pause_until) == "2026-12-24"
    assert rows["alice@example.org"].extra == {"team": "red"}
    assert store.header()[-2:] == ["frequency", "pause_until"]


def test_compaction_writes_the_journal_into_the_csv_and_empties_it(store: SubscriberStore) -> None:
    store.record_unsubscribe("bob@example.org", when=None)
    store.add("dan@example.org", name="Dan")
    assert store.compact() is True
    assert not store.journal.path.exists()
    lines = store.path.read_text().splitlines()
    assert lines[2].startswith("Bob@Example.org,Bob,,unsubscribed,,20") and lines[2].endswith(",blue")
    assert lines[4].startswith("dan@example.org,Dan,,active,20")
    assert lines[1] == ROWS.splitlines()[0]


def test_a_hand_edit_made_while_changes_are_pending_survives_compaction(store: SubscriberStore) -> None:
    store.record_unsubscribe("alice@example.org")  # pending: the CSV still says active
    store.record_unsubscribe("bob@example.org")
    store.record_change("carol@example.org", expect={"name": ["Carol"]}, name="Caroline")
    # Someone opens the CSV, which does not show the pending changes, and edits it by hand:
    # Bob's row is marked bounced, Alice's team and Carol's name are changed, a row is added.
    edited = (
        HEADER
        + "alice@example.org,Alice,diffusion,active,2026-11-01T10:00:00+00:00,,purple\n"
        + "Bob@Example.org,Bob,,bounced,,,blue\n"
        + "carol@example.org,Carrie,robotics,bounced,,,green\n"
        + "erin@example.org,Erin,,active,,,red\n"
    )
    store.path.write_text(edited)
    seen = {s.key: (s.name, s.status, s.extra["team"]) for s in store.read()}
    store.compact()
    after = {s.key: (s.name, s.status, s.extra["team"]) for s in store.read()}
    assert (
        seen
        == after
        == {
            "alice@example.org": ("Alice", "unsubscribed", "purple"),  # both the change and the edit
            "bob@example.org": ("Bob", "bounced", "blue"),  # the later hand edit wins
            "carol@example.org": ("Carrie", "bounced", "green"),  # the person's name, not the stale change
            "erin@example.org": ("Erin", "active", "red"),
        }
    )


def test_a_torn_last_record_is_ignored_with_a_warning_and_the_next_one_is_whole(
    store: SubscriberStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.record_unsubscribe("alice@example.org")
    with store.journal.path.open("ab") as handle:
        handle.write(b'{"t":1,"op":"set","email":"bob@exa')  # a crash in the middle of a write
    os.utime(store.journal.path, (1, 1))
    with caplog.at_level(logging.WARNING):
        assert statuses(store)["bob@example.org"] == "active"
    assert "incomplete last record" in caplog.text
    store.record_change("carol@example.org", name="Caroline")
    assert {s.key: s.name for s in store.read()}["carol@example.org"] == "Caroline"
    assert statuses(store)["alice@example.org"] == "unsubscribed"


def test_adding_an_address_already_there_or_changing_one_that_is_not_does_nothing(
    store: SubscriberStore,
) -> None:
    store.record_add("ALICE@example.org", name="Impostor")
    store.record_change("nobody@example.org", status="bounced")
    store.compact()
    assert store.path.read_text() == HEADER + ROWS


def test_an_unsubscribe_does_not_turn_a_bounce_into_an_unsubscribe(store: SubscriberStore) -> None:
    store.record_unsubscribe("carol@example.org")
    assert statuses(store)["carol@example.org"] == "bounced"


def test_a_running_send_sees_journaled_changes_without_rereading_the_list(store: SubscriberStore) -> None:
    version = store.version()
    assert store.is_active("alice@example.org")
    other = SubscriberStore(store.path)  # the web server, say
    other.record_unsubscribe("alice@example.org")
    assert not store.is_version(version)
    assert not store.is_active("alice@example.org")
    other.record_add("zoe@example.org")
    other.record_unsubscribe("bob@example.org")
    assert store.is_active("zoe@example.org") and not store.is_active("bob@example.org")
    other.compact()
    assert not store.is_active("alice@example.org") and store.is_active("zoe@example.org")


def _append_many(path: str, prefix: str, count: int) -> None:
    store = SubscriberStore(Path(path))
    for i in range(count):
        store.record_add(f"{prefix}{i}@example.org", name=f"{prefix}-{i}" + "x" * (i % 300))


def test_concurrent_appends_and_compactions_lose_and_tear_nothing(store: SubscriberStore) -> None:
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=_append_many, args=(str(store.path), f"p{n}", 150)) for n in range(3)]
    threads = [threading.Thread(target=_append_many, args=(str(store.path), f"t{n}", 150)) for n in range(3)]
    runners: list[SpawnProcess | threading.Thread] = [*workers, *threads]
    for runner in runners:
        runner.start()
    compactions = 0
    while any(w.is_alive() for w in workers) or any(t.is_alive() for t in threads):
        compactions += store.compact()
    for worker in workers:
        worker.join()
        assert worker.exitcode == 0
    for thread in threads:
        thread.join()
    names = {s.key: s.name for s in store.read()}
    assert len(names) == 3 + 6 * 150 and compactions > 0
    assert all(names[f"p1{i}@example.org"].startswith(f"p1-{i}x") or i % 300 == 0 for i in range(150))
    store.compact()
    assert not store.journal.path.exists() and len(store.read()) == 3 + 6 * 150


def test_a_compaction_interrupted_before_the_journal_is_emptied_applies_nothing_twice(
    store: SubscriberStore,
) -> None:
    store.record_unsubscribe("alice@example.org")
    store.record_add("dan@example.org")
    journal = store.journal.path.read_bytes()
    store.compact()
    store.journal.path.write_bytes(journal)  # as if we crashed after writing the CSV
    compacted = store.path.read_text()
    store.compact()
    assert store.path.read_text() == compacted
    assert [s.key for s in store.read()].count("dan@example.org") == 1


def test_the_journal_lives_beside_the_list() -> None:
    assert ChangeJournal.beside(Path("/x/subscribers/news.csv")).path == Path("/x/subscribers/news.journal")


def test_a_streamed_compaction_writes_what_the_whole_table_fold_writes(tmp_path: Path) -> None:
    """compact streams rows (a send runs it before reading 100,000 rows): same bytes as the table."""
    streamed = SubscriberStore(tmp_path / "streamed" / "news.csv")
    streamed.path.parent.mkdir()
    duplicate = "alice@example.org,Alice again,,active,,,red\n"
    streamed.path.write_text(HEADER + ROWS + duplicate, encoding="utf-8", newline="")
    streamed.record_add("dan@example.org", name="Dan", frequency="daily")
    streamed.record_change("alice@example.org", keywords="music; robots", pause_until="2026-12-24")
    streamed.record_unsubscribe("bob@example.org")
    streamed.remove("carol@example.org")
    streamed.record_add("erin@example.org", name="Erin")
    streamed.remove("erin@example.org")
    (tmp_path / "table").mkdir()
    for source in (streamed.path, streamed.journal.path):  # the same list and journal, byte for byte
        (tmp_path / "table" / source.name).write_bytes(source.read_bytes())
    table = SubscriberStore(tmp_path / "table" / "news.csv")
    assert streamed.compact()
    with table.editing():
        pass
    assert not streamed.journal.size() and not table.journal.size()
    written = streamed.path.read_bytes()
    assert written == table.path.read_bytes()
    assert b"dan@example.org" in written and b"carol@" not in written and b"erin@" not in written


def save_as_an_editor_does(path: Path, extra_row: str) -> None:
    """Write a new copy beside the list and rename it over (vim, LibreOffice): no lock taken."""
    copy = path.with_name(path.name + ".editor")
    copy.write_text(path.read_text(encoding="utf-8") + extra_row, encoding="utf-8", newline="")
    os.replace(copy, path)


def test_a_hand_edit_saved_during_a_compaction_is_kept_with_the_pending_change(
    store: SubscriberStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter.subscribers import store as store_module

    store.record_unsubscribe("alice@example.org")
    real_rows_with = overlay.rows_with
    saves: list[str] = []

    def editor_saves_once_while_the_rows_stream(path: Path, snapshot: Snapshot) -> tuple[CsvLayout, Rows]:
        found = real_rows_with(path, snapshot)
        if not saves:
            save_as_an_editor_does(store.path, "dave@example.org,Dave,,active,,,\n")
            saves.append("dave")
        return found

    monkeypatch.setattr(store_module, "rows_with", editor_saves_once_while_the_rows_stream)
    assert store.compact() is True  # tried again on the saved file

    text = store.path.read_text(encoding="utf-8")
    assert "dave@example.org,Dave" in text  # the hand edit
    assert statuses(store)["alice@example.org"] == "unsubscribed"
    assert "alice@example.org,Alice,diffusion,unsubscribed" in text  # folded in on the second try
    assert store.journal.size() == 0


def test_an_editor_saving_all_the_time_leaves_the_journal_for_next_time(
    store: SubscriberStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from newsletter.subscribers import store as store_module

    store.record_unsubscribe("alice@example.org")
    real_rows_with = overlay.rows_with
    saved: list[int] = []

    def editor_saves_every_time(path: Path, snapshot: Snapshot) -> tuple[CsvLayout, Rows]:
        found = real_rows_with(path, snapshot)
        saved.append(1)
        save_as_an_editor_does(store.path, f"editor{len(saved)}@example.org,,,active,,,\n")
        return found

    monkeypatch.setattr(store_module, "rows_with", editor_saves_every_time)
    with caplog.at_level(logging.WARNING):
        assert store.compact() is False

    assert "was changed by another program while it was being rewritten" in caplog.text
    text = store.path.read_text(encoding="utf-8")
    assert all(f"editor{n}@example.org" in text for n in range(1, len(saved) + 1))
    assert store.journal.size() > 0  # the change waits in the journal, and readers see it
    monkeypatch.undo()
    assert statuses(store)["alice@example.org"] == "unsubscribed"
    assert not list(store.path.parent.glob(".*.tmp"))


def test_a_hand_edit_during_a_locked_rewrite_is_an_error_that_loses_nothing(store: SubscriberStore) -> None:
    from newsletter.subscribers.store import ListEditedError

    store.record_unsubscribe("alice@example.org")
    with pytest.raises(ListEditedError) as raised, store.editing() as table:
        save_as_an_editor_does(store.path, "dave@example.org,Dave,,active,,,\n")
        table.changed = True

    assert "run the command again" in raised.value.message and str(store.path) in raised.value.message
    assert "dave@example.org,Dave" in store.path.read_text(encoding="utf-8")
    assert statuses(store)["alice@example.org"] == "unsubscribed"
    assert store.journal.size() > 0
