"""Bounce reports (RFC 3464): hard bounces mark addresses bounced, nothing else changes."""

from __future__ import annotations

import email
import mailbox
from functools import partial
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.deliveries import database, ledger
from helpers.dsn import dsn, raw_dsn
from helpers.lists import store_of

from newsletter.bounces.handling import (
    BounceCategory,
    SentLookup,
    apply_bounces,
    bounces_in,
    read_messages,
)
from newsletter.cli import main
from newsletter.errors import SubscriberError
from newsletter.store.deliveries import Attempt
from newsletter.store.history import sent_messages
from newsletter.store.subscribers import SubscriberStore

FIXTURES = Path(__file__).parent / "fixtures" / "bounces"
MESSAGES = ["hard_user_unknown.eml", "soft_mailbox_busy.eml", "two_recipients.eml", "auto_reply.eml"]


def message(name: str) -> email.message.Message:
    return email.message_from_bytes((FIXTURES / name).read_bytes())


@pytest.fixture
def sent(tmp_path: Path) -> SentLookup:
    """The ledger of one issue sent to alice, bob, carol and dan of list news (and eve of list other)."""
    url = f"sqlite:///{tmp_path / 'newsletter.db'}"  # where `newsletter` finds it without a config
    news = ledger(url, "2026-W48", "news")
    news.record(attempts=[Attempt(f"{n}@example.org", f"<2026-w48.{n}@example.org>", ()) for n in NAMES])
    other = ledger(url, "2026-W48", "other")
    other.record(attempts=[Attempt("bob@example.org", "<2026-w48.other-bob@example.org>", ())])
    return partial(sent_messages, database(url))


NAMES = ("alice", "bob", "carol", "dan")


@pytest.fixture
def store(tmp_path: Path) -> SubscriberStore:
    folder = tmp_path / "subscribers"
    folder.mkdir()
    path = folder / "news.csv"
    path.write_text(
        "email,name,status\nalice@example.org,Alice,active\nbob@example.org,Bob,active\n"
        "carol@example.org,Carol,active\ndan@example.org,Dan,active\n"
    )
    return store_of(path)


@pytest.fixture
def maildir(tmp_path: Path) -> Path:
    box = mailbox.Maildir(tmp_path / "Bounces", create=True)
    for name in MESSAGES:
        box.add((FIXTURES / name).read_bytes())
    return tmp_path / "Bounces"


@pytest.fixture
def mbox(tmp_path: Path) -> Path:
    box = mailbox.mbox(tmp_path / "bounces.mbox", create=True)
    for name in MESSAGES:
        box.add(message(name))
    box.close()
    return tmp_path / "bounces.mbox"


def test_a_dsn_yields_one_bounce_per_recipient_block() -> None:
    found = bounces_in(message("two_recipients.eml"))
    assert found is not None
    assert [(b.recipient, b.status, b.is_hard) for b in found] == [
        ("carol@example.org", "5.2.1", True),
        ("nobody@example.org", "5.1.1", True),
    ]


def test_a_delay_is_soft_and_an_auto_reply_is_no_report() -> None:
    soft = bounces_in(message("soft_mailbox_busy.eml"))
    assert soft is not None and [b.is_hard for b in soft] == [False]
    assert bounces_in(message("auto_reply.eml")) is None


def test_hard_bounces_in_a_maildir_mark_addresses_bounced(
    store: SubscriberStore, maildir: Path, sent: SentLookup
) -> None:
    report = apply_bounces(store, read_messages(maildir=maildir), sent)
    assert (report.messages, report.hard, report.soft, report.counts[BounceCategory.AUTO_REPLY]) == (
        4,
        2,
        1,
        1,
    )
    assert sorted(report.marked) == ["Bob@Example.org", "carol@example.org"]
    assert [(i.recipient, i.reason) for i in report.ignored] == [
        ("nobody@example.org", "is about a message we sent to someone else")
    ]
    statuses = {s.email: s.status for s in store.read()}
    assert statuses == {
        "alice@example.org": "active",
        "bob@example.org": "bounced",
        "carol@example.org": "bounced",
        "dan@example.org": "active",
    }


def test_running_again_changes_nothing(store: SubscriberStore, maildir: Path, sent: SentLookup) -> None:
    apply_bounces(store, read_messages(maildir=maildir), sent)
    before = [(s.email, s.status, s.unsubscribed_at) for s in store.read()]
    report = apply_bounces(store, read_messages(maildir=maildir), sent)
    assert report.marked == [] and sorted(report.already) == ["Bob@Example.org", "carol@example.org"]
    assert [(s.email, s.status, s.unsubscribed_at) for s in store.read()] == before


def test_bounces_command_reads_an_mbox(
    store: SubscriberStore, mbox: Path, sent: SentLookup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["subscribers", "bounces", "--mbox", str(mbox), "--list", "news"])
    assert result.exit_code == 0
    assert result.stdout == (
        "bounced: Bob@Example.org\nbounced: carol@example.org\n"
        "4 messages: 2 hard, 1 soft (0 policy blocks, 0 cannot tell), 0 complaints, 1 auto-replies, "
        "0 not ours, 0 not understood; 2 marked bounced, 0 unsubscribed by complaint, "
        "0 already bounced or unsubscribed, 0 not on the list\n"
    )
    assert (
        result.stderr
        == "ignored: nobody@example.org: the report is about a message we sent to someone else\n"
    )


