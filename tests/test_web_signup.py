"""Sign-up, confirm and manage over HTTP: double opt-in, no enumeration, every abuse changes nothing.

Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from helpers.signup_site import SECRET, field, link_in, make_site, outbox, sign_up, text_part

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from helpers.lists import store_of

from newsletter.mail.tokens import Purpose, TokenSigner
from newsletter.settings import Settings
from newsletter.statuses import Frequency, SubscriberStatus
from newsletter.store.subscribers import SubscriberStore
from newsletter.subscribers.signup import ConfirmOutcome, confirm, drop_stale_pending
from newsletter.subscribers.writeback import write_back
from newsletter.web.app import create_app

SIGNER = TokenSigner(SECRET)


@pytest.fixture
def settings(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    return make_site(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), follow_redirects=False) as client:
        yield client


def store(settings: Settings) -> SubscriberStore:
    return store_of(settings.list_path("news"))


def csv_bytes(settings: Settings) -> bytes:
    return settings.list_path("news").read_bytes()


def test_the_form_labels_every_field_and_suggests_keywords(client: TestClient) -> None:
    page = client.get("/subscribe?list=news")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    for name in ("email", "name", "keywords"):
        assert f'<label for="{name}"' in page.text and f'id="{name}"' in page.text
    assert 'name="frequency" value="weekly"' in page.text and 'name="frequency" value="daily"' in page.text
    assert 'name="website"' in page.text and 'aria-hidden="true"' in page.text
    assert "e.g. <em>" in page.text  # examples from this week's papers
    assert page.cookies.get("nl_csrf")


def test_sign_up_writes_pending_and_mails_a_confirmation_link(client: TestClient, settings: Settings) -> None:
    answer = sign_up(client, "New.Reader@Example.org")
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    row = store(settings).get("new.reader@example.org")
    assert row is not None and row.status is SubscriberStatus.PENDING
    assert row.keywords == ["diffusion models", "speech"] and row.name == "Ada Lovelace"
    [mail] = outbox(settings.config_dir)
    assert mail["To"] == "New.Reader@example.org" and mail["Auto-Submitted"] == "auto-replied"
    assert mail["Message-ID"] and mail["Date"] and mail["From"].addresses[0].addr_spec == "digest@example.org"
    assert mail.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]
    link = link_in(mail, "/confirm")
    assert "reader" not in link.lower() and "%40" not in link and "@" not in link
    assert "48 hours" in text_part(mail)


def test_confirm_get_changes_nothing_and_post_activates_and_shows_papers(
    client: TestClient, settings: Settings
) -> None:
    sign_up(client, "new@example.org")
    link = link_in(outbox(settings.config_dir)[0], "/confirm")
    before = csv_bytes(settings)
    page = client.get(link)
    assert page.status_code == 200 and "<button" in page.text and csv_bytes(settings) == before
    done = client.post("/confirm", data={"t": field(page.text, "t")})
    assert done.status_code == 200 and "subscribed" in done.text
    assert done.text.count('class="paper"') >= 3  # this week's issue for "diffusion models; speech"
    row = store(settings).get("new@example.org")
    assert row is not None and row.status is SubscriberStatus.ACTIVE and row.confirmed_at is not None
    again = client.post("/confirm", data={"t": field(page.text, "t")})
    assert again.status_code == 200 and "subscribed" in again.text


@pytest.mark.parametrize(
    "email", ["alice@example.org", "uma@example.org", "bob@example.org", "x@example.org"]
)
def test_every_address_state_gets_the_same_page(client: TestClient, email: str) -> None:
    fresh = sign_up(client, "fresh@example.org").text
    assert sign_up(client, email).text == fresh


def test_active_unsubscribed_and_bounced_keep_their_status_until_confirmed(
    client: TestClient, settings: Settings
) -> None:
    for email in ("alice@example.org", "uma@example.org", "bob@example.org"):
        sign_up(client, email, keywords="speech")
    assert [s.status for s in store(settings).read()] == [
        SubscriberStatus.ACTIVE,
        SubscriberStatus.UNSUBSCRIBED,
        SubscriberStatus.BOUNCED,
    ]
    mails = {m["To"]: m for m in outbox(settings.config_dir)}
    assert "/manage?t=" in text_part(mails["alice@example.org"])  # a reminder, not a confirmation
    client.post(link_in(mails["uma@example.org"], "/confirm"))
    uma = store(settings).get("uma@example.org")
    assert uma is not None and uma.status is SubscriberStatus.ACTIVE and uma.keywords == ["speech"]


def test_one_confirmation_mail_per_address_per_hour(client: TestClient, settings: Settings) -> None:
    sign_up(client, "new@example.org")
    sign_up(client, "NEW@example.org")
    sign_up(client, "other@example.org")
    assert sorted(m["To"] for m in outbox(settings.config_dir)) == ["new@example.org", "other@example.org"]


def test_sign_ups_per_ip_are_limited(client: TestClient, settings: Settings) -> None:
    answers = [sign_up(client, f"r{i}@example.org").status_code for i in range(12)]
    assert answers == [200] * 10 + [429] * 2
    assert store(settings).get("r10@example.org") is None


def test_a_filled_honeypot_changes_nothing(client: TestClient, settings: Settings) -> None:
    before = csv_bytes(settings)
    answer = sign_up(client, "bot@example.org", website="http://spam.example")
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    assert csv_bytes(settings) == before and outbox(settings.config_dir) == []


@pytest.mark.parametrize("csrf", ["", "1.abc", "9999999999.xyz", "not-a-token"])
def test_a_bad_csrf_token_changes_nothing_and_asks_again(
    client: TestClient, settings: Settings, csrf: str
) -> None:
    before = csv_bytes(settings)
    answer = sign_up(client, "victim@example.org", csrf=csrf)
    assert answer.status_code == 200 and "press Subscribe" in answer.text
    assert 'value="victim@example.org"' in answer.text
    assert csv_bytes(settings) == before and outbox(settings.config_dir) == []


def test_a_post_from_another_site_without_our_cookie_changes_nothing(settings: Settings) -> None:
    with TestClient(create_app(settings)) as first, TestClient(create_app(settings)) as other:
        token = field(first.get("/subscribe").text, "csrf")
        before = csv_bytes(settings)
        answer = other.post("/subscribe", data={"csrf": token, "email": "victim@example.org", "list": "news"})
        assert "press Subscribe" in answer.text and csv_bytes(settings) == before


@pytest.mark.parametrize(
    "email", ["not-an-address", "a@b", "x" * 300 + "@example.org", "a@example.org\r\nBcc: c@example.org"]
)
def test_a_bad_address_is_refused_with_the_form(client: TestClient, settings: Settings, email: str) -> None:
    before = csv_bytes(settings)
    answer = sign_up(client, email)
    assert answer.status_code == 400 and 'role="alert"' in answer.text
    assert csv_bytes(settings) == before and outbox(settings.config_dir) == []


def test_an_unknown_list_is_a_404(client: TestClient) -> None:
    assert client.get("/subscribe?list=nolist").status_code == 404
    assert client.get("/subscribe?list=../news").status_code == 404


def token_url(
    path: str,
    purpose: Purpose,
    email: str = "alice@example.org",
    *,
    expires: datetime | timedelta | None = None,
) -> str:
    return f"{path}?{urlencode({'t': SIGNER.sign(purpose, 'news', email, expires=expires)})}"


@pytest.mark.parametrize("purpose", [Purpose.UNSUBSCRIBE, Purpose.CONFIRM, Purpose.FEEDBACK])
def test_only_a_manage_token_opens_the_preferences(
    client: TestClient, settings: Settings, purpose: Purpose
) -> None:
    before = csv_bytes(settings)
    assert client.get(token_url("/manage", purpose)).status_code == 403
    url = token_url("/manage", purpose)
    assert client.post(url, data={"keywords": "changed", "action": "save"}).status_code == 403
    assert csv_bytes(settings) == before


@pytest.mark.parametrize("purpose", [Purpose.UNSUBSCRIBE, Purpose.MANAGE, Purpose.FEEDBACK])
def test_only_a_confirm_token_confirms(client: TestClient, settings: Settings, purpose: Purpose) -> None:
    before = csv_bytes(settings)
    token = SIGNER.sign(purpose, "news", "uma@example.org")
    assert client.post("/confirm", data={"t": token}).status_code == 400
    assert csv_bytes(settings) == before


def test_an_expired_confirm_link_changes_nothing(client: TestClient, settings: Settings) -> None:
    before = csv_bytes(settings)
    old = SIGNER.sign(Purpose.CONFIRM, "news", "uma@example.org", expires=timedelta(seconds=-5))
    assert client.get(f"/confirm?t={old}").status_code == 400
    assert client.post("/confirm", data={"t": old}).status_code == 400
    assert csv_bytes(settings) == before


def test_a_confirm_link_older_than_the_last_unsubscribe_is_spent(settings: Settings) -> None:
    # A link minted on 2026-10-10; Uma unsubscribed on 2026-10-20: it must not bring her back.
    issued = datetime(2026, 10, 10, tzinfo=UTC)
    assert confirm(store(settings), "uma@example.org", issued) is ConfirmOutcome.GONE
    later = datetime(2026, 10, 21, tzinfo=UTC)
    assert confirm(store(settings), "uma@example.org", later) is ConfirmOutcome.CONFIRMED


def test_manage_saves_preferences_and_shows_what_they_pick(client: TestClient, settings: Settings) -> None:
    url = token_url("/manage", Purpose.MANAGE)
    page = client.get(url)
    assert page.status_code == 200 and "diffusion models" in page.text and "alice" not in url
    saved = client.post(
        url,
        data={
            "name": "Alice B",
            "keywords": "reinforcement learning; speech",
            "frequency": "daily",
            "pause_until": "2099-01-31",
            "action": "save",
        },
    )
    assert saved.status_code == 200 and "Saved" in saved.text
    assert saved.text.count('class="paper"') >= 1  # what the daily issue of the sample's one day picks
    alice = store(settings).get("alice@example.org")
    assert alice is not None and alice.keywords == ["reinforcement learning", "speech"]
    assert alice.frequency is Frequency.DAILY and str(alice.pause_until) == "2099-01-31"
    assert alice.name == "Alice B" and alice.status is SubscriberStatus.ACTIVE


def test_manage_refuses_bad_values_and_keeps_the_old_ones(client: TestClient, settings: Settings) -> None:
    before = csv_bytes(settings)
    url = token_url("/manage", Purpose.MANAGE)
    for data in (
        {"frequency": "hourly"},
        {"pause_until": "next week"},
        {"keywords": ";".join(f"k{i}" for i in range(40))},
    ):
        answer = client.post(url, data={"action": "save", **data})
        assert answer.status_code == 400 and 'role="alert"' in answer.text
    assert csv_bytes(settings) == before


def test_unsubscribe_from_the_preferences_page(client: TestClient, settings: Settings) -> None:
    answer = client.post(token_url("/manage", Purpose.MANAGE), data={"action": "unsubscribe"})
    assert answer.status_code == 200 and "Unsubscribed" in answer.text
    assert not store(settings).is_active("alice@example.org")
    again = client.get(token_url("/manage", Purpose.MANAGE))
    assert "not subscribed" in again.text


def test_sign_ups_nobody_confirmed_within_a_week_are_dropped(client: TestClient, settings: Settings) -> None:
    sign_up(client, "late@example.org")
    sign_up(client, "recent@example.org")
    assert drop_stale_pending(store(settings), now=datetime.now(UTC) + timedelta(days=3)) == 0
    assert drop_stale_pending(store(settings), now=datetime.now(UTC) + timedelta(days=8)) == 2
    assert [s.email for s in store(settings).read()] == [
        "alice@example.org",
        "uma@example.org",
        "bob@example.org",
    ]


def test_a_stale_sign_up_leaves_the_csv_at_the_next_write_back(
    client: TestClient, settings: Settings
) -> None:
    path = settings.list_path("news")
    sign_up(client, "late@example.org")
    write_back(store(settings), path)
    assert "late@example.org,Ada Lovelace,diffusion models; speech,pending," in path.read_text()
    assert drop_stale_pending(store(settings), now=datetime.now(UTC) + timedelta(days=8)) == 1
    write_back(store(settings), path)
    assert "late@example.org" not in path.read_text()
