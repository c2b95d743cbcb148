"""The log file named in settings: what a cron run leaves behind for the admin to read."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner, Result
from helpers.smtp_servers import LoopbackServer

from newsletter.cli import main

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sources"
BAD_RECORD = FIXTURES / "hf_daily_with_bad_record.json"  # its second record has no abstract


@pytest.fixture
def project(project: Path) -> Path:
    """The shipped config and sample data, plus `log_file = "logs/newsletter.log"`."""
    config = project / "newsletter.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace(
            'ledger = "newsletter.db"\n', 'ledger = "newsletter.db"\nlog_file = "logs/newsletter.log"\n', 1
        ),
        encoding="utf-8",
    )
    assert 'log_file = "logs/newsletter.log"' in config.read_text(encoding="utf-8")
    return project


@pytest.fixture
def hf_mirror() -> Iterator[str]:
    """A local daily_papers endpoint answering each day with the recorded sample for that day."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            recorded = ROOT / "examples" / f"daily_papers_{query.get('date', [''])[0]}.json"
            body = recorded.read_bytes() if recorded.is_file() and query.get("p") == ["0"] else b"[]"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def use_hf_source(project: Path, url: str) -> None:
    config = project / "newsletter.toml"
    text = config.read_text(encoding="utf-8").replace('papers = ["examples/"]', "papers = []")
    config.write_text(text + f'\n[[sources]]\nkind = "hf"\nbase_url = "{url}"\n', encoding="utf-8")


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def log_lines(project: Path) -> list[str]:
    path = project / "logs" / "newsletter.log"
    assert path.is_file(), "the log file named in settings was not created"
    return path.read_text(encoding="utf-8").splitlines()


def test_send_writes_one_summary_line_with_issue_counts_and_duration(project: Path) -> None:
    result = run("send")
    assert result.exit_code == 0, result.output

    summaries = [line for line in log_lines(project) if " INFO " in line and "2024-W11" in line]

    assert len(summaries) == 1, log_lines(project)
    assert "12 sent" in summaries[0]  # the shipped list has 12 active subscribers
    assert "0 failed" in summaries[0]
    assert re.search(r"\d+(\.\d+)?\s?s\b", summaries[0].split(" sent", 1)[1]), "duration in seconds"


def test_send_from_a_configured_source_logs_what_it_fetched_at_info(project: Path, hf_mirror: str) -> None:
    use_hf_source(project, hf_mirror)

    result = run("send")

    assert result.exit_code == 0, result.output
    fetched = [line for line in log_lines(project) if "fetched" in line]
    assert len(fetched) == 1, log_lines(project)
    assert " INFO newsletter.sources.feeds: fetched 69 papers from hf into " in fetched[0]
    assert str(project / "papers-cache" / "2024-W11" / "00-hf.jsonl") in fetched[0]
    assert fetched[0][:4].isdigit(), "each line starts with its time"
    assert "fetched" not in result.output, "INFO detail stays out of the terminal without --verbose"


def test_verbose_also_shows_the_info_lines_on_the_terminal(project: Path, hf_mirror: str) -> None:
    use_hf_source(project, hf_mirror)

    result = run("--verbose", "send")

    assert result.exit_code == 0, result.output
    assert "INFO newsletter.sources.feeds: fetched 69 papers from hf" in result.stderr


def test_skipped_paper_records_are_logged_as_warnings_naming_file_and_position(project: Path) -> None:
    result = run("send", "--papers", str(BAD_RECORD))

    assert result.exit_code == 0, result.output
    warnings = [line for line in log_lines(project) if " WARNING " in line]
    assert len(warnings) == 1, log_lines(project)
    assert str(BAD_RECORD) in warnings[0] and ":2" in warnings[0]


def test_log_file_is_appended_to_by_each_run(project: Path) -> None:
    run("send", "--papers", str(BAD_RECORD), "--dry-run")
    run("send", "--papers", str(BAD_RECORD), "--dry-run")

    assert len([line for line in log_lines(project) if " WARNING " in line]) == 2


def test_log_file_that_cannot_be_opened_is_a_one_line_error(project: Path) -> None:
    (project / "logs").write_text("a file where the log folder should be", encoding="utf-8")

    result = run("send")

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.startswith("Error: cannot open the log file")
    assert str(project / "logs" / "newsletter.log") in result.output
    assert not (project / "outbox").exists()


def test_send_that_stops_on_an_error_logs_why(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SMTP__HOST", "127.0.0.1")
    monkeypatch.setenv("NEWSLETTER_SMTP__PORT", "1")
    monkeypatch.setenv("NEWSLETTER_SECRET", "s")
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "https://papers.example.org")

    result = run("send")

    assert result.exit_code == 1
    errors = [line for line in log_lines(project) if " ERROR newsletter.pipeline.send: send stopped" in line]
    assert len(errors) == 1 and "127.0.0.1:1" in errors[0], log_lines(project)


@pytest.mark.parametrize(("flags", "suffix"), [([], ""), (["--verbose"], " (newsletter.pipeline.send)")])
def test_a_logged_warning_looks_like_the_commands_own_warning_lines(
    project: Path, monkeypatch: pytest.MonkeyPatch, flags: list[str], suffix: str
) -> None:
    with LoopbackServer() as server:  # a server on this machine without a secret: a logged warning
        monkeypatch.setenv("NEWSLETTER_SMTP__HOST", "127.0.0.1")
        monkeypatch.setenv("NEWSLETTER_SMTP__PORT", str(server.port))
        result = run(*flags, "send")

    assert result.exit_code == 0, result.output
    [line] = [line for line in result.stderr.splitlines() if "without NEWSLETTER_SECRET" in line]
    assert line.startswith(f"Warning: sending to 127.0.0.1:{server.port} without NEWSLETTER_SECRET")
    assert line.endswith("set both before this server relays mail beyond this machine" + suffix)
    assert "WARNING" not in result.stderr
