"""Outside text is defused by one rule per kind of output: one line of text, a spreadsheet cell."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from helpers.signup_site import outbox, text_part
from helpers.uvicorn_thread import serving
from helpers.web_reader import sign_up_and_confirm

from newsletter.cli import main
from newsletter.delivery.smtp import Reply
from newsletter.mail.compose import header_text, mailbox
from newsletter.mail.notices import Notice, NoticeComposer
from newsletter.models import Subscriber
from newsletter.pipeline import report
from newsletter.pipeline.report import IssueReport, Undelivered, build_report
from newsletter.settings import Settings, load_settings
from newsletter.statuses import DeliveryStatus, IssueOutcome, ReplyClass
from newsletter.store.history import LedgerRow
from newsletter.subscribers import open_list, stats
from newsletter.text import one_line
from newsletter.web.app import create_app

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
@pytest.mark.parametrize(
    ("start", "shown"),
    [("=", "'="), ("+", "'+"), ("-", "'-"), ("@", "'@"), ("\t=", "' ="), ("\r=", "' ="), ("\u202e=", "'=")],
    ids=ascii,
)
def test_every_csv_for_spreadsheets_shows_a_formula_as_text_without_controls(
    cell: Callable[[str], str], start: str, shown: str
) -> None:
    assert cell(f"{start}HYPERLINK(1)") == f"{shown}HYPERLINK(1)"
    assert cell("550 plain") == "550 plain"


# --- a reader's own text, through the real commands and the real `serve` (issue 22, row 16) --

SECRET = "scrubbing-test-secret-Zq7mW4xR8vB1nT6kP3yH"
# What the attack saved through /manage: a name that displays reversed, keywords that colour a terminal.
NAME = "Ada\u202etxt.exe"
KEYWORDS = "diffusion\x1b[31m; speech\u2069\x9b"
CLEAN_NAME, CLEAN_KEYWORDS = "Adatxt.exe", ["diffusion [31m", "speech"]
UNSAFE = set(CONTROLS) - {"\n", "\r"} | set(BIDI)


def listed(email: str) -> dict[str, object]:
    """The reader as `subscribers list --json` shows them."""
    result = CliRunner().invoke(main, ["subscribers", "list", "--json"])
    assert result.exit_code == 0, result.output
    return next(row for row in json.loads(result.stdout) if row["email"] == email)


def test_a_web_sign_up_stores_no_control_or_bidi_character(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    with (
        serving(create_app(load_settings(project / "newsletter.toml"))) as base,
        httpx.Client(base_url=base) as browser,
    ):
        sign_up_and_confirm(browser, project, "ada@example.net", NAME, KEYWORDS)
    reader = listed("ada@example.net")
    assert (reader["name"], reader["keywords"], reader["status"]) == (CLEAN_NAME, CLEAN_KEYWORDS, "active")


@pytest.mark.parametrize("way", ["list file", "import"])
def test_a_list_file_and_an_import_store_no_control_or_bidi_character(project: Path, way: str) -> None:
    header = "email,name,keywords,status,subscribed_at,unsubscribed_at,note\n"
    row = f'eve@example.org,"{NAME}","{KEYWORDS}",active,,,\a\x1b]0;owned\a\n'
    if way == "list file":
        (project / "subscribers" / "example.csv").write_text(header + row)
    else:
        (project / "new.csv").write_text(header + row)
        assert CliRunner().invoke(main, ["subscribers", "import", "new.csv"]).exit_code == 0
    reader = listed("eve@example.org")
    assert (reader["name"], reader["keywords"]) == (CLEAN_NAME, CLEAN_KEYWORDS)
    assert reader["extra"] == {"note": " ]0;owned "}


def test_stored_control_and_bidi_characters_reach_no_export_listing_or_digest(project: Path) -> None:
    # A row stored before input was scrubbed: every output scrubs again.
    settings = load_settings(project / "newsletter.toml")
    shutil.rmtree(project / "subscribers")  # the list lives in the database only
    keywords = [k.strip() for k in KEYWORDS.split(";")]
    open_list(settings.places, "example").add(Subscriber("ada@example.net", name=NAME, keywords=keywords))
    runner = CliRunner()
    outputs = []
    for command in (
        ["export", "-o", "out.csv"],
        ["export", "-o", "raw.csv", "--raw"],
        ["list"],
        ["list", "--csv"],
    ):
        result = runner.invoke(main, ["subscribers", *command])
        assert result.exit_code == 0, result.output
        outputs.append(result.stdout)
    outputs += [(project / "out.csv").read_text(), (project / "raw.csv").read_text()]
    assert "1 sent" in runner.invoke(main, ["send"]).output
    [mail] = outbox(project)
    outputs += [mail.as_string(), text_part(mail)]
    assert [sorted(ascii(c) for c in UNSAFE if c in text) for text in outputs] == [[]] * len(outputs)
    assert "Hi Adatxt.exe," in text_part(mail) and "Adatxt.exe" in (project / "out.csv").read_text()
