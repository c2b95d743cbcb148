"""The delivery ledger: one row per (issue, list, address, channel), durable writes in batches, on
SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from helpers.deliveries import database, ledger

from newsletter.delivery.record import DeliveryRecorder
from newsletter.statuses import DeliveryStatus
from newsletter.store.deliveries import Attempt, DeliveryLedger, DeliveryResult
from newsletter.store.history import (
    deliveries_to,
    latest_issue,
    message_ids_by_key,
    read_issue,
    recorded_issues,
    sent_messages,
)

DELIVERED = DeliveryStatus.DELIVERED


def test_sqlite_ledger_uses_wal_and_full_synchronous_writes(tmp_path: object) -> None:
    db = database(f"sqlite:///{tmp_path}/newsletter.db")
    with db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_attempts_then_outcomes_and_a_retry_counts_attempts(database_url: str) -> None:
    run = ledger(database_url)
    run.record(attempts=[Attempt("a@x.org", "<1@x>", ("p1",)), Attempt("b@x.org", "<2@x>", ())])
    run.record(
        outcomes=[DeliveryResult("a@x.org", DeliveryStatus.DEFERRED, "451 later")],
        attempts=[Attempt("a@x.org", "<1@x>", ("p1",))],
    )
    run.record(outcomes=[DeliveryResult("a@x.org", DELIVERED, "250 ok")])
    entries = run.entries()
    assert (entries["a@x.org"].status, entries["a@x.org"].attempts, entries["a@x.org"].last_reply) == (
        "delivered",
        2,
        "250 ok",
    )
    assert entries["b@x.org"].status == "sending"
    assert run.counts() == {"delivered": 1, "sending": 1}


def test_outbox_and_smtp_channels_and_issues_are_separate(database_url: str) -> None:
    outbox = ledger(database_url, channel="outbox")
    outbox.record(attempts=[Attempt("a@x.org", "<1@x>", ("p1",))])
    outbox.record(outcomes=[DeliveryResult("a@x.org", DELIVERED, "250 ok")])
    assert ledger(database_url, channel="smtp").entries() == {}
    later = ledger(database_url, issue="2024-W12", channel="outbox")
    assert later.papers_received_before() == {"a@x.org": frozenset({"p1"})}
    assert later.papers_received_by("A@x.org") == frozenset({"p1"})


def test_withdrawn_replaces_only_a_sending_row(database_url: str) -> None:
    run = ledger(database_url)
    run.record(attempts=[Attempt("a@x.org", "<1@x>", ()), Attempt("b@x.org", "<2@x>", ())])
    run.record(outcomes=[DeliveryResult("b@x.org", DELIVERED, "250 ok")])
    run.record(
        outcomes=[
            DeliveryResult("a@x.org", DeliveryStatus.WITHDRAWN, "left"),
            DeliveryResult("b@x.org", DeliveryStatus.WITHDRAWN, ""),
        ]
    )
    entries = run.entries()
    assert {email: entry.status for email, entry in entries.items()} == {
        "a@x.org": "withdrawn",  # kept, so `newsletter report` can name them
        "b@x.org": "delivered",
    }
    assert entries["a@x.org"].last_reply == "left"


def test_a_long_server_reply_is_kept_short(database_url: str) -> None:
    run = ledger(database_url)
    run.record(attempts=[Attempt("a@x.org", "<1@x>", ())])
    run.record(outcomes=[DeliveryResult("a@x.org", DeliveryStatus.FAILED, "550 " + "x" * 2000)])
    assert len(run.entries()["a@x.org"].last_reply or "") == 500


def test_a_second_ledger_object_sees_what_another_recorded(database_url: str) -> None:
    earlier = ledger(database_url, issue="2024-W10", list_name="example")
    earlier.record(attempts=[Attempt("ada@example.org", "<a@x>", ("p1", "p2"))])
    earlier.record(outcomes=[DeliveryResult("ada@example.org", DELIVERED, "250 OK")])

    now = ledger(database_url, issue="2024-W11", list_name="example")
    assert now.papers_received_before() == {"ada@example.org": frozenset({"p1", "p2"})}
    assert ledger(database_url, "2024-W10", "example").entries()["ada@example.org"].status == DELIVERED
    assert ledger(database_url, "2024-W10", "example").papers_received_before() == {}
    assert now.papers_received_by("nobody@example.org") == frozenset()


def _status_after(database_url: str, outcomes: int, batch: int, delay: float, wait: float) -> list[str]:
    """Statuses a separate reader sees once all are final, or after `wait` seconds; recorder still open."""
    run = ledger(database_url)
    emails = [f"r{i}@example.org" for i in range(outcomes)]

    def statuses() -> list[str]:
        seen = DeliveryLedger(database(database_url), "2024-W11", "test", "smtp").statuses()
        return [seen[email] for email in emails]

    async def go() -> list[str]:
        recorder = DeliveryRecorder(run, outcome_batch=batch, outcome_delay=delay)
        recorder.start()
        await recorder.attempts([Attempt(email, f"<{email}>", ()) for email in emails])
        for email in emails:
            recorder.outcome(DeliveryResult(email, DELIVERED, "250 ok"))
        deadline = asyncio.get_running_loop().time() + wait
        while "sending" in (found := statuses()) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        await recorder.close()
        return found

    return asyncio.run(go())


def test_replies_reach_the_database_soon_even_when_no_other_write_follows(database_url: str) -> None:
    # e.g. the last messages of a run, then a long backoff for a deferred one: a crash must not re-send them
    assert _status_after(database_url, outcomes=2, batch=100, delay=0.05, wait=10) == ["delivered"] * 2


def test_a_full_batch_of_replies_is_written_without_waiting_for_the_delay(database_url: str) -> None:
    assert _status_after(database_url, outcomes=3, batch=3, delay=600, wait=10) == ["delivered"] * 3


def test_papers_received_keeps_only_the_issues_own_papers_and_no_reader_without_them(
    database_url: str,
) -> None:
    earlier = ledger(database_url, issue="2024-W10", list_name="example")
    earlier.record(
        attempts=[Attempt("ada@x.org", "<1@x>", ("p1", "old")), Attempt("bob@x.org", "<2@x>", ("old",))]
    )
    earlier.record(
        outcomes=[
            DeliveryResult("ada@x.org", DELIVERED, "250"),
            DeliveryResult("bob@x.org", DELIVERED, "250"),
        ]
    )
    now = ledger(database_url, issue="2024-W11", list_name="example")
    assert now.papers_received_before(within={"p1", "p2"}) == {"ada@x.org": frozenset({"p1"})}
    assert now.papers_received_before() == {
        "ada@x.org": frozenset({"p1", "old"}),
        "bob@x.org": frozenset({"old"}),
    }
    assert now.papers_received_before(within={"p2"}) == {}
    now.record(attempts=[Attempt("ada@x.org", "<3@x>", ("p2",))])
    assert now.statuses() == {"ada@x.org": DeliveryStatus.SENDING}


def test_a_snapshot_is_kept_per_issue_and_replaced_by_a_later_run(database_url: str) -> None:
    run = ledger(database_url)
    assert run.snapshot() is None
    run.record_snapshot(b"\x00first")
    run.record_snapshot(b"\x00second\xff")
    assert run.snapshot() == b"\x00second\xff"
    assert ledger(database_url, channel="outbox").snapshot() is None


def test_report_helpers_read_an_issue_the_latest_one_and_each_readers_record(database_url: str) -> None:
    db = database(database_url)
    older = ledger(database_url, issue="2024-W10")
    older.record(attempts=[Attempt("ada@x.org", "<a10@x>", ("p0",))])
    older.record(outcomes=[DeliveryResult("ada@x.org", DELIVERED, "250")])
    newer = ledger(database_url, issue="2024-W11", channel="outbox")
    newer.record(attempts=[Attempt("ada@x.org", "<o11@x>", ("p1",), reader='{"name": "Ada"}')])
    real = ledger(database_url, issue="2024-W11", channel="smtp")
    real.record(attempts=[Attempt("ada@x.org", "<s11@x>", ("p1",)), Attempt("bob@x.org", "<b11@x>", ())])
    real.record(outcomes=[DeliveryResult("bob@x.org", DeliveryStatus.FAILED, "550 no such user")])

    assert latest_issue(db, "test", "smtp") == "2024-W11"
    assert latest_issue(db, "other", "smtp") is None
    rows = {row.email: row for row in read_issue(db, "2024-W11", "test", "smtp")}
    assert (rows["bob@x.org"].status, rows["bob@x.org"].last_reply) == ("failed", "550 no such user")
    assert rows["ada@x.org"].status == "sending" and rows["ada@x.org"].attempts == 1
    issues = {(i.issue, i.channel): (i.readers, i.delivered) for i in recorded_issues(db, "test")}
    assert issues == {
        ("2024-W10", "smtp"): (1, 1),
        ("2024-W11", "smtp"): (2, 0),
        ("2024-W11", "outbox"): (1, 0),
    }
    records = deliveries_to(db, "2024-W11", "test", " ADA@x.org ")
    assert [r.channel for r in records] == ["smtp", "outbox"]  # a real delivery first
    assert records[1].reader == '{"name": "Ada"}' and records[1].papers == ("p1",)


def test_times_come_from_the_database_clock_as_utc_text(database_url: str) -> None:
    run = ledger(database_url)
    before = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    run.record(attempts=[Attempt("a@x.org", "<1@x>", ())])
    (row,) = read_issue(database(database_url), "2024-W11", "test", "smtp")
    when = datetime.fromisoformat(row.updated_at)
    assert row.updated_at.endswith("+00:00") and before <= when <= datetime.now(UTC) + timedelta(seconds=5)


def test_bounce_lookups_find_our_messages_by_id_and_by_delivery_key(database_url: str) -> None:
    db = database(database_url)
    ids = {n: f"<2024-w11.{n}.{n[0] * 24}@example.org>" for n in ("alice", "bob")}
    run = ledger(database_url)
    run.record(attempts=[Attempt(f"{n}@example.org", mid, ()) for n, mid in ids.items()])
    many = [f"<unknown{i}@x>" for i in range(1200)]  # more than one query's worth of parameters
    assert sent_messages(db, [*many, ids["bob"]]) == {ids["bob"]: ("test", "bob@example.org")}
    keys = ["a" * 18, "B" * 18, "c" * 18, "not-hex%"]
    assert message_ids_by_key(db, keys) == {"a" * 18: ids["alice"], "b" * 18: ids["bob"]}


@pytest.mark.parametrize("status", ["lost", ""])
def test_the_database_refuses_a_status_that_is_not_a_delivery_status(database_url: str, status: str) -> None:
    from sqlalchemy import text

    from newsletter.errors import StoreError

    run = ledger(database_url)
    run.record(attempts=[Attempt("a@x.org", "<1@x>", ())])
    with pytest.raises(StoreError), database(database_url).write() as conn:
        conn.execute(text("UPDATE deliveries SET status = :s"), {"s": status})
    assert run.statuses() == {"a@x.org": DeliveryStatus.SENDING}
