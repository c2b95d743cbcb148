"""Issue 22 rows 10 and 12 through a real `serve`: a mangled form gets the form again, a body
larger than any form is refused on every route, and every answer, errors included, carries the
header policy.

Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from helpers.served_site import ServedSite, served_site
from helpers.signup_site import SECRET, field

from newsletter.mail.tokens import PATHS, Purpose, TokenSigner

POLICY = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
BIG = 3 * 1024 * 1024  # far more than any form of the site holds


@pytest.fixture
def site(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedSite]:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    templates = tmp_path / "templates"
    (templates / "web").mkdir(parents=True)
    # An operator's template with a mistake in it: the one way a page of `serve` crashes.
    (templates / "web" / "feedback.html").write_text("{{ no_such_value.title }}", encoding="utf-8")
    with served_site(tmp_path, templates_dir=templates) as served:
        yield served


def assert_policy(answer: httpx.Response) -> None:
    for name, value in POLICY.items():
        assert answer.headers.get(name) == value, (answer.status_code, name)
    assert "frame-ancestors 'none'" in answer.headers.get("content-security-policy", "")


@pytest.mark.parametrize("token", ["\u00b2.x", "\u0661\u0662.x", "9" * 99 + ".x", ".", "x" * 101])
def test_a_mangled_csrf_token_gets_the_form_again(site: ServedSite, token: str) -> None:
    site.client.get("/subscribe")  # the cookie, as a browser has it
    answer = site.client.post("/subscribe", data={"email": "a@example.org", "csrf": token, "website": ""})
    assert answer.status_code == 200
    assert field(answer.text, "csrf") and 'value="a@example.org"' in answer.text
    assert_policy(answer)
    assert site.store().get("a@example.org") is None


def link(purpose: Purpose) -> str:
    token = TokenSigner(SECRET).sign(
        purpose, "news", "alice@example.org", item="2403.00001", expires=timedelta(hours=1)
    )
    return f"{PATHS[purpose]}?t={token}"


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [
        ("GET", "/no-such-page", 404),
        ("PUT", "/subscribe", 405),
        ("GET", "/subscribe?list=nope", 404),
        ("GET", "/manage?t=forged", 403),
        ("GET", link(Purpose.FEEDBACK) + "&v=more", 500),
        ("POST", "/subscribe", 413),
    ],
)
def test_every_error_answer_carries_the_header_policy(
    site: ServedSite, method: str, url: str, status: int
) -> None:
    body = b"email=" + b"a" * BIG if status == 413 else None
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
    answer = site.client.request(method, url, content=body, headers=headers)
    assert answer.status_code == status
    assert_policy(answer)


def multipart_file(size: int) -> tuple[bytes, str]:
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="t"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return (
        head + b"\0" * size + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


FORM_ROUTES = ["/subscribe", "/confirm", "/manage", "/feedback", "/unsubscribe"]


@pytest.mark.parametrize(
    ("size", "chunked"), [(BIG, False), (BIG, True), (100, False)], ids=["big", "chunked", "small"]
)
@pytest.mark.parametrize("path", FORM_ROUTES)
def test_a_file_part_is_refused_on_every_form_route(
    site: ServedSite, path: str, size: int, chunked: bool
) -> None:
    body, content_type = multipart_file(size)
    url = link(next(p for p, at in PATHS.items() if at == path)) if path in PATHS.values() else path
    content: bytes | Iterator[bytes] = body
    if chunked:
        content = iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
    answer = site.client.post(url, content=content, headers={"Content-Type": content_type})
    assert answer.status_code == 413
    assert_policy(answer)
    assert site.store().is_active("alice@example.org")  # the unsubscribe's query token did nothing


def test_a_one_click_unsubscribe_may_still_come_as_a_small_multipart_form(site: ServedSite) -> None:
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    answer = site.client.post(
        link(Purpose.UNSUBSCRIBE),
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert answer.status_code == 200
    assert not site.store().is_active("alice@example.org")
