"""Fetching from a hostile server: every attack ends in one line, fast, holding little memory."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.hostile_http import MIB, HostileHttpServer

from newsletter.cli.app import main
from newsletter.errors import SourceError
from newsletter.sources.fetch import fetch_arxiv, fetch_hf
from newsletter.sources.http import FetchPolicy, retry_after

DAY = date(2024, 3, 14)


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileHttpServer]:
    server = HostileHttpServer(size=8 * MIB, interval=0.1).start()
    yield server
    server.stop()


def tight(**changes: object) -> FetchPolicy:
    """1 MiB and 20 s per answer; pauses between retries are skipped, not slept."""
    values: dict[str, object] = {
        "max_bytes": MIB,
        "request_deadline": 20.0,
        "fetch_deadline": 30.0,
        "timeout": 5.0,
        "sleep": lambda seconds: None,
        "jitter": lambda: 0.5,
    }
    values.update(changes)
    return FetchPolicy(**values)  # type: ignore[arg-type]


def fetch_error(server: HostileHttpServer, attack: str, **changes: object) -> str:
    with pytest.raises(SourceError) as caught:
        fetch_hf(day=DAY, base_url=f"{server.url}/{attack}", policy=tight(**changes))
    message = caught.value.message
    assert "\n" not in message
    return message


@pytest.mark.parametrize("attack", ["huge", "huge-declared", "gzip-bomb", "width-bomb", "xml-width-bomb"])
def test_an_answer_larger_than_the_cap_is_refused_before_it_is_held(
    hostile: HostileHttpServer, attack: str
) -> None:
    message = fetch_error(hostile, attack)
    assert message.startswith("the server's answer is larger than 1 MiB, in http://127.0.0.1:")
    assert "max_bytes" in message


@pytest.mark.parametrize("attack", ["drip", "drip-headers"])
def test_a_server_dripping_bytes_is_cut_off_at_the_request_deadline(
    hostile: HostileHttpServer, attack: str
) -> None:
    message = fetch_error(hostile, attack, request_deadline=1.0)
    assert message.startswith("the server did not answer in full within 1 s")


def test_the_fetch_deadline_bounds_a_whole_fetch_of_many_requests(hostile: HostileHttpServer) -> None:
    message = fetch_error(hostile, "drip", request_deadline=5.0, fetch_deadline=0.5)
    assert message.startswith("fetching took longer than 0 s in all")


def test_a_redirect_loop_is_one_line(hostile: HostileHttpServer) -> None:
    assert fetch_error(hostile, "redirect-loop").startswith("the server redirects in a loop")


def test_a_redirect_to_another_origin_is_refused(hostile: HostileHttpServer) -> None:
    message = fetch_error(hostile, "redirect-away")
    assert message.startswith("the server redirected to another site (http://localhost)")
    assert "allowed_hosts" in message


def test_a_redirect_to_an_allowed_host_is_followed(hostile: HostileHttpServer) -> None:
    message = fetch_error(hostile, "redirect-away", allowed_hosts=("localhost",))
    assert message.startswith("the server's answer is larger than 1 MiB")  # it went there, and was capped


def test_a_json_nesting_bomb_is_one_line(hostile: HostileHttpServer) -> None:
    assert "nested too deeply" in fetch_error(hostile, "nesting-bomb")


def test_an_unreadable_retry_after_is_ignored_and_named_in_the_final_error(
    hostile: HostileHttpServer,
) -> None:
    message = fetch_error(hostile, "retry-garbage")
    assert message.startswith("fetching failed after 4 attempts (HTTP 503, unreadable Retry-After 'soon, ")


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120.0), ("\u00b2", None), ("-5", None), ("1e9", None), ("Mon, 99 Foo 10000 99:99:99 GMT", None)],
)
def test_retry_after_reads_seconds_and_dates_and_nothing_else(header: str, seconds: float | None) -> None:
    assert retry_after(header)[0] == seconds


def test_arxiv_fetch_is_bounded_too(hostile: HostileHttpServer) -> None:
    with pytest.raises(SourceError, match="larger than 1 MiB"):
        fetch_arxiv(query="all:x", base_url=f"{hostile.url}/gzip-bomb", policy=tight())


def test_papers_fetch_takes_its_limits_from_the_fetch_settings(
    hostile: HostileHttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSLETTER_FETCH__REQUEST_DEADLINE", "1")
    args = ["papers", "fetch", "--source", "hf", "--date", "2024-03-14", "--base-url", f"{hostile.url}/drip"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert result.output.startswith(
        "Error: the server did not answer in full within 1 s, in http://127.0.0.1"
    )
    assert result.output.count("\n") == 1


def test_send_with_a_hostile_source_stops_with_one_line_and_caches_nothing(
    project: Path, hostile: HostileHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SOURCES", f'[{{"kind": "hf", "base_url": "{hostile.url}/gzip-bomb"}}]')
    monkeypatch.setenv("NEWSLETTER_FETCH__MAX_BYTES", str(MIB))
    result = CliRunner().invoke(main, ["send", "--dry-run", "--date", "2024-03-14"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: the server's answer is larger than 1 MiB, in http://127.0.0.1")
    assert result.output.count("\n") == 1
    assert not list((project / "papers-cache").rglob("*.jsonl"))
