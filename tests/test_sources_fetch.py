"""Fetching over HTTP against a real local server that replays recorded responses."""

from __future__ import annotations

import logging
from datetime import date

import pytest
from helpers.recorded import FIXTURES, RecordedServer, fixture

from newsletter.errors import SourceError
from newsletter.sources.fetch import fetch_arxiv, fetch_hf, parse_week
from newsletter.sources.http import FetchPolicy


class FakeClock:
    """Time that only moves when we 'sleep', so spacing and backoff are checked without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def policy(self, **overrides: object) -> FetchPolicy:
        options: dict[str, object] = {
            "timeout": 5.0,
            "sleep": self.sleep,
            "clock": lambda: self.now,
            "jitter": lambda: 0.5,
        }
        options.update(overrides)
        return FetchPolicy(**options)  # type: ignore[arg-type]


def test_hf_fetch_follows_pages_until_a_short_one(server: RecordedServer) -> None:
    server.queue("/api/daily_papers?p=0", fixture("hf_daily_2024-03-14_p0.json"))
    server.queue("/api/daily_papers?p=1", fixture("hf_daily_2024-03-14_p1.json"))
    result = fetch_hf(day=date(2024, 3, 14), base_url=server.url, limit=2, policy=FakeClock().policy())
    assert [p.id for p in result.papers] == ["2403.08213", "2403.07987", "2403.07711"]
    assert server.requests == [
        ("/api/daily_papers", {"date": "2024-03-14", "limit": "2", "p": "0"}),
        ("/api/daily_papers", {"date": "2024-03-14", "limit": "2", "p": "1"}),
    ]


def test_hf_fetch_by_week_sends_the_week_parameter(server: RecordedServer) -> None:
    server.queue("/api/daily_papers", fixture("hf_daily_2024-03-14_p1.json"))
    result = fetch_hf(week="2024-W11", base_url=server.url, policy=FakeClock().policy())
    assert len(result.papers) == 1
    assert server.requests[0][1]["week"] == "2024-W11"


def test_hf_fetch_stops_when_the_server_ignores_paging(server: RecordedServer) -> None:
    server.queue("/api/daily_papers", fixture("hf_daily_2024-03-14_p0.json"))
    result = fetch_hf(day=date(2024, 3, 14), base_url=server.url, limit=2, policy=FakeClock().policy())
    assert len(result.papers) == 2
    assert len(server.requests) == 2


def test_retries_on_503_and_429_honouring_retry_after(server: RecordedServer) -> None:
    server.queue(
        "/api/daily_papers",
        (503, {}, b"busy"),
        (429, {"Retry-After": "7"}, b"slow down"),
        fixture("hf_daily_2024-03-14_p1.json"),
    )
    clock = FakeClock()
    result = fetch_hf(day=date(2024, 3, 14), base_url=server.url, policy=clock.policy(backoff=2.0))
    assert len(result.papers) == 1
    assert clock.sleeps == [2.0, 7.0]  # backoff 2 s x (0.5 + jitter 0.5), then Retry-After


def test_gives_up_after_the_last_attempt_with_the_url(server: RecordedServer) -> None:
    server.queue("/api/daily_papers", (502, {}, b"bad gateway"))
    with pytest.raises(SourceError, match=r"fetching failed after 3 attempts \(HTTP 502\).*127\.0\.0\.1"):
        fetch_hf(day=date(2024, 3, 14), base_url=server.url, policy=FakeClock().policy(attempts=3))
    assert len(server.requests) == 3


def test_a_retry_after_longer_than_we_accept_fails_at_once(server: RecordedServer) -> None:
    server.queue("/api/daily_papers", (429, {"Retry-After": "3600"}, b""))
    with pytest.raises(SourceError, match="asked us to wait 3600 s"):
        fetch_hf(day=date(2024, 3, 14), base_url=server.url, policy=FakeClock().policy(max_wait=60))


def test_client_errors_are_not_retried(server: RecordedServer) -> None:
    server.queue("/api/daily_papers", (400, {}, b'{"error": "bad date"}'))
    with pytest.raises(SourceError, match="HTTP 400"):
        fetch_hf(day=date(2024, 3, 14), base_url=server.url, policy=FakeClock().policy())
    assert len(server.requests) == 1


def test_unreachable_server_is_retried_then_reported() -> None:
    clock = FakeClock()
    with pytest.raises(SourceError, match=r"fetching failed after 2 attempts.*ConnectError"):
        fetch_hf(day=date(2024, 3, 14), base_url="http://127.0.0.1:9", policy=clock.policy(attempts=2))
    assert len(clock.sleeps) == 1


def test_a_host_that_does_not_resolve_fails_at_once_without_retries() -> None:
    clock = FakeClock()
    with pytest.raises(SourceError) as raised:
        fetch_hf(day=date(2024, 3, 14), base_url="http://papers.invalid", policy=clock.policy(attempts=4))
    assert raised.value.what == "cannot look up papers.invalid (no network, or a misspelt host name)"
    assert clock.sleeps == []


def test_each_retry_is_announced_with_the_attempt_and_the_wait(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    with caplog.at_level(logging.WARNING, logger="newsletter.sources"), pytest.raises(SourceError):
        fetch_hf(day=date(2024, 3, 14), base_url="http://127.0.0.1:9", policy=clock.policy(attempts=3))
    said = [r.getMessage() for r in caplog.records if r.name == "newsletter.sources.http"]
    assert len(said) == len(clock.sleeps) == 2
    assert said[0].startswith("http://127.0.0.1:9/api/daily_papers?date=2024-03-14")
    assert "ConnectError" in said[0] and said[0].endswith(f"; attempt 2 of 3 in {clock.sleeps[0]:.0f} s")
    assert said[1].endswith(f"; attempt 3 of 3 in {clock.sleeps[1]:.0f} s")


def test_arxiv_fetch_pages_three_seconds_apart(server: RecordedServer) -> None:
    server.queue("/api/query?start=0", fixture("arxiv_api_page0.xml"))
    server.queue("/api/query?start=2", fixture("arxiv_api_page1.xml"))
    clock = FakeClock()
    result = fetch_arxiv(
        query="abs:diffusion",
        base_url=server.url,
        page_size=2,
        max_results=10,
        policy=clock.policy(spacing=3.0),
    )
    assert {p.id for p in result.papers} == {"2403.08213", "2403.08120", "hep-th/9901001"}
    assert clock.sleeps == [3.0]
    assert server.requests[0][1] == {
        "search_query": "abs:diffusion",
        "start": "0",
        "max_results": "2",
        "sortBy": "submittedDate",
        "sortOrder": "descending",
    }
    assert server.requests[1][1]["start"] == "2"


def test_arxiv_fetch_adds_the_submission_range_of_a_week(server: RecordedServer) -> None:
    server.queue("/api/query", fixture("arxiv_api_page1.xml"))
    first, last = parse_week("2024-W11")
    fetch_arxiv(query="cat:cs.LG", first=first, last=last, base_url=server.url, policy=FakeClock().policy())
    assert (
        server.requests[0][1]["search_query"]
        == "(cat:cs.LG) AND submittedDate:[202403110000 TO 202403172359]"
    )


def test_arxiv_error_entry_becomes_a_source_error(server: RecordedServer) -> None:
    server.queue("/api/query", fixture("arxiv_api_error.xml"))
    with pytest.raises(SourceError, match=r"arXiv rejected the query: incorrect id format for 1234\.12345"):
        fetch_arxiv(query="id:1234.12345", base_url=server.url, policy=FakeClock().policy())


def test_week_must_be_iso_form() -> None:
    assert parse_week("2024-W11") == (date(2024, 3, 11), date(2024, 3, 17))
    with pytest.raises(SourceError, match="YYYY-Www"):
        parse_week("2024-11")
    with pytest.raises(SourceError, match="does not exist"):
        parse_week("2023-W53")


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    from newsletter.sources.http import retry_after

    assert retry_after("12") == (12.0, "")
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == (0.0, "")
    assert retry_after("soon") == (None, ", unreadable Retry-After 'soon' ignored")
    assert retry_after("") == (None, "")


def test_arxiv_empty_page_within_total_results_is_asked_again(server: RecordedServer) -> None:
    empty = (FIXTURES / "arxiv_api_page1.xml").read_text()
    empty = empty[: empty.index("<entry>")] + "</feed>\n"
    server.queue("/api/query?start=0", fixture("arxiv_api_page0.xml"))
    server.queue("/api/query?start=2", (200, {}, empty.encode()), fixture("arxiv_api_page1.xml"))
    clock = FakeClock()
    result = fetch_arxiv(
        query="abs:diffusion",
        base_url=server.url,
        page_size=2,
        max_results=10,
        policy=clock.policy(spacing=3.0),
    )
    assert len(result.papers) == 3
    assert result.requests == 3
    assert clock.sleeps == [3.0, 3.0]


def test_arxiv_stops_paging_at_total_results(server: RecordedServer) -> None:
    full_page = (
        (FIXTURES / "arxiv_api_page0.xml")
        .read_text()
        .replace(">3</opensearch:totalResults>", ">2</opensearch:totalResults>")
    )
    server.queue("/api/query", (200, {}, full_page.encode()))
    result = fetch_arxiv(
        query="abs:diffusion", base_url=server.url, page_size=2, max_results=10, policy=FakeClock().policy()
    )
    assert len(result.papers) == 2
    assert result.requests == 1


def test_arxiv_answer_that_is_not_atom_is_a_source_error(server: RecordedServer) -> None:
    server.queue("/api/query", (200, {"Content-Type": "text/html"}, b"<html><body>maintenance</body>"))
    with pytest.raises(SourceError, match="not Atom"):
        fetch_arxiv(query="abs:x", base_url=server.url, policy=FakeClock().policy())
