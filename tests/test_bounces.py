"""Bounce reports (RFC 3464): hard bounces mark addresses bounced, nothing else changes."""

from __future__ import annotations

import email
import mailbox
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.errors import SubscriberError
from newsletter.subscribers import SubscriberStore
from newsletter.subscribers.bounces import apply_bounces, bounces_in, read_messages

FIXTURES = Path(__file__).parent / "fixtures" / "bounces"
MESSAGES = ["hard_user_unknown.eml", "soft_mailbox_busy.eml", "two_recipients.eml", "auto_reply.eml"]


def message(name: str) -> email.message.Message:
    return email.message_from_bytes((FIXTURES / name).read_bytes())


@pytest.fixture
def store(tmp_path: Path) -> SubscriberStore:
    folder = tmp_path / "subscribers"
    folder.mkdir()
    path = folder / "news.csv"
    path.write_text(
        "email,name,status\nalice@example.org,Alice,active\nbob@example.org,Bob,active\n"
        "carol@example.org,Carol,active\ndan@example.org,Dan,active\n"
    )
    return SubscriberStore(path)


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
    assert [(b.recipient, b.status, b.is_hard) for b in found] == [
        ("carol@example.org", "5.2.1", True),
        ("nobody@example.org", "5.1.1", True),
    ]


def test_a_delay_is_soft_and_an_auto_reply_is_no_report() -> None:
    assert [b.is_hard for b in bounces_in(message("soft_mailbox_busy.eml"))] == [False]
    assert bounces_in(message("auto_reply.eml")) is None


def test_hard_bounces_in_a_maildir_mark_addresses_bounced(store: SubscriberStore, maildir: Path) -> None:
    report = apply_bounces(store, read_messages(maildir=maildir))
    assert (report.messages, report.hard, report.soft, report.not_reports) == (4, 3, 1, 1)
    assert sorted(report.marked) == ["Bob@Example.org", "carol@example.org"]
    assert report.unknown == ["nobody@example.org"]
    statuses = {s.email: s.status for s in store.read()}
    assert statuses == {
        "alice@example.org": "active",
        "bob@example.org": "bounced",
        "carol@example.org": "bounced",
        "dan@example.org": "active",
    }


def test_running_again_changes_nothing(store: SubscriberStore, maildir: Path) -> None:
    apply_bounces(store, read_messages(maildir=maildir))
    before = store.path.read_bytes()
    report = apply_bounces(store, read_messages(maildir=maildir))
    assert report.marked == [] and sorted(report.already) == ["Bob@Example.org", "carol@example.org"]
    assert store.path.read_bytes() == before


def test_bounces_command_reads_an_mbox(
    store: SubscriberStore, mbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["subscribers", "bounces", "--mbox", str(mbox), "--list", "news"])
    assert result.exit_code == 0
    assert result.stdout == (
        "bounced: Bob@Example.org\nbounced: carol@example.org\n"
        "4 messages, 3 hard and 1 soft bounces, 2 marked bounced, 0 already bounced or unsubscribed, "
        "1 not on the list, 1 not delivery reports\n"
    )
    assert result.stderr == "not on news: nobody@example.org\n"


def test_bounces_command_needs_exactly_one_mailbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["subscribers", "bounces"])
    assert result.exit_code == 2 and "pass exactly one of --maildir and --mbox" in result.stderr


def test_a_folder_that_is_not_a_maildir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SubscriberError, match="is not a Maildir"):
        list(read_messages(maildir=tmp_path))


def test_a_forwarded_address_is_matched_by_its_original_recipient(store: SubscriberStore) -> None:
    found = bounces_in(message("forwarded_global.eml"))
    assert [(b.recipient, b.original, b.is_hard) for b in found] == [
        ("dan.old@forward.example.net", "dan@example.org", True)
    ]
    report = apply_bounces(store, [message("forwarded_global.eml")])
    assert report.marked == ["dan@example.org"] and report.unknown == []
    assert store.get("dan@example.org").status == "bounced"
