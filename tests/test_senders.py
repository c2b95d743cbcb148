"""Many senders on one issue: deliveries queued once, claimed by one sender each, written only by
their owner, and a second `newsletter send` that joins the first instead of waiting for it."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.deliveries import database, ledger, owners_of, recorded
from helpers.senders import start_send, wait_until
from helpers.smtp_servers import LoopbackServer, RecordingHandler, write_config, write_subscribers
from sqlalchemy import text

from newsletter.cli import main
from newsletter.statuses import DeliveryStatus
from newsletter.store import Database
from newsletter.store.deliveries import Attempt, DeliveryLedger, DeliveryResult
from newsletter.store.sendqueue import SendQueue

ISSUE, LIST, CHANNEL = "2024-W11", "test", "smtp"
READERS = [f"reader{n:03d}@example.org" for n in range(120)]


def sender(url: str, **options: object) -> SendQueue:
    """A registered sender of the test issue, on a database connection pool of its own."""
    db = database(url)  # upgraded
    queue = SendQueue(Database(db.place), ISSUE, LIST, CHANNEL, **options)  # type: ignore[arg-type]
    queue.register()
    return queue


def database_env(url: str) -> dict[str, str]:
    """The environment that points a command at `url` (the SQLite default needs nothing)."""
    return {"NEWSLETTER_DATABASE_URL": url} if url.startswith("postgresql") else {}


def owned_ledger(queue: SendQueue) -> DeliveryLedger:
    return DeliveryLedger(queue.db, ISSUE, LIST, CHANNEL, owner=queue.owner)


def silence(url: str, queue: SendQueue) -> None:
    """Make a sender's lease run out, as if it had stopped heartbeating long ago."""
    db = database(url)
    with db.write() as conn:
        conn.execute(
            text("UPDATE senders SET lease_until = '2000-01-01T00:00:00+00:00' WHERE id = :id"),
            {"id": queue.owner},
        )


def test_queueing_the_same_readers_again_creates_each_delivery_once(database_url: str) -> None:
    first, second = sender(database_url), sender(database_url)
    first.fan_out(READERS)
    claimed = first.claim(10)
    assert len(claimed) == 10  # a claim takes as many rows as asked, not more
    second.fan_out([*READERS, "late@example.org"])  # a second sender joins: changes nothing
    assert len(recorded(database_url)) == len(READERS) + 1
    assert {c.email for c in claimed}.isdisjoint(c.email for c in second.claim(1000))


def test_two_senders_claiming_at_once_never_take_the_same_row(database_url: str) -> None:
    senders = [sender(database_url) for _ in range(3)]
    senders[0].fan_out(READERS)
    taken: list[list[str]] = [[] for _ in senders]

    def drain(index: int) -> None:
        while claims := senders[index].claim(7):
            taken[index].extend(c.email for c in claims)

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(len(senders))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [email for emails in taken for email in emails]
    assert Counter(every) == Counter(READERS)  # each row claimed exactly once


def test_a_sender_that_lost_its_rows_cannot_send_or_answer_for_them(database_url: str) -> None:
    dead, alive = sender(database_url), sender(database_url)
    dead.fan_out(READERS[:4])
    mine = [c.email for c in dead.claim(4)]
    owned_ledger(dead).record(attempts=[Attempt(mine[0], "<m0@x>", ())])  # handed over, no answer
    silence(database_url, dead)
    taken = {c.email: c.status for c in alive.claim(10)}
    assert taken == {mine[0]: DeliveryStatus.SENDING} | dict.fromkeys(mine[1:], DeliveryStatus.QUEUED)

    late = owned_ledger(dead).record(
        [DeliveryResult(mine[0], DeliveryStatus.DELIVERED, "250 late")],
        [Attempt(email, f"<{email}>", ()) for email in mine[1:]],
    )
    assert late == set(mine[1:])  # refused: the dispatcher sends none of them
    assert {email: status for email, (status, _) in recorded(database_url).items()} == {
        mine[0]: "sending",
        **dict.fromkeys(mine[1:], "queued"),
    }


