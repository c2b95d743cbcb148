"""Outside text is defused by one rule per kind of output: one line of text, a spreadsheet cell."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

import pytest

from newsletter.delivery.smtp import Reply
from newsletter.mail.compose import header_text, mailbox
from newsletter.mail.notices import Notice, NoticeComposer
from newsletter.models import Subscriber
from newsletter.pipeline import report
from newsletter.pipeline.report import IssueReport, Undelivered, build_report
from newsletter.settings import Settings
from newsletter.statuses import DeliveryStatus, IssueOutcome, ReplyClass
from newsletter.store.history import LedgerRow
from newsletter.subscribers import stats
from newsletter.text import one_line

# Every C0 control (tab, LF and CR among them), DEL, every C1 control, the Unicode line and
# paragraph separators: each folds to a space.
CONTROLS = [chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]] + ["\u2028", "\u2029"]
# Every bidi control: each is dropped (a space would still be a visible change of the text).
BIDI = ["\u061c", "\u200e", "\u200f", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))]


def a_header(text: str) -> str:
    return header_text(text)


def a_display_name(text: str) -> str:
    return mailbox(text, "reader@example.org").removesuffix(" <reader@example.org>").strip('"')


def a_notice_subject(text: str) -> str:
    subject = NoticeComposer(Settings(title=text)).subject(Notice("reader@example.org", manage_url="x"))
    return subject.removesuffix(": you are subscribed")


def a_report_reply(text: str) -> str:
    row = LedgerRow("reader@example.org", DeliveryStatus.FAILED, 1, text, "2026-12-01T10:00:00+00:00")
    return build_report("2026-W49", "news", "smtp", [row], {}).problems[0].last_reply


def a_reply_in_an_error(text: str) -> str:
    return str(Reply(ReplyClass.PERMANENT, 550, text)).removeprefix("550 ")


SCRUBBERS: list[Callable[[str], str]] = [
    one_line,
    a_header,
    a_display_name,
    a_notice_subject,
    a_report_reply,
    a_reply_in_an_error,
]


@pytest.mark.parametrize("scrub", SCRUBBERS, ids=lambda scrub: scrub.__name__)
@pytest.mark.parametrize("char", CONTROLS + BIDI, ids=lambda char: f"U+{ord(char):04X}")
def test_one_line_text_has_no_control_break_or_bidi_character(scrub: Callable[[str], str], char: str) -> None:
    assert scrub(f"Digest{char}Team") == ("DigestTeam" if char in BIDI else "Digest Team")


@pytest.mark.parametrize("scrub", SCRUBBERS, ids=lambda scrub: scrub.__name__)
def test_a_run_of_controls_is_one_space_and_the_ends_are_trimmed(scrub: Callable[[str], str]) -> None:
    assert scrub("\r\n Digest\r\n\t\u202eTeam\x00\n") == "Digest Team"


def an_exported_name(text: str) -> str:
    out = io.StringIO(newline="")
    stats.write_csv(["email", "name"], [Subscriber("ada@example.org", name=text)], out)
    return next(csv.DictReader(io.StringIO(out.getvalue(), newline="")))["name"]


def a_reported_reply(text: str) -> str:
    problem = Undelivered("ada@example.org", IssueOutcome.FAILED, 1, text, "2026-12-01T10:00:00+00:00")
    out = io.StringIO(newline="")
    report.write_csv(IssueReport("2026-W49", "news", "smtp", problems=[problem]), out)
    return next(csv.DictReader(io.StringIO(out.getvalue(), newline="")))["last_reply"]


@pytest.mark.parametrize("cell", [an_exported_name, a_reported_reply], ids=lambda cell: cell.__name__)
@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"], ids=ascii)
def test_every_csv_for_spreadsheets_shows_a_formula_as_text(cell: Callable[[str], str], start: str) -> None:
    assert cell(f"{start}HYPERLINK(1)") == f"'{start}HYPERLINK(1)"
    assert cell("550 plain") == "550 plain"
