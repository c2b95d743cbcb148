"""`newsletter preview --serve`: the page's API over a real uvicorn server, and its facts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from helpers.preview_owner import owner_headers, serving_preview
from helpers.smtp_servers import LoopbackServer, RecordingHandler
from starlette.requests import Request

from newsletter.preview.app import ACTION_HEADER, PreviewApi, create_preview_app
from newsletter.preview.colorscheme import Scheme, force_scheme
from newsletter.preview.facts import GMAIL_CLIP_BYTES, inbox_subject, message_facts, odd_links
from newsletter.preview.session import PreviewSession
from newsletter.preview.spam import parse_report, spam_verdict, spamassassin_path
from newsletter.preview.watch import ChangeFeed
from newsletter.settings import load_settings

ALICE = "alice@example.org"


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A GET as the owner's browser makes it (with the preview's cookie)."""
    request = urllib.request.Request(url, headers={**owner_headers(url), **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def post(url: str, body: dict[str, str], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json", **owner_headers(url), **headers}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def session(project: Path) -> PreviewSession:
    return PreviewSession(load_settings(project / "newsletter.toml"))


@pytest.fixture
def base(session: PreviewSession) -> Iterator[str]:
    with serving_preview(session) as url:
        yield url


def api(base: str, path: str, **params: str) -> Any:
    """The decoded JSON of a GET that must succeed: an object, or a list for /api/subscribers."""
    status, _, body = get(f"{base}{path}?{urlencode(params)}")
    assert status == 200, body
    return json.loads(body)


def test_state_offers_the_lists_the_current_issue_and_says_smtp_is_off_for_the_outbox(base: str) -> None:
    state = api(base, "/api/state")
    assert state["ok"] and state["lists"][0] == "example"
    assert state["current"] == "2024-W11" and state["issues"] == []
    assert state["smtp"] is False


def test_search_finds_readers_by_address_and_by_keyword(base: str) -> None:
    by_keyword = [s["email"] for s in api(base, "/api/subscribers", q="diffusion")]
    assert ALICE in by_keyword and all("bob" not in e for e in by_keyword)
    assert [s["email"] for s in api(base, "/api/subscribers", q="ALICE@")] == [ALICE]


def test_message_is_the_readers_digest_in_both_schemes_with_facts(base: str) -> None:
    shown = api(base, "/api/message", subscriber=ALICE)
    assert shown["ok"] and shown["subscriber"] == ALICE
    assert len(shown["papers"]) == shown["facts"]["papers"] == 10
    assert "(min-width: 0px)" in shown["html"]["dark"] and "(min-width: 0px)" not in shown["html"]["light"]
    assert "prefers-color-scheme" not in shown["html"]["light"] + shown["html"]["dark"]
    headers = dict(shown["headers"])
    assert headers["Subject"] == shown["subject"] and headers["To"].endswith(f"<{ALICE}>")
    assert shown["facts"]["html_bytes"] < GMAIL_CLIP_BYTES and not shown["facts"]["clipped"]
    anonymous = api(base, "/api/message")
    assert anonymous["ok"] and anonymous["subscriber"] is None and anonymous["keywords"] == []


def test_eml_downloads_the_message_that_the_page_shows(base: str) -> None:
    status, headers, body = get(f"{base}/api/eml?{urlencode({'subscriber': ALICE})}")
    assert status == 200 and headers["content-type"] == "message/rfc822"
    assert headers["content-disposition"] == 'attachment; filename="alice_example.org-2024-W11.eml"'
    parsed = message_from_bytes(body, policy=policy.default)
    text = parsed.get_body(("plain",))
    assert text is not None
    assert text.get_content().replace("\r\n", "\n") == api(base, "/api/message", subscriber=ALICE)["text"]


def test_unknown_reader_and_bad_list_are_errors_on_the_page_not_crashes(base: str) -> None:
    missing = api(base, "/api/message", subscriber="nobody@example.org")
    assert missing["ok"] is False and "no subscriber nobody@example.org" in missing["error"]["message"]
    bad = api(base, "/api/message", list="../etc")
    assert bad["ok"] is False and "not allowed" in bad["error"]["message"]


def test_requests_for_other_host_names_are_refused(base: str) -> None:
    status, _, _ = get(f"{base}/api/state", headers={"Host": "evil.example"})
    assert status == 400


def headers_of(url: str, method: str = "GET", host: str | None = None) -> dict[str, str]:
    """The answer's headers only: the event stream never ends, so no body is read."""
    headers = {**owner_headers(url), **({"Host": host} if host else {})}
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return {name.lower(): value for name, value in answer.headers.items()}
    except urllib.error.HTTPError as exc:
        return {name.lower(): value for name, value in exc.headers.items()}


def test_every_preview_answer_carries_the_header_policy_of_serve(base: str, session: PreviewSession) -> None:
    app = create_preview_app(session, owner_token="x" * 16, watch=False)
    paths = [getattr(route, "path", "/") for route in app.routes]
    asked: list[tuple[str, str, str | None]] = [
        (base + path, method, None) for path in paths for method in ("GET", "POST")
    ]
    asked += [(f"{base}/no-such-page", "GET", None), (f"{base}/api/state", "GET", "evil.example")]
    for url, method, host in asked:
        headers = headers_of(url, method, host)
        csp = headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp and "base-uri 'none'" in csp, (method, url)
        assert headers.get("x-frame-options") == "DENY" and headers.get("x-content-type-options") == "nosniff"
        assert headers.get("referrer-policy") == "no-referrer" and headers.get("cache-control") == "no-store"


def test_send_me_this_is_off_with_the_embedded_outbox(base: str) -> None:
    status, answer = post(
        f"{base}/api/send", {"subscriber": ALICE, "to": "me@example.org"}, {ACTION_HEADER: "1"}
    )
    assert status == 200 and answer["ok"] is False
    assert "needs an SMTP server" in answer["error"]["message"]


def test_send_me_this_needs_the_page_header(base: str) -> None:
    status, answer = post(f"{base}/api/send", {"subscriber": ALICE, "to": "me@example.org"}, {})
    assert status == 403 and answer["ok"] is False


def test_send_me_this_mails_a_configured_address_and_refuses_any_other(project: Path) -> None:
    with LoopbackServer(RecordingHandler()) as smtp:
        config = project / "newsletter.toml"
        text = config.read_text().replace('host = "embedded"', f'host = "127.0.0.1"\nport = {smtp.port}')
        text += '\n[preview]\nsend_to = ["Me@example.net"]\n'
        config.write_text(text.replace("port = 587\n", ""))
        with serving_preview(PreviewSession(load_settings(config))) as base:
            state = api(base, "/api/state")
            assert state["smtp"] is True and state["send_to"][0] == "me@example.net"
            shown = api(base, "/api/message", subscriber=ALICE)
            _, refused = post(
                f"{base}/api/send", {"subscriber": ALICE, "to": "stranger@example.com"}, {ACTION_HEADER: "1"}
            )
            status, answer = post(
                f"{base}/api/send", {"subscriber": ALICE, "to": "me@example.net"}, {ACTION_HEADER: "1"}
            )
        assert refused["ok"] is False and "[preview] send_to" in refused["error"]["fix"]
        assert status == 200 and answer["ok"], answer
        received = smtp.handler.received
        assert [r.recipient for r in received] == ["me@example.net"]
        sent = message_from_bytes(received[0].data, policy=policy.default)
        # As `send --to`: Alice's papers, addressed to the tester under no one else's name.
        assert sent["To"] == "me@example.net" and sent["Subject"] == shown["subject"]
        plain = sent.get_body(("plain",))
        assert plain is not None
        assert all(p["title"][:40] in " ".join(plain.get_content().split()) for p in shown["papers"])
        assert not (project / "newsletter.db").exists()  # a test copy is never recorded


def test_force_scheme_turns_the_dark_rules_on_or_off() -> None:
    html = (
        '<meta name="color-scheme" content="light dark"><style>@media (prefers-color-scheme: dark)'
        " { body { color: white } } @media screen and (PREFERS-COLOR-SCHEME:light)"
        " { a { color: blue } }</style>"
    )
    dark = force_scheme(html, Scheme.DARK)
    light = force_scheme(html, Scheme.LIGHT)
    assert "@media (min-width: 0px) { body" in dark and "and (max-width: -1px) { a" in dark
    assert "@media (max-width: -1px) { body" in light and "and (min-width: 0px) { a" in light
    assert 'content="dark"' in dark and 'content="light"' in light


def test_odd_links_lists_everything_that_is_not_absolute_http() -> None:
    html = (
        '<a href="https://ok.example/">ok</a><a href="mailto:x@example.org">m</a>'
        '<img src="cid:logo"><a href="/relative">r</a><a href="javascript:alert(1)">j</a><a href="">e</a>'
    )
    assert [(link.tag, link.value) for link in odd_links(html)] == [
        ("a", "mailto:x@example.org"),
        ("img", "cid:logo"),
        ("a", "/relative"),
        ("a", "javascript:alert(1)"),
        ("a", ""),
    ]


def test_inbox_subject_and_clipping_facts() -> None:
    long = "Daily Papers Digest 2024-W11: " + "A very long paper title that goes on " * 3
    assert inbox_subject("short") == "short"
    assert len(inbox_subject(long)) <= 70 and inbox_subject(long).endswith("\u2026")
    facts = message_facts(long, "x" * (GMAIL_CLIP_BYTES + 1), b"m", 3)
    assert facts.clipped and facts.subject_cut and facts.papers == 3


SPAMASSASSIN_OUTPUT = b"""Received: from localhost
X-Spam-Checker-Version: SpamAssassin 4.0.1
X-Spam-Status: No, score=1.7 required=5.0 tests=GB_CUSTOM_HTM_URI,
\tHTML_FONT_LOW_CONTRAST,HTML_MESSAGE autolearn=no version=4.0.1
Subject: hello

Content analysis details:   (1.7 points, 5.0 required)

 pts rule name              description
---- ---------------------- --------------------------------------------------
 0.7 HTML_FONT_LOW_CONTRAST BODY: HTML font color similar or identical to
                            background
 0.0 HTML_MESSAGE           BODY: HTML included in message
 1.0 GB_CUSTOM_HTM_URI      Custom html uri
"""


def test_spamassassin_report_is_read_into_score_and_rules() -> None:
    verdict = parse_report(SPAMASSASSIN_OUTPUT)
    assert verdict is not None and verdict.score == 1.7 and verdict.required == 5.0
    assert [(r.name, r.points) for r in verdict.rules] == [
        ("HTML_FONT_LOW_CONTRAST", 0.7),
        ("HTML_MESSAGE", 0.0),
        ("GB_CUSTOM_HTM_URI", 1.0),
    ]
    assert verdict.rules[0].description == "BODY: HTML font color similar or identical to background"
    assert parse_report(b"Subject: no verdict\n\nbody") is None


@pytest.mark.skipif(spamassassin_path() is None, reason="spamassassin is not installed (optional)")
def test_spam_endpoint_runs_the_installed_spamassassin(base: str) -> None:
    verdict = api(base, "/api/spam", subscriber=ALICE)
    assert verdict["available"] and verdict["error"] is None
    assert isinstance(verdict["score"], float) and verdict["rules"]


def test_spam_verdict_says_when_spamassassin_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    verdict = spam_verdict(b"Subject: x\r\n\r\nbody")
    assert not verdict.available and "not installed" in (verdict.error or "")


def test_a_sent_issue_is_offered_as_sent_and_shows_what_the_reader_got(project: Path) -> None:
    from click.testing import CliRunner

    from newsletter.cli import main

    assert CliRunner().invoke(main, ["send"]).exit_code == 0
    with serving_preview(PreviewSession(load_settings(project / "newsletter.toml"))) as base:
        state = api(base, "/api/state")
        assert [i["id"] for i in state["issues"]] == [state["current"]]
        sent = api(base, "/api/message", subscriber=ALICE, issue="sent:" + state["current"])
        now = api(base, "/api/message", subscriber=ALICE)
    assert sent["ok"] and sent["replayed"] and not now["replayed"]
    assert [p["id"] for p in sent["papers"]] == [p["id"] for p in now["papers"]]
    assert any("as sent to alice@example.org" in note for note in sent["notes"])


def test_an_event_stream_cut_by_ctrl_c_leaves_no_task_pending(session: PreviewSession) -> None:
    """Ctrl-C cancels the open page's event stream; nothing of it may be left for the collector."""

    async def open_then_cut() -> None:
        preview = PreviewApi(session, ChangeFeed())
        preview.open()
        response = await preview.events(Request({"type": "http", "method": "GET", "headers": []}))
        stream = aiter(response.body_iterator)
        assert "event: hello" in str(await anext(stream))
        waiting = asyncio.ensure_future(anext(stream))  # the page waits for the next change
        for _ in range(5):
            await asyncio.sleep(0)
        waiting.cancel()  # what uvicorn does to a connection when Ctrl-C's grace time is over
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        for _ in range(5):  # cancelled tasks end on the next turns of the loop
            await asyncio.sleep(0)
        # A task of the stream still waiting now is garbage once the server lets go of the stream:
        # the collector destroys it pending, and asyncio prints "Task was destroyed but it is pending!".
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
        assert left == []

    asyncio.run(open_then_cut())


def test_the_page_shows_two_frames_with_a_width_and_colour_switch(base: str) -> None:
    status, _, body = get(f"{base}/")
    page = body.decode()
    assert status == 200
    assert page.count('<iframe class="digest') == 2  # one light, one dark: not six stacked
    switch = re.findall(r'<button type="button" data-(?:width|scheme)="(\w+)"', page)
    assert switch == ["375", "600", "full", "light", "dark", "both"]
