"""The unsubscribe endpoint through Starlette's TestClient: GET never changes, POST does, once."""

from __future__ import annotations

import warnings
from pathlib import Path
from urllib.parse import urlencode, urljoin

import pytest

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient; httpx still works and is what we install.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from helpers.lists import store_of
from sqlalchemy import text

from newsletter.errors import ConfigError
from newsletter.mail.tokens import Purpose, TokenSigner
from newsletter.mail.tokens import make_legacy_token as make_token
from newsletter.settings import Settings
from newsletter.web.app import create_app

SECRET = "web-test-secret-Zq7mW4xR8vB1nT6kP3yH"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def settings(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    folder = tmp_path / "subscribers"
    folder.mkdir()
    (folder / "news.csv").write_text(
        "email,name,keywords,status,subscribed_at,unsubscribed_at,team\n"
        "alice@example.org,Alice,diffusion,active,2026-11-01T10:00:00+00:00,,red\n"
        "bob@example.org,Bob,,active,,,blue\n",
        encoding="utf-8",
    )
    return Settings(secret=SECRET, subscribers_dir=folder, config_dir=tmp_path)


@pytest.fixture
def client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings), follow_redirects=False)


def link(email: str = "alice@example.org", list_name: str = "news", token: str | None = None) -> str:
    token = make_token(SECRET, list_name, email) if token is None else token
    return "/unsubscribe?" + urlencode({"list": list_name, "email": email, "token": token})


def csv_bytes(settings: Settings) -> bytes:
    return settings.list_path("news").read_bytes()


def test_get_shows_a_confirm_button_and_changes_nothing(client: TestClient, settings: Settings) -> None:
    before = csv_bytes(settings)
    response = client.get(link())
    assert response.status_code == 200
    assert '<form method="post"' in response.text and "<button" in response.text
    assert 'name="List-Unsubscribe" value="One-Click"' in response.text
    assert "alice@example.org" in response.text
    assert csv_bytes(settings) == before


def test_one_click_post_unsubscribes_with_200_and_no_redirect(client: TestClient, settings: Settings) -> None:
    response = client.post(link(), data=ONE_CLICK)
    assert response.status_code == 200 and "location" not in response.headers
    alice = store_of(settings.list_path("news")).get("alice@example.org")
    assert alice is not None and alice.status == "unsubscribed" and alice.unsubscribed_at is not None
    assert alice.extra == {"team": "red"}


def test_multipart_post_works_too(client: TestClient, settings: Settings) -> None:
    response = client.post(link("bob@example.org"), files={"List-Unsubscribe": (None, "One-Click")})
    assert response.status_code == 200
    assert not store_of(settings.list_path("news")).is_active("bob@example.org")


def test_repeated_post_is_idempotent(client: TestClient, settings: Settings) -> None:
    assert client.post(link(), data=ONE_CLICK).status_code == 200
    after_first = csv_bytes(settings)
    assert client.post(link(), data=ONE_CLICK).status_code == 200
    assert csv_bytes(settings) == after_first


