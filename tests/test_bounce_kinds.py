"""What comes back besides bounces: auto-replies change nothing, spam or policy blocks (5.7.x)
mark a reader only when they repeat, spam complaints (ARF) unsubscribe at once; each message
read lands in exactly one category of the summary."""

from __future__ import annotations

import email
import json
import re
from email.message import Message
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.bounces import bounce_run, send, statuses
from helpers.dsn import arf, dsn
from helpers.lists import store_of
from helpers.smtp_servers import write_subscribers

from newsletter.cli import main

BOUNCES = {"bounce_address": "bounces@example.org"}


def reply(to: str, headers: str, subject: str) -> Message:
    """A message sent back to a digest's return path by the reader's mail program, not by a server."""
    return email.message_from_string(
        f"From: Reader <reader0000@example.com>\r\nTo: {to}\r\n{headers}Subject: {subject}\r\n\r\n"
        "I am away until Monday: this mailbox is unavailable, your message will be read later.\r\n"
    )


def summary_counts(out: str) -> dict[str, int]:
    """The category counts of the summary line."""
    line = out.splitlines()[-1]
    return {
        name: int(n)
        for n, name in re.findall(r"(\d+) (hard|soft|complaints|auto-replies|not ours|not understood)", line)
    }


@pytest.mark.parametrize(
    ("headers", "subject"),
    [
        ("Auto-Submitted: auto-replied\r\n", "Re: Test Digest"),
        ("X-Autoreply: yes\r\n", "Re: Test Digest"),
        ("Precedence: auto_reply\r\n", "Re: Test Digest"),
        ("Precedence: bulk\r\n", "Re: Test Digest"),
        ("", "Out of Office: back on Monday"),
        ("", "Automatic reply: Test Digest"),
        ("", "Vacation"),
        ("", "Please confirm your message to reader0000@example.com"),  # challenge-response
    ],
)
def test_auto_replies_at_a_genuine_return_path_are_counted_as_such_and_mark_nobody(
    tmp_path: Path, headers: str, subject: str
) -> None:
    readers = write_subscribers(tmp_path / "subscribers" / "test.csv", 2)
    paths = {item.recipient: item.mail_from for item in send(tmp_path, BOUNCES).received}
    out, _ = bounce_run(tmp_path, [reply(paths[readers[0]], headers, subject)])
    assert summary_counts(out) == {
        "hard": 0,
        "soft": 0,
        "complaints": 0,
        "auto-replies": 1,
        "not ours": 0,
        "not understood": 0,
    }
    assert set(statuses(tmp_path).values()) == {"active"}


def test_a_policy_block_marks_a_reader_only_once_blocks_of_as_many_messages_as_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_BOUNCES__POLICY_BLOCKS_TO_MARK", "2")
    # A second issue over the same sample week has no new matches: popular papers fill it.
    monkeypatch.setenv("NEWSLETTER_SELECTION__FILLER", "popular")
    reader, other = write_subscribers(tmp_path / "subscribers" / "test.csv", 2)
    first = {i.recipient: i.mail_from for i in send(tmp_path, BOUNCES, issue="2024-W10").received}
    blocked = dsn(reader, to=first[reader], status="5.7.1")
    out, _ = bounce_run(tmp_path, [blocked])
    assert statuses(tmp_path)[reader] == "active"
    assert "(1 policy blocks" in out and summary_counts(out)["soft"] == 1
    out, _ = bounce_run(tmp_path, [dsn(reader, to=first[reader], status="5.7.1", headers=(("X-Try", "2"),))])
    assert statuses(tmp_path)[reader] == "active"  # another report of the same message: one block
    second = {i.recipient: i.mail_from for i in send(tmp_path, BOUNCES, issue="2024-W11").received}
    out, _ = bounce_run(tmp_path, [dsn(reader, to=second[reader], status="5.7.1")])
    assert f"bounced: {reader}" in out
    assert statuses(tmp_path) == {reader: "bounced", other: "active"}


@pytest.mark.parametrize("route", ["quoted Return-Path", "quoted Message-ID", "VERP envelope"])
def test_a_spam_complaint_unsubscribes_the_reader_at_once(tmp_path: Path, route: str) -> None:
    reader, other = write_subscribers(tmp_path / "subscribers" / "test.csv", 2)
    mine = next(i for i in send(tmp_path, BOUNCES).received if i.recipient == reader)
    returned = (
        mine.data
        if route != "quoted Return-Path"
        else f"Return-Path: <{mine.mail_from}>\r\n".encode() + mine.data
    )
    if route == "quoted Return-Path":  # only the token vouches: the quoted Message-ID is gone
        returned = re.sub(rb"(?im)^Message-ID:[^\r\n]*\r\n", b"", returned)
    complaint = arf(returned, to=mine.mail_from if route == "VERP envelope" else "bounces@example.org")
    out, err = bounce_run(tmp_path, [complaint])
    assert f"unsubscribed (complaint): {reader}" in out, (out, err)
    assert summary_counts(out)["complaints"] == 1
    assert statuses(tmp_path) == {reader: "unsubscribed", other: "active"}
    barred = store_of(tmp_path / "subscribers" / "test.csv").suppression(reader)
    assert barred is not None


def test_a_complaint_about_no_message_of_ours_unsubscribes_nobody(tmp_path: Path) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 2)
    send(tmp_path, BOUNCES)
    forged = arf(
        b"From: someone@example.net\r\nTo: reader0000@example.com\r\nMessage-ID: <x@example.net>\r\n\r\n"
    )
    out, err = bounce_run(tmp_path, [forged])
    assert summary_counts(out)["not ours"] == 1 and "ignored" in err
    assert set(statuses(tmp_path).values()) == {"active"}


def test_report_lists_the_bounces_and_complaints_per_reader_with_the_reason(tmp_path: Path) -> None:
    gone, full, complainer, fine = write_subscribers(tmp_path / "subscribers" / "test.csv", 4)
    received = {i.recipient: i for i in send(tmp_path, BOUNCES).received}
    bounce_run(
        tmp_path,
        [
            dsn(gone, to=received[gone].mail_from),
            dsn(full, to=received[full].mail_from, status="4.2.2", action="delayed"),
            arf(received[complainer].data, to=received[complainer].mail_from),
        ],
    )
    result = CliRunner().invoke(main, ["--config", str(tmp_path / "newsletter.toml"), "report"])
    assert result.exit_code == 0, result.output
    listed = result.stdout.split("Bounces and complaints", 1)[1].splitlines()
    assert listed[0] == " (3 from 3 readers):"
    assert [line.split()[:2] for line in listed[1:]] == [
        [gone, "hard"],
        [full, "soft"],
        [complainer, "complaint"],
    ]
    assert "5.1.1" in listed[1] and "4.2.2" in listed[2] and "spam complaint (abuse" in listed[3]
    assert fine not in result.stdout
    as_json = json.loads(
        CliRunner().invoke(main, ["--config", str(tmp_path / "newsletter.toml"), "report", "--json"]).stdout
    )
    assert [(b["email"], b["kind"]) for b in as_json["bounces"]] == [
        (gone, "hard"),
        (full, "soft"),
        (complainer, "complaint"),
    ]
