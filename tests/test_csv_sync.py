"""subscribers/NAME.csv stays the list people edit: a hand edit is merged into the database by the
next command (three-way, against the copy last synced), what the database learned is written
back at safe points, an unsubscribe is never undone by the file, and a damaged file is one error
that applies nothing. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from helpers.lists import store_of, write
from sqlalchemy import event, inspect, select, update

from newsletter.cli import main
from newsletter.errors import SubscriberError
from newsletter.statuses import DeliveryStatus, SubscriberStatus
from newsletter.store import csvstate, database
from newsletter.store.deliveries import Attempt, DeliveryLedger, DeliveryResult
from newsletter.store.schema import lists, subscribers, suppressions
from newsletter.store.sendqueue import SendQueue
from newsletter.store.subscriberrows import now_text
from newsletter.store.subscribers import SubscriberStore
from newsletter.subscribers import csvsync, writeback
from newsletter.subscribers.csvfile import CsvLayout
from newsletter.subscribers.rows import new_subscriber
from newsletter.subscribers.writeback import write_back

HEADER = "email,name,keywords,status,subscribed_at,unsubscribed_at"
ROWS = [
    "ada@example.org,Ada,math,active,2026-01-01T00:00:00+00:00,",
    "bob@example.org,Bob,robots,active,2026-01-02T00:00:00+00:00,",
    "cy@example.org,Cy,music,unsubscribed,2026-01-03T00:00:00+00:00,2026-02-01T00:00:00+00:00",
    "di@example.org,Di,,active,2026-01-04T00:00:00+00:00,",
]


@pytest.fixture
def path(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    listed = write(tmp_path / "subscribers" / "news.csv", "\n".join([HEADER, *ROWS]) + "\n")
    store_of(listed)  # the first command imports it
    return listed


def edit(path: Path, *changes: tuple[str, str | None], append: str = "") -> None:
    """Replace (or with None, delete) the line starting with each address, as an editor would."""
    lines = path.read_text().splitlines()
    for start, new in changes:
        at = next(i for i, line in enumerate(lines) if line.startswith(start))
        if new is None:
            del lines[at]
        else:
            lines[at] = new
    path.write_text("\n".join(lines) + "\n" + append)


def status(store: SubscriberStore, email: str) -> str:
    found = store.get(email)
    return "gone" if found is None else found.status.value


def test_a_hand_edit_is_seen_by_the_next_command(path: Path) -> None:
    edit(path, ("bob@", "bob@example.org,Robert,robots; drones,active,2026-01-02T00:00:00+00:00,"))
    bob = store_of(path).get("bob@example.org")
    assert bob is not None and (bob.name, bob.keywords) == ("Robert", ["robots", "drones"])


def test_a_change_in_the_database_survives_an_edit_of_another_row(path: Path) -> None:
    store_of(path).update("ada@example.org", {"name": "Ada L."})
    edit(path, ("di@", "di@example.org,Diana,,active,2026-01-04T00:00:00+00:00,"))
    store = store_of(path)
    assert [(s.email, s.name) for s in store.read()][::3] == [
        ("ada@example.org", "Ada L."),
        ("di@example.org", "Diana"),
    ]


def test_both_sides_changing_a_row_merge_field_by_field_the_database_winning_on_status(path: Path) -> None:
    store_of(path).unsubscribe("bob@example.org")  # the reader's one-click, in the database
    edit(path, ("bob@", "bob@example.org,Robert,robots,active,2026-01-02T00:00:00+00:00,"))  # a rename
    bob = store_of(path).get("bob@example.org")
    assert bob is not None and (bob.name, bob.status) == ("Robert", "unsubscribed")


def test_setting_an_unsubscribed_row_active_in_the_file_is_reported_and_ignored(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    edit(path, ("cy@", "cy@example.org,Cy,music,active,2026-01-03T00:00:00+00:00,"))
    with caplog.at_level(logging.WARNING):
        store = store_of(path)
    assert status(store, "cy@example.org") == "unsubscribed"
    assert f"{path}:4: cy@example.org is unsubscribed: the file's 'active' is ignored" in caplog.text
    write_back(store, path)
    assert path.read_text().splitlines()[3].startswith("cy@example.org,Cy,music,unsubscribed,")


def test_adding_back_an_address_that_left_is_reported_and_ignored(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = store_of(path)
    store.remove("cy@example.org")
    write_back(store, path)  # the line goes
    edit(path, append="cy@example.org,Cy,music,active,,\n")
    with caplog.at_level(logging.WARNING):
        assert status(store_of(path), "cy@example.org") == "gone"
    assert (
        f"{path}:5: cy@example.org unsubscribed on 2026-02-01: adding it again in the file is ignored"
        in caplog.text
    )
    assert store.add(new_subscriber("cy@example.org"), resubscribe=True) == "added"  # the one way back


def test_a_line_deleted_from_the_file_leaves_the_list_and_stays_barred(path: Path) -> None:
    edit(path, ("bob@", None), ("cy@", None))
    store = store_of(path)
    assert [s.key for s in store.read()] == ["ada@example.org", "di@example.org"]
    assert store.suppression("cy@example.org") is not None and store.suppression("bob@example.org") is None


def test_what_the_database_learned_is_written_back_without_touching_other_rows(path: Path) -> None:
    store = store_of(path)
    store.set_status("ada@example.org", SubscriberStatus.BOUNCED)
    store.add(new_subscriber("eve@example.org", name="Eve"))
    write_back(store, path)
    lines = path.read_text().splitlines()
    assert lines[1] == "ada@example.org,Ada,math,bounced,2026-01-01T00:00:00+00:00,"
    assert lines[2:5] == ROWS[1:]
    assert lines[5].startswith("eve@example.org,Eve,,active,")


def test_an_edit_saved_while_the_list_is_written_back_is_merged_not_overwritten(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_of(path)
    store.unsubscribe("ada@example.org")
    rows, edited = writeback._rows, list[bool]()

    def editor_saves_meanwhile(store: SubscriberStore, layout: CsvLayout) -> Iterator[list[str]]:
        if not edited:
            edited.append(True)
            edit(path, ("di@", "di@example.org,Diana,,active,2026-01-04T00:00:00+00:00,"))
        return rows(store, layout)

    monkeypatch.setattr(writeback, "_rows", editor_saves_meanwhile)
    assert write_back(store, path) is True
    text = path.read_text()
    assert "di@example.org,Diana," in text and "ada@example.org,Ada,math,unsubscribed," in text
    diana = store.get("di@example.org")
    assert diana is not None and diana.name == "Diana"


DAMAGE = [
    ('ada@example.org,"Ada,math,active,,', 2, "never closed"),  # a stray quote closed later
    ('bob@example.org,Bob,"robots,active,,', 3, "never closed"),  # one never closed
    ("bob@example.org,Bob,robots,active,,,extra", 3, "7 fields but the header has 6"),
    ("bob@example.org,Bob,robots,active,", 3, "5 fields but the header has 6"),
    ("bob@example.org,Bob,robots,paused,,", 3, "status 'paused'"),
    ("bob@,Bob,robots,active,,", 3, "not a valid address"),
    ("ada@example.org,Ada again,math,active,,", 3, "duplicate of 'ada@example.org'"),
]


def quiet(store: SubscriberStore, at: str = "2026-01-01T00:00:00.000000+00:00") -> None:
    """Every row last changed at `at` (long ago), as a list is between sends."""
    with store.db.write() as conn:
        conn.execute(update(subscribers).where(subscribers.c.list == store.name).values(changed_at=at))


def deliver(store: SubscriberStore, database_url: str, email: str, issue: str) -> None:
    """A real send's record that `email` got `issue`: a sender queues, claims and records it."""
    queue = SendQueue(store.db, issue, store.name, "smtp")
    queue.register()
    queue.fan_out([email])
    assert [claim.email for claim in queue.claim(1)] == [email]
    sent = DeliveryLedger(store.db, issue, store.name, "smtp", owner=queue.owner)
    sent.record(attempts=[Attempt(email, f"<{issue}@example.org>", ())])
    sent.record(outcomes=[DeliveryResult(email, DeliveryStatus.DELIVERED, "250 OK")])
    queue.finish(completed=True)


