"""`preview --issue ID --subscriber X`: what a reader was sent, rebuilt from the ledger."""

from __future__ import annotations

import email
import email.policy
import json
import mailbox
from email.message import EmailMessage
from html import unescape
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.deliveries import database, old_ledger

from newsletter.cli.app import main
from newsletter.store.deliveries import DeliveryLedger
from newsletter.store.history import deliveries_to, recorded_issues

ALICE = "alice@example.org"


def delivered(project: Path, address: str) -> EmailMessage:
    box = mailbox.Maildir(project / "outbox", create=False)
    for key in box.iterkeys():
        message = email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
        if address in str(message["To"]):
            assert isinstance(message, EmailMessage)
            return message
    raise AssertionError(f"nothing delivered to {address}")


def plain(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def replay(project: Path, *args: str) -> tuple[int, str, EmailMessage | None]:
    out = project / "replayed"
    result = CliRunner().invoke(main, ["preview", "--out", str(out), *args])
    emls = list(out.glob("*.eml")) if out.is_dir() else []
    message = email.message_from_bytes(emls[0].read_bytes(), policy=email.policy.default) if emls else None
    assert message is None or isinstance(message, EmailMessage)
    return result.exit_code, result.output, message


def test_preview_issue_after_send_reproduces_the_delivered_text_exactly(project: Path) -> None:
    sent = CliRunner().invoke(main, ["send"])
    assert sent.exit_code == 0, sent.output
    original = delivered(project, ALICE)

    # What would be sent today changes: the reader's topics and the templates are edited.
    csv = project / "subscribers" / "example.csv"
    csv.write_text(csv.read_text().replace("diffusion models; music generation", "robotics"))
    template = project / "templates" / "digest.txt"
    template.write_text("CHANGED SINCE\n" + template.read_text())

    code, output, rebuilt = replay(project, "--issue", "2024-W11", "--subscriber", ALICE)
    assert code == 0, output
    assert rebuilt is not None
    assert plain(rebuilt) == plain(original)
    assert rebuilt["Message-ID"] == original["Message-ID"]
    assert rebuilt["Subject"] == original["Subject"]
    assert "The templates changed since this issue was sent" in output
    assert "CHANGED SINCE" not in plain(rebuilt)


def test_the_ledger_keeps_each_readers_papers_topics_and_the_issue_snapshot(project: Path) -> None:
    assert CliRunner().invoke(main, ["send"]).exit_code == 0
    db = database(f"sqlite:///{project / 'newsletter.db'}")
    (record,) = deliveries_to(db, "2024-W11", "example", ALICE)
    reader = json.loads(record.reader or "{}")
    assert reader["keywords"] == ["diffusion models", "music generation"]
    assert set(reader["matched"]) <= set(record.papers) and len(record.papers) == 10
    assert DeliveryLedger(db, "2024-W11", "example", record.channel).snapshot() is not None
    assert [i.issue for i in recorded_issues(db, "example")] == ["2024-W11"]


def test_preview_issue_says_what_is_missing(project: Path) -> None:
    code, output, _ = replay(project, "--issue", "2024-W11", "--subscriber", ALICE)
    assert code == 1 and "Error: the ledger has no record of issue 2024-W11 for alice@example.org" in output
    assert CliRunner().invoke(main, ["send"]).exit_code == 0
    code, output, _ = replay(project, "--issue", "2024-W11")
    assert code == 1 and "can only be shown for a reader it was sent to" in output
    code, output, _ = replay(project, "--issue", "../x", "--subscriber", ALICE)
    assert code == 1 and "issue id '../x' is not allowed" in output


def test_a_ledger_from_before_snapshots_migrates_and_says_the_issue_cannot_be_rebuilt(project: Path) -> None:
    import sqlite3

    from newsletter.store import SCHEMA_VERSION

    path = project / "newsletter.db"
    sent = ("2024-W10", "example", ALICE, "outbox", "delivered", "1", "250 ok", "<x@example.org>")
    old_ledger(path, 1, (*sent, '["2403.00001"]', "2024-03-07T10:00:00+00:00"))
    code, output, _ = replay(project, "--issue", "2024-W10", "--subscriber", ALICE)
    assert code == 1 and "was sent before the ledger kept what messages are built from" in output
    (record,) = deliveries_to(database(f"sqlite:///{path}"), "2024-W10", "example", ALICE)
    assert record.reader is None and record.papers == ("2403.00001",)
    with sqlite3.connect(path) as db:  # the first use upgraded the file in place
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0] == 1
    db.close()


MIA = "mia@example.org"
# In the sample papers, the WMT translation system's teaser stops before the sentence that shows why
# it is about "multilingual": that sentence is quoted, chosen by the model when the issue was sent.
LANGUAGES = "As for language pairs, we scale the"


def test_a_sentence_quoted_by_meaning_is_kept_in_the_ledger_and_shown_again_by_a_replay(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv = project / "subscribers" / "example.csv"
    csv.write_text(csv.read_text() + f"{MIA},Mia,multilingual,active,2026-10-29T10:30:00+00:00,\n")
    # The paper is 0.42 from "multilingual", just under the default match floor (0.45): this test
    # is about the ledger keeping the quote, so the floor lets it in.
    monkeypatch.setenv("NEWSLETTER_SELECTION__MATCH_COSINE", "0.4")
    sent = CliRunner().invoke(main, ["send"])
    assert sent.exit_code == 0, sent.output
    original = delivered(project, MIA)
    text = " ".join(plain(original).split())
    assert f"Closest in meaning, in the abstract: “{LANGUAGES}" in text
    html = original.get_body(("html",))
    assert html is not None and f"“{LANGUAGES}" in unescape(str(html.get_content()))
    (record,) = deliveries_to(database(f"sqlite:///{project / 'newsletter.db'}"), "2024-W11", "example", MIA)
    quoted = json.loads(record.reader or "{}")["quoted"]
    assert [q[: len(LANGUAGES)] for q in quoted.values()] == [LANGUAGES]

    # The replay reads the sentence from the ledger: it needs no model, even with meaning switched off.
    monkeypatch.setenv("NEWSLETTER_SELECTION__SEMANTIC_WEIGHT", "0")
    code, output, rebuilt = replay(project, "--issue", "2024-W11", "--subscriber", MIA)
    assert code == 0, output
    assert rebuilt is not None
    assert plain(rebuilt) == plain(original)
    again = rebuilt.get_body(("html",))
    assert again is not None and unescape(str(again.get_content())).count(f"“{LANGUAGES}") == 1


def test_a_digest_filled_with_popular_papers_is_replayed_with_its_section(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = "ray@example.org"
    csv = project / "subscribers" / "example.csv"
    csv.write_text(csv.read_text() + f"{reader},Ray,passage ranking,active,2026-10-29T10:30:00+00:00,\n")
    monkeypatch.setenv("NEWSLETTER_SELECTION__FILLER", "popular")
    sent = CliRunner().invoke(main, ["send"])
    assert sent.exit_code == 0, sent.output
    original = plain(delivered(project, reader))
    assert "== Popular this week ==" in original
    assert original.index("Why: Matches your keywords: passage ranking.") < original.index("== Popular")

    monkeypatch.delenv("NEWSLETTER_SELECTION__FILLER")  # the ledger, not today's setting, says so
    code, output, rebuilt = replay(project, "--issue", "2024-W11", "--subscriber", reader)
    assert code == 0, output
    assert rebuilt is not None and plain(rebuilt) == original
