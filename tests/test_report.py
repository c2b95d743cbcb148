"""`newsletter report` and the send summary say who did not get an issue, and why."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from helpers.lists import store_of
from helpers.smtp_servers import LoopbackServer, Received, RecordingHandler, write_config, write_subscribers

from newsletter.cli import main
from newsletter.statuses import SubscriberStatus

REFUSED = "550 5.1.1 <reader0001@example.com>: Recipient address rejected"


def plan(recipient: str, tries: int) -> str | None:
    if recipient == "reader0001@example.com":
        return REFUSED
    if recipient == "reader0002@example.com":
        return "451 4.7.1 greylisted, try again later"
    return None


def run(folder: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(folder / "newsletter.toml"), *args])


def send_with_problems(folder: Path, **config: Any) -> Result:
    write_subscribers(folder / "subscribers" / "test.csv", 6)
    with LoopbackServer(RecordingHandler(plan=plan)) as server:
        write_config(folder, port=server.port, max_attempts=2, **config)
        return run(folder, "send", "--json")


def test_send_json_names_the_failed_and_deferred_with_the_servers_reply(tmp_path: Path) -> None:
    result = send_with_problems(tmp_path)
    report = json.loads(result.stdout)
    assert result.exit_code == 75
    assert (report["sent"], report["failed"], report["deferred"]) == (4, 1, 1)
    assert report["not_delivered_total"] == 2
    by_address = {p["email"]: p for p in report["not_delivered"]}
    assert by_address["reader0001@example.com"]["outcome"] == "failed"
    assert by_address["reader0001@example.com"]["last_reply"] == REFUSED
    assert by_address["reader0001@example.com"]["attempts"] == 1
    assert by_address["reader0002@example.com"]["outcome"] == "deferred"
    assert by_address["reader0002@example.com"]["attempts"] == 2
    assert "451 4.7.1 greylisted" in by_address["reader0002@example.com"]["last_reply"]


def test_the_summary_line_says_how_to_see_them(tmp_path: Path) -> None:
    send_with_problems(tmp_path)
    with LoopbackServer(RecordingHandler(plan=plan)) as server:
        write_config(tmp_path, port=server.port, max_attempts=1)
        result = run(tmp_path, "send")
    assert result.exit_code == 75
    assert result.stdout.rstrip().endswith("See who and why: newsletter report --issue 2024-W11 --list test")
    assert "2 did not get the issue: see who and why with `newsletter report" in result.stderr


def test_report_counts_outcomes_and_lists_every_problem(tmp_path: Path) -> None:
    send_with_problems(tmp_path)
    store = store_of(tmp_path / "subscribers" / "test.csv")
    store.set_status("reader0003@example.com", SubscriberStatus.BOUNCED)  # bounce processing after the run
    store.unsubscribe("reader0004@example.com")  # delivered before: still delivered
    result = run(tmp_path, "report")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        "Issue 2024-W11 to list 'test' (smtp): 3 delivered, 1 failed, 1 deferred, 0 in flight,"
        " 1 bounced, 0 unsubscribed during the run"
    )
    assert lines[1].split() == ["failed", "reader0001@example.com", "1", "attempt", *REFUSED.split()]
    assert lines[2].split()[:4] == ["deferred", "reader0002@example.com", "2", "attempts"]
    assert lines[3].split()[:2] == ["bounced", "reader0003@example.com"]
    assert len(lines) == 4


def test_report_json_and_csv_have_the_same_rows(tmp_path: Path) -> None:
    send_with_problems(tmp_path)
    as_json = json.loads(run(tmp_path, "report", "--issue", "2024-W11", "--json").output)
    rows = list(csv.DictReader(io.StringIO(run(tmp_path, "report", "--csv").output)))
    assert as_json["counts"]["delivered"] == 4 and as_json["problems_total"] == 2
    assert [(r["email"], r["outcome"], r["last_reply"]) for r in rows] == [
        (p["email"], p["outcome"], p["last_reply"]) for p in as_json["problems"]
    ]


def test_someone_who_unsubscribes_during_the_run_is_named(tmp_path: Path) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 6)
    store = store_of(tmp_path / "subscribers" / "test.csv")

    def leave_at_the_fourth(item: Received) -> None:
        if item.recipient == "reader0003@example.com":  # after the first replies are on disk
            store.unsubscribe("reader0005@example.com")

    handler = RecordingHandler(on_message=leave_at_the_fourth, delay=0.1)
    with LoopbackServer(handler) as server:
        write_config(tmp_path, port=server.port, connections=1)
        sent = json.loads(run(tmp_path, "send", "--json").stdout)
    report = json.loads(run(tmp_path, "report", "--json").output)
    assert "reader0005@example.com" not in handler.recipients()
    assert sent["unsubscribed"] == 1 and sent["not_delivered"][0]["email"] == "reader0005@example.com"
    assert report["counts"]["unsubscribed during the run"] == 1


def test_the_log_file_names_them(tmp_path: Path) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 6)
    with LoopbackServer(RecordingHandler(plan=plan)) as server:
        config = write_config(tmp_path, port=server.port, max_attempts=1)
        config.write_text('log_file = "send.log"\n' + config.read_text(encoding="utf-8"), encoding="utf-8")
        run(tmp_path, "send")
    log = (tmp_path / "send.log").read_text(encoding="utf-8")
    assert f"failed: reader0001@example.com (1 attempt): {REFUSED}" in log
    assert "deferred: reader0002@example.com (1 attempt): 451 4.7.1 greylisted" in log


def test_report_before_any_send_is_one_error_line(tmp_path: Path) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 2)
    write_config(tmp_path)
    result = run(tmp_path, "report")
    assert result.exit_code == 1
    assert result.output.startswith("Error: nothing was sent to list 'test' (smtp) yet")
    assert result.output.count("\n") == 1


def test_the_report_drops_direction_marks_from_a_servers_reply(tmp_path: Path) -> None:
    # U+200F, U+061C and U+200E reorder what a terminal or a spreadsheet shows ("txt.exe" as "exe.txt").
    reply = "550 5.1.1 \u200fmailbox\u061c unknown\u200e here"

    def refuse_one(recipient: str, tries: int) -> str | None:
        return reply if recipient == "reader0001@example.com" else None

    write_subscribers(tmp_path / "subscribers" / "test.csv", 2)
    with LoopbackServer(RecordingHandler(plan=refuse_one), enable_SMTPUTF8=True) as server:
        write_config(tmp_path, port=server.port, max_attempts=1)
        run(tmp_path, "send")
    text = run(tmp_path, "report").output.splitlines()
    rows = list(csv.DictReader(io.StringIO(run(tmp_path, "report", "--csv").output)))
    assert text[1].endswith("  550 5.1.1 mailbox unknown here"), ascii(text[1])
    assert [r["last_reply"] for r in rows] == ["550 5.1.1 mailbox unknown here"]