def test_a_write_back_with_nothing_changed_leaves_the_file_alone(path: Path) -> None:
    store = store_of(path)
    assert write_back(store, path) is True  # what the database holds was never written from it
    quiet(store)
    before = path.stat()
    assert write_back(store, path) is False
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_size,
    )


CHANGES: dict[str, Callable[[SubscriberStore, str], object]] = {
    "a one-click unsubscribe": lambda store, _: store.unsubscribe("ada@example.org"),
    "a new reader": lambda store, _: store.add(new_subscriber("eve@example.org")),
    "a reader removed": lambda store, _: store.remove("bob@example.org"),
    "a delivery": lambda store, url: deliver(store, url, "ada@example.org", "2026-W49"),
}


@pytest.mark.parametrize("change", CHANGES)
def test_after_a_quiet_write_back_a_change_the_file_shows_is_written(
    path: Path, database_url: str, change: str
) -> None:
    store = store_of(path)
    write_back(store, path)
    quiet(store)
    assert write_back(store, path) is False
    CHANGES[change](store, database_url)
    assert write_back(store, path) is True
    lines = dict((line.split(",")[0], line) for line in path.read_text().splitlines())
    shown = {
        "a one-click unsubscribe": ",unsubscribed," in lines["ada@example.org"],
        "a new reader": "eve@example.org" in lines,
        "a reader removed": "bob@example.org" not in lines,
        "a delivery": lines["ada@example.org"].endswith(",2026-W49"),
    }
    assert shown[change]


