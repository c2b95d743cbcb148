"""Signed VERP return paths: each message's MAIL FROM names its delivery, and bounces sent back
there count even when they quote nothing of the message; forged or altered tokens never do."""

from __future__ import annotations

import mailbox
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers.bounces import bounce_run, send, statuses
from helpers.dsn import dsn
from helpers.smtp_servers import LoopbackServer, RecordingHandler, write_config, write_subscribers

from newsletter.cli import main
from newsletter.errors import ConfigError
from newsletter.mail.tokens import Purpose, TokenSigner
from newsletter.mail.verp import delivery_key, opened_key
from newsletter.pipeline.send import SendOptions, run_send
from newsletter.settings import load_settings

SECRET = "test-secret-Zq7mW4xR8vB1nT6kP3yH-0123456789"  # the one write_config sets
VERP = re.compile(r"bounces\+b-([a-z2-7]{40})@example\.org")


@pytest.fixture
def readers(tmp_path: Path) -> list[str]:
    return write_subscribers(tmp_path / "subscribers" / "test.csv", 4)


def test_each_message_goes_out_from_its_own_signed_return_path(tmp_path: Path, readers: list[str]) -> None:
    received = send(tmp_path, {"bounce_address": "bounces@example.org"}).received
    assert sorted(item.recipient for item in received) == readers
    signer = TokenSigner(SECRET)
    for item in received:
        match = VERP.fullmatch(item.mail_from)
        assert match, item.mail_from
        assert len(item.mail_from.split("@")[0]) <= 64  # RFC 5321's limit on a local part
        assert item.recipient.split("@")[0] not in item.mail_from  # no address in clear
        assert opened_key(signer, match.group(1)) == delivery_key(item.message_id)
        assert b"\r\nReturn-Path:" not in item.data and not item.data.startswith(b"Return-Path:")
    assert len({item.mail_from for item in received}) == len(readers)


@pytest.mark.parametrize(
    ("sender", "expected"),
    [
        ({}, "digest@example.org"),  # nothing configured: exactly as before VERP existed
        ({"bounce_address": "bounces@example.org", "verp": False}, "bounces@example.org"),
        ({"verp": False}, "digest@example.org"),
    ],
)
def test_with_verp_off_the_envelope_sender_is_the_configured_address(
    tmp_path: Path, readers: list[str], sender: dict[str, Any], expected: str
) -> None:
    assert {item.mail_from for item in send(tmp_path, sender).received} == {expected}


def test_verp_on_without_a_bounce_address_signs_the_from_address(tmp_path: Path, readers: list[str]) -> None:
    senders = {item.mail_from for item in send(tmp_path, {"verp": True}).received}
    assert len(senders) == len(readers)
    assert all(re.fullmatch(r"digest\+b-[a-z2-7]{40}@example\.org", s) for s in senders)


def test_a_bounce_address_too_long_for_a_token_is_a_one_line_error(
    tmp_path: Path, readers: list[str]
) -> None:
    long_address = "a-very-long-bounce-mailbox-name@example.org"
    settings = load_settings(write_config(tmp_path, port=9, sender={"bounce_address": long_address}))
    with pytest.raises(ConfigError, match="too long for a VERP return path") as caught:
        run_send(settings, SendOptions())
    assert "sender.verp = false" in str(caught.value.fix)


