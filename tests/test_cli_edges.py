"""Small things a cron user trips over: dates, warnings, environment names, empty folders."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli.app import main

REPO = Path(__file__).resolve().parents[1]
NO_ABSTRACT = (
    '{"id": "x1", "title": "No abstract", "abstract": ""}\n{"id": "x2", "title": "Neither", "abstract": ""}\n'
)


@pytest.mark.parametrize(
    "args",
    [
        ["papers", "rank", "--papers", str(REPO / "examples"), "--date", "today"],
        ["papers", "fetch", "--source", "hf", "--date", "today", "--base-url", "http://127.0.0.1:9"],
    ],
    ids=["rank", "fetch"],
)
def test_every_date_option_takes_today(project: Path, args: list[str]) -> None:
    result = CliRunner().invoke(main, args)
    assert "Invalid value for '--date'" not in result.output
    assert result.exit_code in (0, 1), result.output  # fetch: the closed port is an error, not bad usage


def test_a_misspelt_top_level_variable_is_an_error(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_TITEL", "Weekly")
    result = CliRunner().invoke(main, ["send", "--dry-run"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: unknown setting NEWSLETTER_TITEL in the environment")
    assert "did you mean NEWSLETTER_TITLE?" in result.output


def test_a_bad_value_from_the_environment_names_the_variable(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SMTP__PORT", "twenty-five")
    result = CliRunner().invoke(main, ["send", "--dry-run"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: NEWSLETTER_SMTP__PORT (setting 'smtp.port') is invalid: ")
    assert "newsletter.toml" not in result.output


def test_send_in_an_empty_folder_fails_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for args in (["send"], ["send", "--papers", str(REPO / "examples")]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1 and result.output.startswith("Error: "), result.output
    assert list(tmp_path.iterdir()) == []


def test_a_warning_is_printed_once(project: Path) -> None:
    (project / "examples" / "extra.jsonl").write_text(NO_ABSTRACT, encoding="utf-8")
    result = CliRunner().invoke(main, ["send", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("extra.jsonl:1") == 1, result.stderr


def test_no_papers_found_mentions_warnings_only_when_there_are_some(project: Path) -> None:
    empty = project / "empty"
    empty.mkdir()
    (empty / "none.json").write_text("[]", encoding="utf-8")
    (project / "bad").mkdir()
    (project / "bad" / "bad.jsonl").write_text(NO_ABSTRACT, encoding="utf-8")
    quiet = CliRunner().invoke(main, ["send", "--dry-run", "--papers", str(empty)])
    noisy = CliRunner().invoke(main, ["send", "--dry-run", "--papers", str(project / "bad")])
    assert quiet.exit_code == noisy.exit_code == 1
    assert "warning" not in quiet.output.lower() and "skipped" not in quiet.output
    assert "2 record(s) skipped, the first at " in noisy.output and "bad.jsonl:1" in noisy.output


@pytest.mark.parametrize("command", [["serve"], ["preview", "--serve"]], ids=["serve", "preview"])
def test_a_port_in_use_is_one_error_line_before_anything_says_serving(
    project: Path, command: list[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, [*command, "--host", "127.0.0.1", "--port", str(port)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == (
        f"Error: port {port} on 127.0.0.1 is in use, pass --port with a free one"
        " (or stop the program that holds it)"
    )
    assert "Serving" not in result.stderr and "Preview on" not in result.stderr
    assert "Errno" not in result.stderr
