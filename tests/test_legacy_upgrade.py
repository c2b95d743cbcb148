"""An install made by the release before the store (tests/fixtures/legacy-install, made by that
release's code) upgrades itself on first use: a pending journal unsubscribe stays honoured, the
journal's other changes are in the list, nobody gets an issue a second time, and the old caches
go. A lost database is still noticed, by the old marker and then by the CSV's last_issue column."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers.smtp_servers import LoopbackServer

from newsletter.cli import main
from newsletter.store import forget_databases

FIXTURE = Path(__file__).parent / "fixtures" / "legacy-install"
SENT_BEFORE = {  # issue 2024-W11 went to these, into the outbox and to a real server
    "alice@example.org",
    "ada.lovelace@example.com",
    "bob@example.com",
    "chen.wei@example.org",
    "dana@example.org",
    "emeka.okafor@example.com",
    "fatima@example.org",
    "gustavo@example.com",
}


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "install"
    shutil.copytree(FIXTURE, folder)
    for key in [k for k in os.environ if k.startswith("NEWSLETTER_")]:
        monkeypatch.delenv(key)
    # mira's topics match none of the six papers: she gets the digest all the same, so it shows.
    monkeypatch.setenv("NEWSLETTER_SEND_EMPTY_DIGESTS", "true")
    monkeypatch.chdir(folder)
    return folder


def lose_database(folder: Path) -> None:
    """Delete newsletter.db (and its -wal, -shm) as a lost disk would, in a fresh process."""
    forget_databases()
    for path in folder.glob("newsletter.db*"):
        path.unlink()


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def outbox(folder: Path) -> list[str]:
    new = folder / "outbox" / "new"
    found = []
    for message in sorted(new.iterdir()) if new.is_dir() else []:
        for line in message.read_text(errors="replace").splitlines():
            if line.startswith("To: "):
                found.append(line.split("<")[-1].rstrip(">").strip())
    return sorted(found)


def real_server(monkeypatch: pytest.MonkeyPatch, server: LoopbackServer) -> None:
    monkeypatch.setenv("NEWSLETTER_SMTP__HOST", "127.0.0.1")
    monkeypatch.setenv("NEWSLETTER_SMTP__PORT", str(server.port))
    monkeypatch.setenv("NEWSLETTER_SMTP__SECURITY", "none")


def test_a_send_upgrades_the_install_and_mails_only_who_is_owed_the_issue(install: Path) -> None:
    result = run("send")
    assert result.exit_code == 0, result.output
    # bob's pending one-click unsubscribe holds, everyone who had the issue is skipped, chen now
    # reads daily: only mira, added through the journal, is owed this weekly issue.
    assert outbox(install) == ["mira@example.org"]
    for gone in ("example.journal", "example.index", ".example.sent"):
        assert not (install / "subscribers" / gone).exists(), gone


def test_the_list_shows_the_journals_changes_after_the_upgrade(install: Path) -> None:
    result = run("subscribers", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["email"]: row for row in json.loads(result.stdout)}
    assert rows["bob@example.com"]["status"] == "unsubscribed"
    assert rows["mira@example.org"]["name"] == "Mira Nair" and rows["mira@example.org"]["status"] == "active"
    assert rows["chen.wei@example.org"]["keywords"] == ["state space models", "robotics"]
    assert rows["chen.wei@example.org"]["frequency"] == "daily"
    assert rows["hana@example.org"]["status"] == "bounced" and rows["lena@example.org"]["status"] == "pending"
    assert rows["emeka.okafor@example.com"]["extra"] == {
        "team": "Audio",
        "notes": 'met at ISMIR; prefers "short" digests',
    }
    assert len(rows) == 13


def test_nobody_gets_the_issue_again_from_a_real_server_and_the_file_learns_who_got_what(
    install: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LoopbackServer() as server:
        real_server(monkeypatch, server)
        result = run("send")
    assert result.exit_code == 0, result.output
    assert sorted(server.handler.recipients()) == ["mira@example.org"]
    lines = (install / "subscribers" / "example.csv").read_text().splitlines()
    assert (
        lines[0] == "email,name,keywords,status,subscribed_at,unsubscribed_at,team,notes,frequency,last_issue"
    )
    issues = {line.split(",")[0]: line.rsplit(",", 1)[1] for line in lines[1:]}
    assert {email for email, issue in issues.items() if issue == "2024-W11"} == SENT_BEFORE | {
        "mira@example.org"
    }


def test_with_the_database_lost_the_old_marker_still_stops_a_second_mailing(
    install: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lose_database(install)
    with LoopbackServer() as server:
        real_server(monkeypatch, server)
        result = run("send")
    assert result.exit_code == 1
    assert (
        "Error: readers of list 'example' got issue 2024-W11 (says the old marker .example.sent)"
        in result.output
    )
    assert server.handler.recipients() == []


def test_once_written_back_the_csv_itself_notices_a_lost_database(
    install: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LoopbackServer() as server:
        real_server(monkeypatch, server)
        assert run("send").exit_code == 0
        lose_database(install)
        refused = run("send")
        assert refused.exit_code == 1
        assert (
            "Error: readers of list 'example' got issue 2024-W11 (says the last_issue column of example.csv)"
            in refused.output
        )
        assert "restore the database" in refused.output and "--new-ledger" in refused.output
        assert run("send", "--new-ledger").exit_code == 0  # starting over, on purpose
    weekly = SENT_BEFORE - {"bob@example.com", "chen.wei@example.org"} | {"mira@example.org"}
    assert sorted(server.handler.recipients()) == sorted(["mira@example.org", *weekly])  # then all again
