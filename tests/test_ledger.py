"""The delivery ledger: durable settings, one row per (issue, list, address, channel), batched writes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from newsletter.delivery.record import DeliveryRecorder
from newsletter.ledger import Attempt, DeliveryLedger, DeliveryResult
from newsletter.statuses import DeliveryStatus

DELIVERED = DeliveryStatus.DELIVERED


def test_ledger_uses_wal_and_full_synchronous_writes(tmp_path: Path) -> None:
    ledger = DeliveryLedger(tmp_path / "l.db", "2024-W11", "test", "smtp")
    assert ledger._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert ledger._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    ledger.close()


def test_attempts_then_outcomes_and_a_retry_counts_attempts(tmp_path: Path) -> None:
    ledger = DeliveryLedger(tmp_path / "l.db", "2024-W11", "test", "smtp")
    ledger.record(attempts=[Attempt("a@x.org", "<1@x>", ("p1",)), Attempt("b@x.org", "<2@x>", ())])
    ledger.record(
        outcomes=[DeliveryResult("a@x.org", DeliveryStatus.DEFERRED, "451 later")],
        attempts=[Attempt("a@x.org", "<1@x>", ("p1",))],
    )
    ledger.record(outcomes=[DeliveryResult("a@x.org", DeliveryStatus.DELIVERED, "250 ok")])
    entries = ledger.entries()
    assert (entries["a@x.org"].status, entries["a@x.org"].attempts, entries["a@x.org"].last_reply) == (
        "delivered",
        2,
        "250 ok",
    )
    assert entries["b@x.org"].status == "sending"
    assert ledger.counts() == {"delivered": 1, "sending": 1}
    ledger.close()


def test_outbox_and_smtp_channels_and_issues_are_separate(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    outbox = DeliveryLedger(path, "2024-W11", "test", "outbox")
    outbox.record(attempts=[Attempt("a@x.org", "<1@x>", ("p1",))])
    outbox.record(outcomes=[DeliveryResult("a@x.org", DeliveryStatus.DELIVERED, "250 ok")])
    smtp = DeliveryLedger(path, "2024-W11", "test", "smtp")
    assert smtp.entries() == {}
    later = DeliveryLedger(path, "2024-W12", "test", "outbox")
    assert later.papers_received_before() == {"a@x.org": frozenset({"p1"})}
    for ledger in (outbox, smtp, later):
        ledger.close()


def test_peek_reads_without_creating_anything(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    assert DeliveryLedger.peek_entries(path, "2024-W11", "test", "smtp") == {}
    assert not path.exists()
    ledger = DeliveryLedger(path, "2024-W11", "test", "smtp")
    ledger.record(attempts=[Attempt("a@x.org", "<1@x>", ())])
    ledger.close()
    assert DeliveryLedger.peek_entries(path, "2024-W11", "test", "smtp")["a@x.org"].status == "sending"


def test_withdrawn_replaces_only_a_sending_row(tmp_path: Path) -> None:
    ledger = DeliveryLedger(tmp_path / "l.db", "2024-W11", "test", "smtp")
    ledger.record(attempts=[Attempt("a@x.org", "<1@x>", ()), Attempt("b@x.org", "<2@x>", ())])
    ledger.record(outcomes=[DeliveryResult("b@x.org", DeliveryStatus.DELIVERED, "250 ok")])
    ledger.record(
        outcomes=[
            DeliveryResult("a@x.org", DeliveryStatus.WITHDRAWN, "left"),
            DeliveryResult("b@x.org", DeliveryStatus.WITHDRAWN, ""),
        ]
    )
    entries = ledger.entries()
    assert {email: entry.status for email, entry in entries.items()} == {
        "a@x.org": "withdrawn",  # kept, so `newsletter report` can name them
        "b@x.org": "delivered",
    }
    assert entries["a@x.org"].last_reply == "left"
    ledger.close()


def test_read_only_peeks_see_what_a_run_recorded_and_change_nothing(tmp_path: Path) -> None:
    path = tmp_path / "newsletter.db"
    earlier = DeliveryLedger(path, "2024-W10", "example", "smtp")
    earlier.record(attempts=[Attempt("ada@example.org", "<a@x>", ("p1", "p2"))])
    earlier.record(outcomes=[DeliveryResult("ada@example.org", DELIVERED, "250 OK")])
    earlier.close()
    before = path.read_bytes()

    received = DeliveryLedger.peek_received(path, "2024-W11", "example", "smtp")
    entries = DeliveryLedger.peek_entries(path, "2024-W10", "example", "smtp")

    assert received == {"ada@example.org": frozenset({"p1", "p2"})}
    assert entries["ada@example.org"].status == DELIVERED
    assert DeliveryLedger.peek_received(path, "2024-W10", "example", "smtp") == {}
    assert DeliveryLedger.peek_received(tmp_path / "missing.db", "2024-W11", "example", "smtp") == {}
    assert not (tmp_path / "missing.db").exists()
    assert path.read_bytes() == before


def _status_after(tmp_path: Path, outcomes: int, batch: int, delay: float, wait: float) -> list[str]:
    """Statuses another process reads once all are final, or after `wait` seconds; recorder still open."""
    path = tmp_path / "ledger.db"
    ledger = DeliveryLedger(path, "2024-W11", "test", "smtp")
    emails = [f"r{i}@example.org" for i in range(outcomes)]

    def statuses() -> list[str]:
        seen = DeliveryLedger.peek_entries(path, "2024-W11", "test", "smtp")
        return [seen[email].status for email in emails]

    async def run() -> list[str]:
        recorder = DeliveryRecorder(ledger, outcome_batch=batch, outcome_delay=delay)
        recorder.start()
        await recorder.attempts([Attempt(email, f"<{email}>", ()) for email in emails])
        for email in emails:
            recorder.outcome(DeliveryResult(email, DeliveryStatus.DELIVERED, "250 ok"))
        deadline = asyncio.get_running_loop().time() + wait
        while "sending" in (found := statuses()) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        await recorder.close()
        return found

    try:
        return asyncio.run(run())
    finally:
        ledger.close()


def test_replies_reach_the_disk_soon_even_when_no_other_write_follows(tmp_path: Path) -> None:
    # e.g. the last messages of a run, then a long backoff for a deferred one: a crash must not re-send them
    assert _status_after(tmp_path, outcomes=2, batch=100, delay=0.05, wait=10) == ["delivered"] * 2


def test_a_full_batch_of_replies_is_written_without_waiting_for_the_delay(tmp_path: Path) -> None:
    assert _status_after(tmp_path, outcomes=3, batch=3, delay=600, wait=10) == ["delivered"] * 3


def test_papers_received_keeps_only_the_issues_own_papers_and_no_reader_without_them(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    earlier = DeliveryLedger(path, "2024-W10", "example", "smtp")
    earlier.record(
        attempts=[Attempt("ada@x.org", "<1@x>", ("p1", "old")), Attempt("bob@x.org", "<2@x>", ("old",))]
    )
    earlier.record(
        outcomes=[
            DeliveryResult("ada@x.org", DELIVERED, "250"),
            DeliveryResult("bob@x.org", DELIVERED, "250"),
        ]
    )
    now = DeliveryLedger(path, "2024-W11", "example", "smtp")
    assert now.papers_received_before(within={"p1", "p2"}) == {"ada@x.org": frozenset({"p1"})}
    assert now.papers_received_before() == {
        "ada@x.org": frozenset({"p1", "old"}),
        "bob@x.org": frozenset({"old"}),
    }
    assert DeliveryLedger.peek_received(path, "2024-W11", "example", "smtp", {"p2"}) == {}
    now.record(attempts=[Attempt("ada@x.org", "<3@x>", ("p2",))])
    assert now.statuses() == {"ada@x.org": DeliveryStatus.SENDING}
    assert DeliveryLedger.peek_statuses(path, "2024-W11", "example", "smtp") == now.statuses()
    for ledger in (earlier, now):
        ledger.close()