def test_a_shard_run_claims_only_the_rows_its_shard_queued(database_url: str) -> None:
    one, two = sender(database_url, shard="1/2"), sender(database_url, shard="2/2")
    one.fan_out(READERS[:10])
    two.fan_out(READERS[10:20])
    assert {c.email for c in one.claim(100)} == set(READERS[:10])
    assert {c.email for c in two.claim(100)} == set(READERS[10:20])


def test_a_final_row_is_never_queued_or_claimed_again(database_url: str) -> None:
    queue = sender(database_url)
    ledger(database_url).record(attempts=[Attempt(READERS[0], "<m@x>", ())])
    ledger(database_url).record([DeliveryResult(READERS[0], DeliveryStatus.DELIVERED, "250 ok")])
    queue.fan_out(READERS[:3])
    assert {c.email for c in queue.claim(10)} == set(READERS[1:3])
    assert recorded(database_url)[READERS[0]][0] == "delivered"


def test_a_second_send_on_the_same_list_joins_the_first_and_they_share_the_issue(
    tmp_path: Path, database_url: str
) -> None:
    active = write_subscribers(tmp_path / "subscribers" / "test.csv", 200)
    handler = RecordingHandler(delay=0.01)
    with LoopbackServer(handler) as server:
        write_config(tmp_path, port=server.port, connections=2, compose_processes=0)
        first = start_send(tmp_path, "--json", database_url=database_url)
        wait_until(lambda: len(handler.received) >= 10 or first.poll() is not None)
        handler.delay = 0.5  # the first crawls until the second has joined
        second = start_send(tmp_path, "--json", database_url=database_url)
        wait_until(lambda: owners_of(database_url) == 2 or second.poll() is not None)
        handler.delay = 0.0
        outputs = [process.communicate(timeout=180) for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    reports = [json.loads(out) for out, _ in outputs]
    assert reports[1]["sent"] > 0  # it sent its share instead of waiting or giving up
    assert reports[0]["sent"] + reports[1]["sent"] == len(active)
    recipients = [item.recipient for item in handler.received]
    assert sorted(recipients) == active  # everyone once, by one sender or the other
    assert [len(report["senders"]) for report in reports] == [2, 2]  # each tells of both
    by_sender = {sender["id"]: sender["counts"] for sender in reports[1]["senders"]}
    assert sum(counts.get("delivered", 0) for counts in by_sender.values()) == len(active)
    assert reports[1]["complete"] and reports[1]["issue_counts"] == {"delivered": len(active)}

    late = start_send(tmp_path, database_url=database_url)
    out, err = late.communicate(timeout=120)
    assert late.returncode == 0, err
    assert "0 sent" in out and "the issue was already complete: nothing left to send" in out
    shown = CliRunner().invoke(
        main, ["--config", str(tmp_path / "newsletter.toml"), "report"], env=database_env(database_url)
    )
    assert shown.exit_code == 0, shown.output
    assert all(f"sender {sender} on " in shown.output for sender in by_sender)


def test_with_on_uncertain_hold_a_killed_sender_s_message_is_held_until_the_operator_resends_it(
    tmp_path: Path, database_url: str
) -> None:
    active = write_subscribers(tmp_path / "subscribers" / "test.csv", 3)
    victim = active[0]
    handler = RecordingHandler(plan=lambda rcpt, tries: "stall" if rcpt == victim else None, stall_seconds=60)
    with LoopbackServer(handler) as server:
        config = write_config(tmp_path, port=server.port, connections=1, timeout=60)
        config.write_text('on_uncertain = "hold"\n' + config.read_text(encoding="utf-8"), encoding="utf-8")
        killed = start_send(tmp_path, database_url=database_url)
        wait_until(lambda: victim in handler.attempts or killed.poll() is not None)
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        assert killed.returncode == -signal.SIGKILL, killed.communicate()
    handed_over = {email for email, (status, _) in recorded(database_url).items() if status == "sending"}
    message_id = recorded(database_url)[victim][1]
    assert victim in handed_over

    with LoopbackServer() as server:
        write_config(tmp_path, port=server.port, connections=1)
        config.write_text('on_uncertain = "hold"\n' + config.read_text(encoding="utf-8"), encoding="utf-8")
        after = start_send(tmp_path, "--json", database_url=database_url)
        report = json.loads(after.communicate(timeout=120)[0])
        assert after.returncode == 0 and report["held"] == len(handed_over), (report, recorded(database_url))
        assert not handed_over & set(server.handler.recipients())  # held: not sent again
        resent = start_send(tmp_path, "--resend-held", "--json", database_url=database_url)
        again = json.loads(resent.communicate(timeout=120)[0])
    assert again["sent"] == len(handed_over) and again["resumed"] == len(handed_over)
    delivered = {item.recipient: item.message_id for item in server.handler.received}
    assert sorted(delivered) == active and delivered[victim] == message_id


def test_a_sender_that_keeps_heartbeating_keeps_its_rows_past_its_first_lease(database_url: str) -> None:
    from newsletter.store.sendqueue import Heartbeat

    owner, other = sender(database_url, lease_seconds=2), sender(database_url, lease_seconds=2)
    owner.fan_out(READERS[:5])
    mine = {c.email for c in owner.claim(5)}
    heartbeat = Heartbeat(owner)
    heartbeat.start()
    try:
        time.sleep(3)  # longer than the lease it registered with: only heartbeats keep it
        assert other.reap() == 0 and other.claim(10) == []
    finally:
        heartbeat.stop()
    assert len(mine) == 5


@pytest.mark.parametrize("on_uncertain", ["resend", "hold"])
def test_a_silent_sender_s_rows_return_to_the_queue_and_handed_over_ones_follow_on_uncertain(
    database_url: str, on_uncertain: str
) -> None:
    dead = sender(database_url)
    alive = sender(database_url, hold_uncertain=on_uncertain == "hold")
    dead.fan_out(READERS[:3])
    handed, *unsent = [c.email for c in dead.claim(3)]
    owned_ledger(dead).record(attempts=[Attempt(handed, "<same@x>", ())])
    silence(database_url, dead)
    taken = {c.email: c.status for c in alive.claim(10)}
    if on_uncertain == "resend":
        assert taken == {handed: DeliveryStatus.SENDING} | dict.fromkeys(unsent, DeliveryStatus.QUEUED)
    else:
        assert taken == dict.fromkeys(unsent, DeliveryStatus.QUEUED)
        assert recorded(database_url)[handed] == ("held", "<same@x>")  # kept for the operator


def test_a_sender_whose_clock_is_minutes_ahead_does_not_take_live_leases(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = sender(database_url, lease_seconds=60)
    owner.fan_out(READERS[:5])
    owner.claim(5)
    ahead = time.time() + 15 * 60
    monkeypatch.setattr(time, "time", lambda: ahead)  # this host thinks the lease ran out long ago
    hasty = sender(database_url, lease_seconds=60)
    assert hasty.reap() == 0 and hasty.claim(10) == []


def test_send_with_workers_runs_that_many_senders_that_share_the_issue(
    tmp_path: Path, database_url: str
) -> None:
    active = write_subscribers(tmp_path / "subscribers" / "test.csv", 150)
    handler = RecordingHandler(delay=0.3)  # slow until a second worker has claimed some
    with LoopbackServer(handler) as server:
        write_config(tmp_path, port=server.port, connections=2)
        run = start_send(tmp_path, "--workers", "3", "--json", database_url=database_url)
        wait_until(lambda: owners_of(database_url) >= 2 or run.poll() is not None, seconds=120)
        handler.delay = 0.0
        out, err = run.communicate(timeout=180)
    assert run.returncode == 0, err
    report = json.loads(out)
    assert report["sent"] == len(active) and len(report["senders"]) == 3
    assert sum(1 for sender in report["senders"] if sender["counts"].get("delivered")) >= 2
    assert sorted(handler.recipients()) == active  # each reader once, whichever worker sent it


def test_workers_do_not_go_with_limit(tmp_path: Path) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 2)
    write_config(tmp_path, port=1)
    result = CliRunner().invoke(
        main, ["--config", str(tmp_path / "newsletter.toml"), "send", "--workers", "2", "--limit", "1"]
    )
    assert result.exit_code == 1 and result.output.startswith("Error: --workers sends the whole issue")