def test_the_embedded_outbox_files_the_return_path_as_final_delivery_does(project: Path) -> None:
    result = CliRunner().invoke(
        main, ["send"], env={"NEWSLETTER_SENDER__BOUNCE_ADDRESS": "bounces@localhost"}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    box = mailbox.Maildir(project / "outbox", factory=None, create=False)
    firsts = [box.get_bytes(key).split(b"\n", 1)[0].strip() for key in box.iterkeys()]
    assert firsts and all(
        re.fullmatch(rb"Return-Path: <bounces\+b-[a-z2-7]{40}@localhost>", f) for f in firsts
    )


# --- bounce processing ------------------------------------------------------------------------


@pytest.fixture
def sent(tmp_path: Path, readers: list[str]) -> dict[str, str]:
    """Issue 2024-W11 sent to every reader with VERP on: reader -> its envelope sender."""
    received = send(tmp_path, {"bounce_address": "bounces@example.org"})
    return {item.recipient: item.mail_from for item in received.received}


def test_a_report_quoting_no_message_id_counts_by_its_token(
    tmp_path: Path, readers: list[str], sent: dict[str, str]
) -> None:
    first, second, third = readers[:3]
    reports = [
        dsn(first, to=sent[first]),  # the To: of a bounce is our envelope sender
        # Exchange after a forward: names only the address it forwarded to; Delivered-To keeps ours
        dsn("someone@elsewhere.example", to="bounces@example.org", headers=(("Delivered-To", sent[second]),)),
        # a server that folds the case of local parts, and X-Original-To from Postfix
        dsn(third, to="bounces@example.org", headers=(("X-Original-To", sent[third].upper()),)),
    ]
    out, err = bounce_run(tmp_path, reports)
    assert sorted(re.findall(r"bounced: (\S+)", out)) == sorted([first, second, third])
    assert "ignored" not in err
    assert [statuses(tmp_path)[r] for r in readers] == ["bounced", "bounced", "bounced", "active"]


def tampered(address: str) -> str:
    local, domain = address.split("@")
    last = "a" if local[-1] != "a" else "b"
    return f"{local[:-1]}{last}@{domain}"


def test_forged_tampered_and_foreign_tokens_are_ignored_with_the_reason(
    tmp_path: Path, readers: list[str], sent: dict[str, str]
) -> None:
    first, second, third, fourth = readers
    forged = (
        "bounces+b-"
        + TokenSigner("another-secret-of-at-least-32-chars-xx").seal(
            Purpose.BOUNCE, bytes.fromhex(delivery_key(_message_id(tmp_path, first)) or "")
        )
        + "@example.org"
    )
    never_sent = TokenSigner(SECRET).seal(Purpose.BOUNCE, bytes(9))  # our key, no delivery of ours
    reports = [
        dsn(first, to=forged),
        dsn(second, to=tampered(sent[second])),
        dsn(third, to=f"bounces+b-{never_sent}@example.org"),
        dsn(fourth, to="bounces+b-" + "a" * 40 + "@example.org"),
    ]
    out, err = bounce_run(tmp_path, reports)
    assert "bounced:" not in out
    assert sorted(err.splitlines()) == [  # a Maildir has no order
        f"ignored: {first}: the report carries a VERP token that is not ours (forged or altered)",
        f"ignored: {second}: the report carries a VERP token that is not ours (forged or altered)",
        f"ignored: {third}: the report carries a VERP token of a delivery the ledger does not have",
        f"ignored: {fourth}: the report carries a VERP token that is not ours (forged or altered)",
    ]
    assert set(statuses(tmp_path).values()) == {"active"}


def test_a_token_of_another_issue_counts_only_for_the_reader_it_was_sent_to(
    tmp_path: Path, readers: list[str], sent: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = readers[:2]
    # A second issue over the same sample week: the first reader's matches all went out in W11,
    # so only the popular filler gives them a message in W10 (a short digest is empty here).
    monkeypatch.setenv("NEWSLETTER_SELECTION__FILLER", "popular")
    earlier = send(tmp_path, {"bounce_address": "bounces@example.org"}, issue="2024-W10").received
    old = {item.recipient: item.mail_from for item in earlier}
    assert old[first] != sent[first]  # a token per delivery, not per reader
    # two readers in one report: the first's old token cannot vouch for the second's bounce
    out, err = bounce_run(
        tmp_path, [dsn(first, to=old[first]), dsn(second, to=old[first], extra_recipients=(first,))]
    )
    assert re.findall(r"bounced: (\S+)", out) == [first]
    assert err.splitlines() == [
        f"ignored: {second}: the report names {second}, but the delivery it is about went to {first}"
    ]


def _message_id(folder: Path, reader: str) -> str:
    with sqlite3.connect(folder / "newsletter.db") as db:
        return str(db.execute("SELECT message_id FROM deliveries WHERE email = ?", (reader,)).fetchone()[0])


def test_a_sealed_token_opens_for_its_purpose_only_and_survives_a_secret_rotation() -> None:
    old = TokenSigner("old-secret-Zq7mW4xR8vB1nT6kP3yH-0123456789")
    token = old.seal(Purpose.BOUNCE, bytes.fromhex("00112233445566778899"[:18]))
    rotated = TokenSigner("new-secret-Zq7mW4xR8vB1nT6kP3yH-0123456789", [old.secret])
    assert opened_key(rotated, token) == "001122334455667788"
    assert opened_key(rotated, token.upper()) == "001122334455667788"
    assert rotated.unseal(token, Purpose.UNSUBSCRIBE) is None
    assert opened_key(TokenSigner("new-secret-Zq7mW4xR8vB1nT6kP3yH-0123456789"), token) is None


@pytest.mark.parametrize(
    ("sender", "ok", "says"),
    [
        ({}, True, "MAIL FROM digest@example.org (no VERP: only reports that quote the Message-ID count)"),
        ({"bounce_address": "bounces@example.org"}, True, "MAIL FROM bounces+b-<signed token>@example.org"),
        ({"bounce_address": "a-very-long-bounce-mailbox-name@example.org"}, False, "too long for a VERP"),
    ],
)
def test_doctor_says_where_bounces_go(tmp_path: Path, sender: dict[str, Any], ok: bool, says: str) -> None:
    from newsletter.doctor import check_return_path

    check = check_return_path(load_settings(write_config(tmp_path, sender=sender)))
    assert check.ok is ok and says in check.line()


def test_a_one_off_notice_goes_out_from_the_bounce_address(tmp_path: Path) -> None:
    import asyncio

    from newsletter.delivery.oneoff import OneOffSender
    from newsletter.mail.compose import ComposedMessage

    with LoopbackServer() as server:
        settings = load_settings(
            write_config(tmp_path, port=server.port, sender={"bounce_address": "bounces@example.org"})
        )
        message = ComposedMessage.of(
            "<n.1@example.org>", "new@example.com", b"Subject: confirm\r\n\r\nhi\r\n"
        )
        reply = asyncio.run(OneOffSender(settings).send(message))
    assert reply.code == 250
    assert isinstance(server.handler, RecordingHandler)
    assert [item.mail_from for item in server.handler.received] == ["bounces@example.org"]


@pytest.mark.parametrize("route", ["message-id", "verp"])
def test_a_report_about_ones_own_digest_naming_other_readers_marks_none_of_them(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, route: str
) -> None:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    readers = write_subscribers(tmp_path / "subscribers" / "test.csv", 5)
    received = send(tmp_path, {"bounce_address": "bounces@example.org"}).received
    mine = next(item for item in received if item.recipient == readers[0])
    others = readers[1:]
    # the reader writes the report herself: her own digest's id or return path, four blocks each
    # with her as Original-Recipient and another reader as Final-Recipient
    by_id = route == "message-id"
    report = dsn(
        others[0],
        extra_recipients=tuple(others[1:]),
        original=readers[0],
        returned_id=mine.message_id if by_id else None,
        to="digest@example.org" if by_id else mine.mail_from,
    )
    out, err = bounce_run(tmp_path, [report])
    assert "bounced:" not in out
    assert set(statuses(tmp_path).values()) == {"active"}
    assert sorted(err.splitlines()) == [
        f"ignored: {other}: the report names {other}, but the delivery it is about went to {readers[0]}"
        for other in others
    ]
