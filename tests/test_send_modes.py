"""The `send` command's modes and output: dry run, --to, --limit, --shard, --json, errors and exit codes."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers.smtp_servers import (
    LoopbackServer,
    RecordingHandler,
    closed_port,
    write_config,
    write_subscribers,
)

from newsletter.cli import main


def run_cli(folder: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(folder / "newsletter.toml"), "send", *args])


def ledger_statuses(folder: Path) -> set[str]:
    with sqlite3.connect(folder / "newsletter.db") as db:
        return {status for (status,) in db.execute("SELECT status FROM deliveries")}


def test_dry_run_composes_everyone_and_touches_no_network_and_no_files(tmp_path: Path) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 6, unsubscribed=(0,))
    write_config(tmp_path, host="embedded")
    result = run_cli(tmp_path, "--dry-run", "--json")
    report = json.loads(result.output)
    assert result.exit_code == 0, result.output
    assert report["composed"] == 5 and report["sent"] == 0 and report["dry_run"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["newsletter.toml", "subscribers"]


def test_dry_run_never_connects_even_to_a_real_server_setting(tmp_path: Path) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 3)
    write_config(tmp_path, port=closed_port())
    result = run_cli(tmp_path, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run: nothing sent, nothing recorded" in result.output and "3 composed" in result.output
    assert not (tmp_path / "newsletter.db").exists()


def test_summary_is_one_quiet_line_under_cron_and_json_has_the_counts(tmp_path: Path) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 4)
    with LoopbackServer() as server:
        write_config(tmp_path, port=server.port)
        first = run_cli(tmp_path)
        second = run_cli(tmp_path, "--json")
    assert first.exit_code == 0
    assert first.output.count("\n") == 1
    assert re.fullmatch(
        r"Issue 2024-W11 to list 'test' via 127\.0\.0\.1:\d+: 4 sent, 0 failed, "
        r"0 deferred, 0 already done in \d+\.\ds\.\n",
        first.output,
    )
    report = json.loads(second.output)
    assert {key: report[key] for key in ("issue", "list", "sent", "failed", "deferred", "skipped")} == {
        "issue": "2024-W11",
        "list": "test",
        "sent": 0,
        "failed": 0,
        "deferred": 0,
        "skipped": 4,
    }


def test_to_sends_one_digest_to_the_test_address_and_records_nothing(tmp_path: Path) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 4)
    with LoopbackServer() as server:
        write_config(tmp_path, port=server.port)
        result = run_cli(tmp_path, "--to", "editor@example.net")
        real = run_cli(tmp_path, "--json")
    assert result.exit_code == 0, result.output
    received = server.handler.received
    assert received[0].recipient == "editor@example.net"
    assert b"\r\nTo: editor@example.net\r\n" in received[0].data  # not under Reader 0's name
    assert b"Reader 0" not in received[0].data
    assert json.loads(real.output)["sent"] == 4  # the test copy counted for nobody
    real_ids = {item.message_id for item in received[1:]}
    assert received[0].message_id not in real_ids


@pytest.mark.parametrize(
    "address", ["not an address", "editor@", "editor@localhost", "rédacteur@exämple.org"]
)
def test_to_an_unusable_address_is_a_usage_error_before_anything_is_sent(
    tmp_path: Path, address: str
) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 4)
    with LoopbackServer() as server:
        write_config(tmp_path, port=server.port)
        result = run_cli(tmp_path, "--to", address)
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith(f"Error: Invalid value for '--to': '{address}'")
    assert "Warning" not in result.output
    assert server.handler.received == []


def test_an_issue_id_in_lower_case_is_the_issue_already_sent(tmp_path: Path) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 4)
    with LoopbackServer() as server:
        write_config(tmp_path, port=server.port)
        assert run_cli(tmp_path).exit_code == 0
        again = run_cli(tmp_path, "--issue", " 2024-w11", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["issue"] == "2024-W11"
    assert (json.loads(again.output)["sent"], json.loads(again.output)["skipped"]) == (0, 4)
    assert len(server.handler.received) == 4


@pytest.mark.parametrize("issue", ["banana", "2024-W99", "2024-W00", "2024-W53", "2024-02-30", "W11-2024"])
def test_an_issue_id_that_names_no_real_week_or_day_is_a_usage_error(tmp_path: Path, issue: str) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 2)
    write_config(tmp_path, host="embedded")
    result = run_cli(tmp_path, "--issue", issue)
    assert result.exit_code == 2
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert error.startswith(f"Error: Invalid value for '--issue': issue id '{issue}' names")
    assert "2026-W48" in error and "2026-11-28" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["newsletter.toml", "subscribers"]


def test_a_new_id_for_a_week_the_list_already_got_is_refused_unless_asked_for(tmp_path: Path) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 3)
    with LoopbackServer() as server:
        write_config(tmp_path, port=server.port)
        assert run_cli(tmp_path).exit_code == 0
        refused = run_cli(tmp_path, "--issue", "2024-W11-extra")
        dry = run_cli(tmp_path, "--issue", "2024-W11-extra", "--dry-run")
        other_week = run_cli(tmp_path, "--issue", "2024-W12-extra", "--dry-run")
        assert len(server.handler.received) == 3
        meant = run_cli(tmp_path, "--issue", "2024-W11-extra", "--another-issue", "--json")
    for result in (refused, dry):
        assert result.exit_code == 1
        assert result.output.startswith(
            "Error: list 'test' already got issue 2024-W11 (3 delivered), "
            "so 2024-W11-extra would be a second digest for 2024-W11, in "
        )
        assert result.output.endswith(
            "pass --issue 2024-W11 to resume that issue, or --another-issue to send 2024-W11-extra as well\n"
        )
    assert other_week.exit_code == 0, other_week.output
    sent = json.loads(meant.output)  # a reader whose papers the first issue had gets no mail
    assert sent["sent"] and sent["sent"] + sent["empty"] == 3
    assert len(server.handler.received) == 3 + sent["sent"]


def test_limit_sends_n_and_leaves_the_rest_for_the_next_run(tmp_path: Path) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 5)
    with LoopbackServer() as server:
        write_config(tmp_path, port=server.port)
        first = run_cli(tmp_path, "--limit", "2", "--json")
        second = run_cli(tmp_path, "--json")
    one, two = json.loads(first.output), json.loads(second.output)
    assert (one["sent"], one["pending"], first.exit_code) == (2, 3, 75)
    assert (two["sent"], two["skipped"], second.exit_code) == (3, 2, 0)
    assert len(server.handler.received) == 5


def test_shards_split_the_list_without_overlap(tmp_path: Path) -> None:
    active = write_subscribers(tmp_path / "subscribers" / "test.csv", 30)
    with LoopbackServer() as server:
        write_config(tmp_path, port=server.port)
        reports = [json.loads(run_cli(tmp_path, "--shard", f"{k}/3", "--json").output) for k in (1, 2, 3)]
    recipients = server.handler.recipients()
    assert sorted(recipients) == active and len(set(recipients)) == 30
    assert all(0 < r["sent"] < 30 for r in reports)


def test_deferred_deliveries_exit_75_and_say_how_to_resume(tmp_path: Path) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 2)
    handler = RecordingHandler(plan=lambda rcpt, tries: "451 4.3.0 try again later")
    with LoopbackServer(handler) as server:
        write_config(tmp_path, port=server.port, max_attempts=2)
        result = run_cli(tmp_path)
    assert result.exit_code == 75
    assert "2 deferred" in result.output and "run the same command again to resume" in result.output


def test_an_unreachable_server_is_one_error_line_naming_host_and_port(tmp_path: Path) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 2)
    port = closed_port()
    write_config(tmp_path, port=port)
    result = run_cli(tmp_path)
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot connect to the SMTP server")
    assert f"127.0.0.1:{port}" in result.output and result.output.count("\n") == 1
    assert ledger_statuses(tmp_path) == {"queued"}  # owed, none recorded as handed to a server


def test_dry_run_after_a_run_counts_who_is_already_done_without_writing(tmp_path: Path) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 4)
    with LoopbackServer() as server:
        write_config(tmp_path, port=server.port)
        run_cli(tmp_path, "--limit", "3")
    before = (tmp_path / "newsletter.db").stat().st_mtime_ns
    report = json.loads(run_cli(tmp_path, "--dry-run", "--json").output)
    assert (report["skipped"], report["composed"]) == (3, 1)
    assert (tmp_path / "newsletter.db").stat().st_mtime_ns == before


def papers_by_reader(folder: Path, issue: str) -> dict[str, set[str]]:
    with sqlite3.connect(folder / "newsletter.db") as db:
        rows = db.execute("SELECT email, papers FROM deliveries WHERE issue = ?", (issue,)).fetchall()
    return {email: set(json.loads(papers)) for email, papers in rows}


@pytest.mark.parametrize("builders", [0, 1], ids=["in process", "builder process"])
def test_a_later_issue_leaves_out_every_paper_the_reader_already_got(tmp_path: Path, builders: int) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 5)
    with LoopbackServer() as server:
        write_config(tmp_path, port=server.port, compose_processes=builders)
        assert run_cli(tmp_path, "--issue", "2024-W11-first").exit_code == 0
        # The same window again: everything the first issue sent is still among its papers.
        assert run_cli(tmp_path, "--issue", "2024-W11-second", "--another-issue").exit_code == 0
    first, second = (
        papers_by_reader(tmp_path, "2024-W11-first"),
        papers_by_reader(tmp_path, "2024-W11-second"),
    )
    assert all(first.values()) and any(second.values())
    for reader, papers in second.items():
        assert not papers & first[reader], reader
