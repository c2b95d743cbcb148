"""Never an empty digest: nothing-matched readers get no mail, an empty issue window is an error."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result
from helpers.smtp_servers import LoopbackServer, write_config

from newsletter.cli import main

HEADER = "email,name,keywords,status,subscribed_at,unsubscribed_at\n"
ROWS = (
    "ada@example.com,Ada,diffusion models,active,,\n"
    "zed@example.com,Zed,basket weaving; medieval pottery,active,,\n"
    "una@example.com,Una,,active,,\n"
)


def run(folder: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(folder / "newsletter.toml"), *args])


def setup_list(folder: Path, extra: str = "") -> None:
    (folder / "subscribers").mkdir(parents=True, exist_ok=True)
    (folder / "subscribers" / "test.csv").write_text(HEADER + ROWS, encoding="utf-8")
    if extra:
        path = folder / "newsletter.toml"
        path.write_text(extra + "\n" + path.read_text(encoding="utf-8"), encoding="utf-8")


def test_a_reader_with_nothing_matching_gets_no_mail_and_is_counted_empty(tmp_path: Path) -> None:
    with LoopbackServer() as server:
        write_config(tmp_path, port=server.port)
        setup_list(tmp_path)
        result = run(tmp_path, "send", "--json")
        again = run(tmp_path, "send")
    report = json.loads(result.output)
    assert result.exit_code == 0, result.output
    assert sorted(server.handler.recipients()) == ["ada@example.com", "una@example.com"]
    assert (report["sent"], report["empty"]) == (2, 1)
    assert again.exit_code == 0
    assert "0 sent" in again.output and "1 with nothing new on their topics (no mail)" in again.output


def test_a_setting_turns_nothing_this_week_mails_back_on(tmp_path: Path) -> None:
    with LoopbackServer() as server:
        write_config(tmp_path, port=server.port)
        setup_list(tmp_path, "send_empty_digests = true")
        result = run(tmp_path, "send", "--json")
    assert json.loads(result.output)["empty"] == 0
    zed = [item for item in server.handler.received if item.recipient == "zed@example.com"]
    assert len(zed) == 1 and b"No new papers matched your topics" in zed[0].data.replace(b"=\r\n", b"")


def test_an_issue_window_without_papers_is_one_error_line_naming_window_and_source(tmp_path: Path) -> None:
    with LoopbackServer() as server:
        write_config(tmp_path, port=server.port)
        setup_list(tmp_path)
        result = run(tmp_path, "send", "--date", "2026-11-30")
    assert result.exit_code == 1
    assert server.handler.received == []
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: issue 2026-W49 has no papers")
    assert "window 2026-11-24 to 2026-11-30" in lines[0]
    assert "the newest is from 2024-03-14" in lines[0] and "examples" in lines[0]
    assert "no [[sources]] are configured" in lines[0] and "--date 2024-03-14" in lines[0]
    assert not (tmp_path / "newsletter.db").exists()


def test_the_error_says_when_the_sources_were_last_fetched(tmp_path: Path) -> None:
    write_config(tmp_path, host="embedded")
    setup_list(tmp_path)
    with (tmp_path / "newsletter.toml").open("a", encoding="utf-8") as config:
        config.write('\n[[sources]]\nkind = "hf"\nbase_url = "http://127.0.0.1:9"\n')
    # Fetched before (cached for the issue), so nothing is fetched now: no network in this test.
    cached = tmp_path / "papers-cache" / "2026-W49" / "00-hf.jsonl"
    cached.parent.mkdir(parents=True)
    old = {"id": "2403.00001", "title": "Old", "abstract": "Old news.", "published": "2024-03-01T00:00:00Z"}
    cached.write_text(json.dumps(old) + "\n", encoding="utf-8")
    result = run(tmp_path, "send", "--date", "2026-11-30")
    assert result.exit_code == 1, result.output
    assert "papers-cache/2026-W49/00-hf.jsonl" in result.output
    assert "the [[sources]] were last fetched 20" in result.output


def test_archive_refuses_an_empty_issue(tmp_path: Path) -> None:
    write_config(tmp_path, host="embedded")
    setup_list(tmp_path)
    result = run(tmp_path, "archive", "--date", "2026-11-30")
    assert result.exit_code == 1
    assert result.output.startswith("Error: issue 2026-W49 has no papers")
    assert not (tmp_path / "archive").exists()