def test_bounces_command_needs_exactly_one_mailbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["subscribers", "bounces"])
    assert result.exit_code == 2 and "pass exactly one of --maildir and --mbox" in result.stderr


def test_a_folder_that_is_not_a_maildir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SubscriberError, match="is not a Maildir"):
        list(read_messages(maildir=tmp_path))


def test_a_forwarded_address_is_matched_by_its_original_recipient(
    store: SubscriberStore, sent: SentLookup
) -> None:
    found = bounces_in(message("forwarded_global.eml"))
    assert found is not None
    assert [(b.recipient, b.original, b.is_hard) for b in found] == [
        ("dan.old@forward.example.net", "dan@example.org", True)
    ]
    report = apply_bounces(store, [message("forwarded_global.eml")], sent)
    assert report.marked == ["dan@example.org"] and report.unknown == []
    dan = store.get("dan@example.org")
    assert dan is not None and dan.status == "bounced"


@pytest.mark.parametrize(
    ("report", "reason"),
    [
        (
            dsn("bob@example.org"),
            "names no Message-ID of a message we sent (forged, or not a bounce of ours)",
        ),
        (
            dsn("bob@example.org", returned_id="<made-up@example.org>"),
            "is about <made-up@example.org>, which we never sent",
        ),
        (
            dsn("bob@example.org", returned_id="<2026-w48.alice@example.org>"),
            "is about a message we sent to someone else",
        ),
        (
            dsn("bob@example.org", returned_id="<2026-w48.other-bob@example.org>"),
            "is about mail of another list (other)",
        ),
    ],
)
def test_a_forged_bounce_marks_nobody_and_says_why(
    store: SubscriberStore, sent: SentLookup, report: email.message.Message, reason: str
) -> None:
    result = apply_bounces(store, [report], sent)
    assert result.marked == [] and result.hard == 0
    assert [(i.recipient, i.reason) for i in result.ignored] == [("bob@example.org", reason)]
    bob = store.get("bob@example.org")
    assert bob is not None and bob.status == "active"


def test_a_bounce_of_a_message_we_sent_that_address_counts(store: SubscriberStore, sent: SentLookup) -> None:
    result = apply_bounces(store, [dsn("bob@example.org", returned_id="<2026-w48.bob@example.org>")], sent)
    assert result.marked == ["bob@example.org"] and result.ignored == []
    bob = store.get("bob@example.org")
    assert bob is not None and bob.status == "bounced"


def test_without_a_ledger_every_bounce_is_ignored(store: SubscriberStore, tmp_path: Path) -> None:
    lookup = partial(sent_messages, database(f"sqlite:///{tmp_path / 'empty.db'}"))
    result = apply_bounces(store, [dsn("bob@example.org", returned_id="<2026-w48.bob@example.org>")], lookup)
    assert result.marked == [] and len(result.ignored) == 1


MTA = "Reporting-MTA: dns; mx.example.net\r\n"
BOB = "Final-Recipient: rfc822; bob@example.org\r\n"


@pytest.mark.parametrize(
    ("status_part", "returned_type"),
    [
        # a line holding only a space between the blocks (flufl.bounce's dsn_03)
        (f"{MTA} \r\n{BOB}Action: failed\r\nStatus: 5.1.1\r\n", "text/rfc822-headers"),
        (
            f"{MTA}\r\n{BOB}Action: failed (Bad destination mailbox address)\r\nStatus: 5.1.1\r\n",
            "text/rfc822-headers",
        ),
        (
            f"{MTA}\r\n{BOB}Action: failed\r\nDiagnostic-Code: smtp; 550 5.1.1 User unknown\r\n",
            "text/rfc822-headers",
        ),
        (f"{MTA}\r\n{BOB}Action: error\r\nStatus: 5.0.0\r\n", "text/rfc822-headers"),
        (f"{MTA}\r\n{BOB}Action: failed\r\nStatus: 4.4.7\r\n", "text/rfc822-headers"),  # gave up: final
        (f"{MTA}\r\n{BOB}Action: failed\r\nStatus: 5.1.1\r\n", "message/rfc822-headers"),
    ],
    ids=[
        "space-line",
        "action-comment",
        "code-in-diagnostic",
        "action-error",
        "failed-4.4.7",
        "rfc822-headers",
    ],
)
def test_permanent_failures_as_real_servers_write_them_mark_the_reader(
    store: SubscriberStore, sent: SentLookup, status_part: str, returned_type: str
) -> None:
    report = raw_dsn(status_part, returned_id="<2026-w48.bob@example.org>", returned_type=returned_type)
    result = apply_bounces(store, [report], sent)
    assert (result.hard, result.marked, result.ignored) == (1, ["bob@example.org"], [])
    bob = store.get("bob@example.org")
    assert bob is not None and bob.status == "bounced"