def test_a_one_click_before_a_hand_edit_still_reaches_the_file(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_of(path)
    monkeypatch.setattr(writeback, "now_text", lambda: "2026-01-01T00:00:00+00:00")
    write_back(store, path)  # the file shows the list as it was on New Year's day
    monkeypatch.setattr(writeback, "now_text", now_text)
    store.unsubscribe("ada@example.org")
    edit(path, ("bob@", "bob@example.org,Bobby,robots,active,2026-01-02T00:00:00+00:00,"))
    store_of(path)  # the next command merges the edit: the file still lacks the unsubscribe
    quiet(store, "2026-06-01T00:00:00.000000+00:00")  # both changes long after New Year, long ago
    assert write_back(store, path) is True
    assert ",unsubscribed," in next(line for line in path.read_text().splitlines() if line.startswith("ada@"))


@pytest.mark.parametrize("line, number, says", DAMAGE)
def test_a_damaged_row_is_one_error_naming_its_line_and_nothing_of_the_file_is_applied(
    path: Path, line: str, number: int, says: str
) -> None:
    edit(path, ("cy@", "cy@example.org,Cy,music,active,,"), ("di@", "di@example.org,Diana,,active,,"))
    edit(path, ("bob@", line)) if number == 3 else edit(path, ("ada@", line))
    with pytest.raises(SubscriberError) as caught:
        store_of(path)
    assert caught.value.where == f"{path}:{number}" and says in caught.value.what
    store = store_of(path, sync=False)
    assert [(s.name, s.status.value) for s in store.read()] == [
        ("Ada", "active"),
        ("Bob", "active"),
        ("Cy", "unsubscribed"),
        ("Di", "active"),
    ]


def test_two_new_lines_for_one_address_are_one_error_naming_both(path: Path) -> None:
    edit(path, append="eve@example.org,Eve,,active,,\nEVE@example.org,Eve again,,active,,\n")
    with pytest.raises(SubscriberError) as caught:
        store_of(path)
    assert (
        caught.value.where == f"{path}:7" and "duplicate of 'EVE@example.org' on line 6" in caught.value.what
    )
    assert store_of(path, sync=False).get("eve@example.org") is None


def indexes(store: SubscriberStore) -> set[str]:
    found = inspect(store.db.engine)
    return {str(index["name"]) for table in ("subscribers", "csv_base") for index in found.get_indexes(table)}


@pytest.fixture
def bulk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file as big as a million-row list: its lines are loaded in bulk, not kept from the scan."""
    monkeypatch.setattr(csvsync, "KEEP_BYTES", 0)
    monkeypatch.setattr(database, "COPY_FROM", 1)  # PostgreSQL's COPY, for these few rows too


@pytest.mark.usefixtures("bulk")
def test_a_big_first_import_loads_every_row_bars_the_leavers_and_keeps_every_index(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    empty = store_of(write(tmp_path / "subscribers" / "empty.csv", HEADER + "\n"))
    before = indexes(empty)
    store = store_of(write(tmp_path / "subscribers" / "news.csv", "\n".join([HEADER, *ROWS]) + "\n"))
    assert [(s.email, s.status.value) for s in store.read()] == [
        ("ada@example.org", "active"),
        ("bob@example.org", "active"),
        ("cy@example.org", "unsubscribed"),
        ("di@example.org", "active"),
    ]
    with store.db.read() as conn:
        barred = list(conn.execute(select(suppressions.c.email_key, suppressions.c.reason)))
    assert barred == [("cy@example.org", "unsubscribed")]
    assert indexes(store) == before and "subscribers_by_status" in before


@pytest.mark.usefixtures("bulk")
def test_a_big_first_import_with_two_lines_of_one_address_names_both_and_loads_nothing(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    listed = write(
        tmp_path / "subscribers" / "news.csv",
        "\n".join([HEADER, *ROWS, "ADA@example.org,Ada again,,,,"]) + "\n",
    )
    with pytest.raises(SubscriberError) as caught:
        store_of(listed)
    assert (
        caught.value.where == f"{listed}:6"
        and "duplicate of 'ADA@example.org' on line 2" in caught.value.what
    )
    store = store_of(listed, sync=False)
    assert store.read() == [] and "subscribers_by_status" in indexes(store)


@pytest.mark.parametrize(
    "header, says",
    [
        ("email,name,keyword,status,subscribed_at,unsubscribed_at", "did you mean `keywords`?"),
        ("address,name,keywords,status,subscribed_at,unsubscribed_at", "has no 'email' column"),
    ],
)
def test_a_damaged_header_is_one_error_and_applies_nothing(path: Path, header: str, says: str) -> None:
    path.write_text("\n".join([header, *ROWS[:2]]) + "\n")
    with pytest.raises(SubscriberError) as caught:
        store_of(path)
    assert caught.value.where == f"{path}:1" and says in caught.value.what
    assert len(store_of(path, sync=False).read()) == 4


def test_a_send_from_a_file_with_a_stray_quote_sends_nothing(
    project: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    listed = project / "subscribers" / "example.csv"
    lines = listed.read_text().splitlines()
    ivan = next(i for i, line in enumerate(lines) if line.startswith("ivan@"))
    lines[ivan] = lines[ivan].replace("Ivan Petrov", '"Ivan Petrov')  # closed by Kofi's quoted name
    listed.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(main, ["send"])
    assert result.exit_code == 1 and result.output.startswith("Error: a quote")
    assert f"{listed}:{ivan + 1}" in result.output
    assert not (project / "outbox").exists() or not any((project / "outbox" / "new").iterdir())


def test_an_unchanged_file_is_not_read_again_and_a_touched_one_not_merged(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scans, merges = list[Path](), list[Path]()
    scan, merge = csvsync.scan, csvsync.merge

    def counted_scan(path: Path, synced: csvsync.Synced | None) -> csvsync.Scan:
        scans.append(path)
        return scan(path, synced)

    def counted_merge(*args: Any, **options: Any) -> csvsync.SyncReport:
        merges.append(args[1])
        return merge(*args, **options)

    monkeypatch.setattr(csvsync, "scan", counted_scan)
    monkeypatch.setattr(csvsync, "merge", counted_merge)
    path.touch()
    store_of(path)
    assert (len(scans), len(merges)) == (1, 0)  # same content: only the file's new time is kept
    store_of(path)
    assert len(scans) in (1, 2) and len(merges) == 0  # (read again only while its time is fresh)


def test_a_list_kept_only_in_the_database_gets_its_file_from_sync(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = path.with_name("web.csv")
    store = store_of(other)
    store.add(new_subscriber("w@example.org", status=SubscriberStatus.PENDING))
    assert not write_back(store, other) and not other.exists()  # never kept as CSV: no file appears
    assert write_back(store, other, create=True) and other.read_text().splitlines()[1].startswith(
        "w@example.org,,,pending,"
    )
    assert other.stat().st_mode & 0o077 == 0  # a new file is its owner's only


@pytest.mark.parametrize("digests_kept_sorted", [False, True], ids=["this release", "older release"])
def test_an_edit_that_moves_adds_and_deletes_lines_parses_only_the_lines_it_changed(
    path: Path, monkeypatch: pytest.MonkeyPatch, digests_kept_sorted: bool
) -> None:
    store = store_of(path, sync=False)
    if digests_kept_sorted:  # as the release before kept them: a sync must not take them for lines' places
        with store.db.write() as conn:
            kept = bytes(conn.execute(select(lists.c.csv_digests).where(lists.c.name == "news")).scalar_one())
            ordered = np.sort(np.frombuffer(kept, "<i8")).tobytes()
            conn.execute(update(lists).where(lists.c.name == "news").values(csv_digests=ordered))
    parsed: list[int] = []
    merge_batch = csvsync._merge_batch

    def counted(merge: Any, lines: list[csvsync.Changed]) -> None:
        parsed.extend(number for number, _, _ in lines)
        merge_batch(merge, lines)

    monkeypatch.setattr(csvsync, "_merge_batch", counted)
    ada, bob, cy, _di = ROWS
    robert = bob.replace(",Bob,", ",Robert,")
    path.write_text("\n".join([HEADER, robert, "eve@example.org,Eve,,active,,", cy, ada]) + "\n")
    merged = store_of(path)
    assert sorted(parsed) == [2, 3]  # Robert's line and Eve's: the moved ones are known wherever they are
    assert sorted((s.email, s.name, s.status.value) for s in merged.read()) == [
        ("ada@example.org", "Ada", "active"),
        ("bob@example.org", "Robert", "active"),
        ("cy@example.org", "Cy", "unsubscribed"),
        ("eve@example.org", "Eve", "active"),
    ]


def test_a_write_back_learns_of_new_deliveries_from_the_senders_without_reading_the_deliveries(
    tmp_path: Path,
) -> None:
    store = store_of(write(tmp_path / "subscribers" / "news.csv", "\n".join([HEADER, *ROWS]) + "\n"))
    quiet(store)
    before = now_text()
    assert not csvstate.changed_since(store.db, "news", before, "smtp")
    queue = SendQueue(store.db, "2024-W11", "news", "smtp")
    queue.register()  # a send ran (or runs) since: its deliveries may change last_issue
    asked: list[str] = []
    record = lambda *call: asked.append(call[2])  # noqa: E731  (the statement)
    event.listen(store.db.engine, "before_cursor_execute", record)
    assert csvstate.changed_since(store.db, "news", before, "smtp")
    event.remove(store.db.engine, "before_cursor_execute", record)
    assert not any("FROM deliveries" in statement for statement in asked)  # a million of them: not read
    queue.finish(completed=True)
    assert not csvstate.changed_since(store.db, "news", "2999-01-01T00:00:00+00:00", "smtp")
