"""Every answer of `serve`, for every route there is, carries the one header policy and the site's look."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from helpers.signup_site import SECRET, make_site
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette prefers httpx2 for its TestClient; httpx works
    from starlette.testclient import TestClient

from newsletter.mail.tokens import PATHS, TokenSigner
from newsletter.settings import Settings
from newsletter.web.app import create_app

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
PUBLIC = ("/archive", "/healthz")  # the same for everyone: may be cached and indexed
PURPOSE_OF = {path: purpose for purpose, path in PATHS.items()}
MASTHEAD = '<p class="masthead">Lab Papers</p>'  # web/base.html: the look of the sign-up pages


@dataclass(frozen=True)
class Answer:
    method: str
    url: str
    status: int
    headers: dict[str, str]
    text: str


def urls(path: str) -> list[str]:
    """The route with no token, a forged one and (for a link's page) a genuine one for list news."""
    found = [path, f"{path}?t=forged-{'x' * 40}", f"{path}?list=news", f"{path}?list=nope"]
    purpose = PURPOSE_OF.get(path)
    if purpose is not None:
        token = TokenSigner(SECRET).sign(
            purpose, "news", "alice@example.org", item="2403.00001", expires=timedelta(hours=1)
        )
        found += [f"{path}?t={token}", f"{path}?t={token}&v=less"]
    return found


def requests_for(app: Starlette) -> Iterator[tuple[str, str]]:
    """Each method a route takes with each of its URLs, a method it does not take (405), and a 404."""
    for route in app.routes:
        if isinstance(route, Route):
            taken = set(route.methods or ()) - {"HEAD"}
            for method in sorted(taken):
                for url in urls(route.path):
                    yield method, url
            yield next(m for m in METHODS if m not in taken), route.path
        elif isinstance(route, Mount):
            for url in (f"{route.path}/", f"{route.path}/index.html", f"{route.path}/nope.html"):
                yield "GET", url
            yield "PUT", f"{route.path}/"
    yield "GET", "/no-such-page"
    yield "POST", "/no-such-page"


def answers(settings: Settings) -> list[Answer]:
    app = create_app(settings)
    client = TestClient(app, follow_redirects=False)
    found = []
    for method, url in requests_for(app):
        response = client.request(method, url)
        found.append(Answer(method, url, response.status_code, dict(response.headers), response.text))
    return found


@pytest.fixture(scope="module")
def every_answer(tmp_path_factory: pytest.TempPathFactory) -> list[Answer]:
    root = tmp_path_factory.mktemp("site")
    settings = make_site(root)
    (root / "archive").mkdir()
    (root / "archive" / "index.html").write_text("<h1>Issues</h1>")  # as `newsletter archive` writes it
    return answers(settings)


def policy_breaches(answer: Answer) -> list[str]:
    """What the answer lacks of the policy: framing, base URL, sniffing, referrers, caching."""
    headers = {name.lower(): value for name, value in answer.headers.items()}
    csp = headers.get("content-security-policy", "")
    wanted = {
        "csp default-src 'none'": "default-src 'none'" in csp,
        "csp frame-ancestors 'none'": "frame-ancestors 'none'" in csp,
        "csp base-uri 'none'": "base-uri 'none'" in csp,
        "X-Frame-Options DENY": headers.get("x-frame-options") == "DENY",
        "nosniff": headers.get("x-content-type-options") == "nosniff",
        "no-referrer": headers.get("referrer-policy") == "no-referrer",
    }
    path = answer.url.split("?")[0]
    if not path.startswith(PUBLIC):
        wanted["no-store"] = headers.get("cache-control") == "no-store"
        wanted["noindex"] = headers.get("x-robots-tag") == "noindex"
    return [
        f"{answer.method} {answer.url} ({answer.status}): no {what}" for what, ok in wanted.items() if not ok
    ]


def test_every_answer_of_every_route_carries_the_header_policy(every_answer: list[Answer]) -> None:
    methods = {(a.method, a.url.split("?")[0]) for a in every_answer}
    assert {("GET", "/subscribe"), ("POST", "/feedback"), ("PUT", "/archive/")} <= methods
    assert {a.status for a in every_answer} >= {200, 400, 403, 404, 405}
    breaches = [breach for answer in every_answer for breach in policy_breaches(answer)]
    assert breaches == []


def test_every_page_a_route_answers_with_is_in_the_sites_look(every_answer: list[Answer]) -> None:
    pages = [a for a in every_answer if a.headers.get("content-type", "").startswith("text/html")]
    archived = [
        a for a in pages if a.url.startswith("/archive/") and a.status == 200
    ]  # the archive's own files
    bare = [f"{a.method} {a.url} ({a.status})" for a in pages if a not in archived and MASTHEAD not in a.text]
    plain = [f"{a.method} {a.url} ({a.status})" for a in every_answer if a.status >= 400 and a not in pages]
    assert bare == [] and plain == []


@pytest.mark.parametrize(
    ("url", "title"),
    [
        ("/unsubscribe?t=forged", "Link not valid"),
        ("/unsubscribe?list=news", "Incomplete link"),
        ("/feedback?t=forged", "Link not valid"),
        ("/manage?t=forged", "Link not valid"),
        ("/no-such-page", "Page not found"),
    ],
)
def test_a_link_that_does_not_work_gets_a_page_in_the_sites_look(
    tmp_path: Path, url: str, title: str
) -> None:
    answer = TestClient(create_app(make_site(tmp_path))).get(url)
    assert answer.status_code in (400, 403, 404)
    assert MASTHEAD in answer.text and f"<h1>{title}</h1>" in answer.text
    assert "Lab Papers" in answer.text.split('<p class="footer">')[1]  # the sender, as on every page


def test_a_page_may_add_to_the_policy_but_never_drop_frame_ancestors_or_base_uri(tmp_path: Path) -> None:
    async def styled(request: Request) -> HTMLResponse:
        own = "style-src 'sha256-abc'; frame-ancestors https://evil.example; base-uri https:; img-src 'none'"
        return HTMLResponse("<p>hi</p>", headers={"Content-Security-Policy": own})

    app = create_app(make_site(tmp_path))
    app.router.routes.append(Route("/added-later", styled))
    csp = TestClient(app).get("/added-later").headers["content-security-policy"]
    directives = {part.split()[0]: part.split()[1:] for part in csp.split(";")}
    assert directives["frame-ancestors"] == ["'none'"] and directives["base-uri"] == ["'none'"]
    assert directives["style-src"] == ["'unsafe-inline'", "'sha256-abc'"]
    assert directives["default-src"] == ["'none'"] and "https:" in directives["img-src"]


def test_a_crash_answers_with_the_sites_page_and_the_header_policy(tmp_path: Path) -> None:
    async def broken(request: Request) -> HTMLResponse:
        raise RuntimeError("a bug")

    app = create_app(make_site(tmp_path))
    app.router.routes.append(Route("/broken", broken))
    answer = TestClient(app, raise_server_exceptions=False).get("/broken")
    assert answer.status_code == 500 and MASTHEAD in answer.text and "a bug" not in answer.text
    found = Answer("GET", "/broken", 500, dict(answer.headers), answer.text)
    assert policy_breaches(found) == []
