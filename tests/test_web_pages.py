"""How serve's pages read to a newcomer: a home page, archive pages that lead to the sign-up form,
and pages that say where things stand. Plain HTTP through the app, so it runs without a browser."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest
from helpers.served_site import served_site
from helpers.signup_site import field, link_in, make_site, outbox, sign_up

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from newsletter.mail.tokens import Purpose, TokenSigner, purpose_url
from newsletter.pipeline.issue import prepare_issue
from newsletter.settings import Settings
from newsletter.web.app import create_app
from newsletter.web.archive import build_site, snapshot_issue


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_site(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), follow_redirects=False) as client:
        yield client


def archive(settings: Settings) -> None:
    """What `newsletter archive` does: the sample week's snapshot, then the pages."""
    snapshot_issue(settings, prepare_issue(settings, require_papers=True))
    build_site(settings)


def hrefs(html: str) -> list[str]:
    return re.findall(r'<a href="([^"]*)"', html)


def test_the_home_page_is_the_sign_up_form_with_a_link_to_the_archive(
    settings: Settings, client: TestClient
) -> None:
    archive(settings)
    home = client.get("/")
    assert home.status_code == 200
    assert 'name="email"' in home.text and 'action="/subscribe"' in home.text
    assert "<h1>Subscribe to Lab Papers</h1>" in home.text
    [to_archive] = [h for h in hrefs(home.text) if "archive" in h]
    assert client.get("/" + to_archive).status_code == 200


def test_without_an_archive_the_home_page_links_to_none(client: TestClient) -> None:
    home = client.get("/")
    assert home.status_code == 200 and 'name="email"' in home.text
    assert not [h for h in hrefs(home.text) if "archive" in h]


@pytest.mark.parametrize("page", ["/archive/", "/archive/2024-W11.html"])
def test_archive_pages_link_to_the_sign_up_form(settings: Settings, client: TestClient, page: str) -> None:
    archive(settings)
    answer = client.get(page)
    assert answer.status_code == 200
    [signup] = [h for h in hrefs(answer.text) if "subscribe" in h]
    form = client.get(urljoin(f"http://testserver{page}", signup))
    assert form.status_code == 200 and 'name="email"' in form.text


def test_the_archive_heading_keeps_the_issue_id_in_one_piece(settings: Settings, client: TestClient) -> None:
    archive(settings)
    page = client.get("/archive/2024-W11.html").text
    assert re.search(r'<h1>Lab Papers <span class="issue-id">2024-W11</span></h1>', page)


def feedback_link(settings: Settings) -> str:
    signer = TokenSigner(str(settings.secret))
    return purpose_url(signer, "", Purpose.FEEDBACK, "news", "alice@example.org", item="2403.00001")


@pytest.mark.parametrize(
    ("ending", "heading"),
    [
        ("&v=more", "More papers like this one?"),
        ("&v=less", "Fewer papers like this one?"),
        ("&v=sideways", "Incomplete link"),
        ("forged", "Link not valid"),
    ],
)
def test_feedback_and_invalid_link_pages_carry_the_newsletter_name_and_footer(
    settings: Settings, client: TestClient, ending: str, heading: str
) -> None:
    url = "/feedback?t=forged" if ending == "forged" else feedback_link(settings) + ending
    page = client.get(url).text
    assert f"<h1>{heading}</h1>" in page
    assert '<p class="masthead">Lab Papers</p>' in page
    assert re.search(r'<p class="footer">Lab Papers\b', page)
    assert 'class="danger"' not in page, "a feedback button in the unsubscribe button's colour"


def main_text(html: str) -> str:
    """The page's box, where a reader reads (not the <title>)."""
    found = re.search(r"<main.*?</main>", html, re.DOTALL)
    assert found, html
    return found.group(0)


def confirmed(client: TestClient, settings: Settings, address: str, **fields: str) -> tuple[str, str]:
    """Sign up and confirm through the pages; the confirm link and the confirmed page."""
    sign_up(client, address, **fields)
    [mail] = [m for m in outbox(settings.config_dir) if m["To"] == address]
    link = link_in(mail, "/confirm")
    page = client.post("/confirm", data={"t": field(client.get(link).text, "t")})
    assert page.status_code == 200
    return link, page.text


def test_the_confirmed_page_says_subscribed_once(settings: Settings, client: TestClient) -> None:
    _, page = confirmed(client, settings, "new@example.org")
    box = main_text(page)
    assert "<h1>You\u2019re subscribed</h1>" in box
    assert box.lower().count("subscribed") == 1, box


def test_a_used_confirm_link_says_already_confirmed_and_offers_no_button(
    settings: Settings, client: TestClient
) -> None:
    link, _ = confirmed(client, settings, "new@example.org")
    again = client.get(link)
    assert again.status_code == 200
    assert "<h1>Already confirmed</h1>" in again.text
    assert "<button" not in again.text
    assert "new@example.org is subscribed to the weekly Lab Papers digest" in again.text


@pytest.mark.parametrize(("frequency", "issue"), [("weekly", "this week"), ("daily", "today")])
def test_the_confirmed_page_speaks_of_the_readers_own_cadence(
    settings: Settings, client: TestClient, frequency: str, issue: str
) -> None:
    _, page = confirmed(client, settings, "new@example.org", frequency=frequency)
    assert f"{issue.capitalize()}\u2019s issue would have sent you" in page
    other = "today" if issue == "this week" else "this week"
    assert f"{other}\u2019s issue" not in page.lower()


def test_after_choosing_daily_manage_speaks_of_todays_issue(settings: Settings, client: TestClient) -> None:
    confirmed(client, settings, "new@example.org", frequency="weekly")
    token = TokenSigner(str(settings.secret)).sign(Purpose.MANAGE, "news", "new@example.org")
    form = {"t": token, "action": "save", "name": "Ada", "keywords": "diffusion models", "frequency": "daily"}
    saved = client.post("/manage", data=form).text
    again = client.get("/manage", params={"t": token}).text
    for page in (saved, again):
        assert "With these topics, today\u2019s issue sends you" in page
        assert "this week\u2019s issue" not in page.lower()


def test_in_a_local_trial_check_your_inbox_names_the_outbox_folder(
    settings: Settings, client: TestClient
) -> None:
    page = sign_up(client, "new@example.org").text
    assert "<h1>Check your inbox</h1>" in page and "outbox/new/" in page
    [mail] = outbox(settings.config_dir)  # and that is where it is
    assert mail["To"] == "new@example.org"
    assert len(list((settings.config_dir / "outbox" / "new").iterdir())) == 1


def test_with_a_real_mail_server_check_your_inbox_names_no_folder(tmp_path: Path) -> None:
    with served_site(tmp_path) as site:
        page = site.sign_up("new@example.org").text
        site.mails(1)
    assert "<h1>Check your inbox</h1>" in page and "spam folder" in page
    assert "outbox" not in page