def test_the_confirm_form_posts_back_to_the_same_link(client: TestClient, settings: Settings) -> None:
    page = client.get(link()).text
    action = page.split('action="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert action.startswith("?")
    assert client.post(urljoin("/unsubscribe", action), data=ONE_CLICK).status_code == 200
    assert not store_of(settings.list_path("news")).is_active("alice@example.org")


@pytest.mark.parametrize("host", ["evil.example/?", "evil.example/x?y=", "evil.example#"])
def test_a_forged_host_header_cannot_bend_the_confirm_form(client: TestClient, host: str) -> None:
    page = client.get(link(), headers={"Host": host}).text
    action = page.split('action="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert action == "?" + link().split("?", 1)[1]


@pytest.mark.parametrize(
    "url",
    [
        link(token="A" * 43),
        link(token=make_token(SECRET, "news", "alice@example.org")[:-2]),
        link(token=make_token("other-secret", "news", "alice@example.org")),
        link(token=make_token(SECRET, "other", "alice@example.org")),
        link("alice@example.org", token=make_token(SECRET, "news", "bob@example.org")),
        link(list_name="../news", token=make_token(SECRET, "../news", "alice@example.org")),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_forged_or_mangled_tokens_get_403_and_change_nothing(
    url: str, method: str, client: TestClient, settings: Settings
) -> None:
    before = csv_bytes(settings)
    response = client.request(method, url, data=ONE_CLICK if method == "POST" else None)
    assert response.status_code == 403
    assert csv_bytes(settings) == before


def test_incomplete_link_is_a_400(client: TestClient) -> None:
    assert client.post("/unsubscribe?list=news&email=alice@example.org", data=ONE_CLICK).status_code == 400


def test_address_no_longer_on_the_list_is_already_unsubscribed(
    client: TestClient, settings: Settings
) -> None:
    before = csv_bytes(settings)
    assert client.post(link("gone@example.org"), data=ONE_CLICK).status_code == 200
    assert csv_bytes(settings) == before


def test_unknown_list_is_a_404(client: TestClient, settings: Settings) -> None:
    url = link(list_name="nolist", token=make_token(SECRET, "nolist", "alice@example.org"))
    assert client.post(url, data=ONE_CLICK).status_code == 404
    assert not settings.list_path("nolist").exists()


def test_answers_keep_the_token_out_of_caches_and_referers(client: TestClient) -> None:
    headers = client.get(link()).headers
    assert headers["cache-control"] == "no-store" and headers["referrer-policy"] == "no-referrer"


def test_page_escapes_what_it_echoes(client: TestClient) -> None:
    email = '"<script>"@example.org'
    response = client.get(link(email))
    assert response.status_code == 200 and "<script>" not in response.text


def test_app_without_secret_is_refused() -> None:
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET"):
        create_app(Settings(secret=None))


def test_serve_without_secret_refuses_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from newsletter.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NEWSLETTER_SECRET", raising=False)
    result = CliRunner().invoke(main, ["serve", "--port", "0"])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: NEWSLETTER_SECRET is not set, too weak for `newsletter serve`, "
        f"in the environment (no newsletter.toml in {tmp_path.resolve()}), "
        "set it to at least 32 random characters, e.g. "
        "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`\n"
    )


def test_a_mangled_body_with_a_good_token_still_unsubscribes(client: TestClient, settings: Settings) -> None:
    response = client.post(
        link(), content=b"--nope\r\ngarbage", headers={"Content-Type": "multipart/form-data; boundary=nope"}
    )
    assert response.status_code == 200
    assert not store_of(settings.list_path("news")).is_active("alice@example.org")


@pytest.mark.parametrize(
    "broken",
    [b"email,name\nalice@example.org,Ren\xe9\n", b'email,name\nbob@example.org,"Bob\n' + b"x,y\n" * 70_000],
    ids=["not-utf8", "stray-quote"],
)
def test_a_list_that_cannot_be_read_still_records_the_unsubscribe(
    client: TestClient, settings: Settings, broken: bytes
) -> None:
    path = settings.list_path("news")
    store_of(path)  # read in by the send that mailed the link
    path.write_bytes(broken)
    assert client.post(link(), data=ONE_CLICK).status_code == 200
    assert path.read_bytes() == broken  # the person's file is theirs to fix; the change is in the database
    path.write_bytes(b"email,name\nalice@example.org,Rene\n")  # fixed by hand
    assert not store_of(path).is_active("alice@example.org")


def test_a_change_that_cannot_be_recorded_is_a_503(client: TestClient, settings: Settings) -> None:
    store = store_of(settings.list_path("news"))
    with store.db.write() as conn:  # the suppressions cannot be written any more
        conn.execute(text("ALTER TABLE suppressions RENAME TO suppressions_gone"))
    assert client.post(link(), data=ONE_CLICK).status_code == 503
    assert store.is_active("alice@example.org")  # nothing half done


def test_the_archive_folder_is_served_under_archive(settings: Settings, client: TestClient) -> None:
    folder = settings.path(settings.archive_dir)
    assert client.get("/archive/").status_code == 404
    folder.mkdir()  # written after the server started, as `newsletter archive` would
    (folder / "index.html").write_text("<h1>Issues</h1>")
    (folder / "feed.xml").write_text("<feed/>")
    assert client.get("/archive/").text == "<h1>Issues</h1>"
    assert client.get("/archive/feed.xml").headers["content-type"].endswith("xml")
    assert client.get("/archive/nope.html").status_code == 404


def test_without_an_archive_folder_archive_is_a_404(client: TestClient) -> None:
    response = client.get("/archive/")
    assert response.status_code == 404 and "No issues have been archived" in response.text


def opaque_link(email: str = "alice@example.org", purpose: Purpose = Purpose.UNSUBSCRIBE) -> str:
    return "/unsubscribe?" + urlencode({"t": TokenSigner(SECRET).sign(purpose, "news", email)})


def test_opaque_link_unsubscribes_and_carries_no_address(client: TestClient, settings: Settings) -> None:
    url = opaque_link()
    assert "alice" not in url and "%40" not in url
    before = csv_bytes(settings)
    assert client.get(url).status_code == 200 and csv_bytes(settings) == before
    assert client.post(url, data=ONE_CLICK).status_code == 200
    assert not store_of(settings.list_path("news")).is_active("alice@example.org")


@pytest.mark.parametrize("purpose", [Purpose.MANAGE, Purpose.CONFIRM, Purpose.FEEDBACK])
def test_a_token_for_another_purpose_cannot_unsubscribe(
    purpose: Purpose, client: TestClient, settings: Settings
) -> None:
    before = csv_bytes(settings)
    assert client.post(opaque_link(purpose=purpose), data=ONE_CLICK).status_code == 403
    assert csv_bytes(settings) == before
