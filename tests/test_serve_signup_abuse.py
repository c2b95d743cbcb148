"""Issue 22 through a real `serve` and a real SMTP server: what a stranger can do with the sign-up
form and a reader's own links changes nothing that is not theirs.

Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers.served_site import ServedSite, served_site
from helpers.signup_site import SECRET, field, link_in
from sqlalchemy import event

from newsletter.mail.tokens import unsubscribe_url
from newsletter.models import Subscriber
from newsletter.statuses import Frequency, SubscriberStatus
from newsletter.store import open_database

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def site(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedSite]:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    with served_site(tmp_path) as served:
        yield served


def post_link(client: httpx.Client, link: str) -> httpx.Response:
    """Press the button of the page a mailed link opens (the token travels in the form)."""
    page = client.get(link).text
    action = re.search(r'<form method="post" action="([^"]*)"', page)
    assert action, page
    return client.post(
        action.group(1) if action.group(1).startswith("/") else link, data={"t": field(page, "t")}
    )


def test_a_later_sign_up_never_changes_what_a_pending_reader_confirms(site: ServedSite) -> None:
    site.sign_up("vic@example.org", name="Victoria", keywords="speech")
    confirm_link = link_in(site.mails(1)[0], "/confirm")
    stranger = site.browser()
    site.sign_up(
        "vic@example.org",
        client=stranger,
        name="Mallory Was Here",
        keywords="casino bonus",
        frequency="daily",
    )
    waiting = site.store().get("vic@example.org")
    assert waiting is not None and waiting.name == "Victoria" and waiting.keywords == ["speech"]
    assert post_link(site.client, confirm_link).status_code == 200
    vic = site.store().get("vic@example.org")
    assert vic is not None and vic.status is SubscriberStatus.ACTIVE
    assert (vic.name, vic.keywords, vic.frequency) == ("Victoria", ["speech"], Frequency.WEEKLY)


@pytest.mark.parametrize("address", ["alice@example.org", "uma@example.org", "bob@example.org"])
def test_a_sign_up_for_an_address_on_the_list_changes_nothing_stored(site: ServedSite, address: str) -> None:
    before = site.store().get(address)
    site.sign_up(address, name="Mallory Was Here", keywords="casino bonus", frequency="daily")
    site.mails(1)
    assert site.store().get(address) == before


def test_an_active_reader_gets_one_manage_mail_an_hour_instead_of_a_confirmation(site: ServedSite) -> None:
    first = site.sign_up("alice@example.org", keywords="casino bonus")
    second = site.sign_up("alice@example.org", client=site.browser(), keywords="casino bonus")
    mail = site.mails(1)[0]
    assert "/manage?t=" in str(mail.get_body(preferencelist=("plain",)).get_content())  # type: ignore[union-attr]
    assert "/confirm?t=" not in mail.as_string()
    assert site.mailed_to("alice@example.org") == 1
    assert first.status_code == second.status_code == 200


def test_a_sign_up_the_hourly_limit_stopped_never_says_a_mail_was_sent(site: ServedSite) -> None:
    first = site.sign_up("new@example.org")
    second = site.sign_up("new@example.org", client=site.browser())
    site.mails(1)
    assert "We have sent you an email" in first.text
    assert "We have sent you an email" not in second.text
    assert "no new email" in second.text.lower()
    assert site.mailed_to("new@example.org") == 1


@pytest.mark.parametrize("way", ["one-click", "preferences page"])
def test_the_unsubscribed_page_subscribes_again_with_the_saved_topics(site: ServedSite, way: str) -> None:
    if way == "one-click":
        url = unsubscribe_url(site.url, SECRET, "news", "alice@example.org")
        page = site.client.post(url, data=ONE_CLICK)
    else:
        page = _leave_from_the_preferences_page(site)
    assert not site.store().is_active("alice@example.org")
    again = re.search(r'<form method="post" action="(/confirm)"', page.text)
    assert again, page.text
    mailed = len(site.smtp.received)
    answer = site.client.post(again.group(1), data={"t": field(page.text, "t")})
    assert answer.status_code == 200
    alice = site.store().get("alice@example.org")
    assert alice is not None and alice.status is SubscriberStatus.ACTIVE
    assert (alice.name, alice.keywords) == ("Alice", ["diffusion models"])
    assert len(site.smtp.received) == mailed  # the page's token proved the address: no mail needed


def _leave_from_the_preferences_page(site: ServedSite) -> httpx.Response:
    site.sign_up("alice@example.org")
    manage = link_in(site.mails(1)[0], "/manage")
    token = field(site.client.get(manage).text, "t")
    return site.client.post("/manage", data={"t": token, "action": "unsubscribe"})


def test_signing_up_again_through_the_form_keeps_the_saved_topics(site: ServedSite) -> None:
    site.client.post(unsubscribe_url(site.url, SECRET, "news", "alice@example.org"), data=ONE_CLICK)
    site.sign_up("alice@example.org", name="", keywords="")
    assert post_link(site.client, link_in(site.mails(1)[0], "/confirm")).status_code == 200
    alice = site.store().get("alice@example.org")
    assert alice is not None and alice.status is SubscriberStatus.ACTIVE
    assert (alice.name, alice.keywords) == ("Alice", ["diffusion models"])


def test_a_confirm_link_works_once_and_later_shows_the_state_without_new_links(site: ServedSite) -> None:
    site.sign_up("new@example.org")
    link = link_in(site.mails(1)[0], "/confirm")
    first = post_link(site.client, link)
    assert first.status_code == 200 and "/manage" in first.text  # the preferences, to steer the first digest
    for _ in range(2):
        later = site.client.post(link)
        assert later.status_code == 200
        assert "subscribed" in later.text.lower()
        assert 'name="t"' not in later.text and "?t=" not in later.text  # no new token handed out
    assert site.store().is_active("new@example.org")


def test_a_sign_up_runs_the_same_statements_whatever_the_state_of_the_address(site: ServedSite) -> None:
    # Time cannot be asserted; the work behind it can: the same statements, in the same order.
    site.store().add(Subscriber("vic@example.org", status=SubscriberStatus.PENDING))  # mailed no one yet
    site.sign_up("warm@example.org")  # the first form reads the papers; not what is compared
    engine = open_database(site.settings.places.database()).engine
    ran: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        words = statement.split()[:3]  # e.g. INSERT INTO signups, UPDATE subscribers SET
        ran.append(
            "write subscribers" if "subscribers" in words[1:3] and words[0] != "SELECT" else " ".join(words)
        )

    work = {}
    event.listen(engine, "before_cursor_execute", record)
    try:
        for state, address in [
            ("new", "new@example.org"),
            ("pending", "vic@example.org"),
            ("active", "alice@example.org"),
            ("unsubscribed", "uma@example.org"),
            ("bounced", "bob@example.org"),
        ]:
            site.sign_up(address, client=site.browser())
            work[state], ran[:] = list(ran), []
            assert work[state], state
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert all(statements == work["active"] for statements in work.values()), work


def test_an_address_our_mail_cannot_reach_is_refused_on_the_form(site: ServedSite) -> None:
    answer = site.sign_up("j\u00fcrgen@example.org")
    assert answer.status_code == 400
    assert "cannot deliver to an address with letters beyond plain ASCII" in answer.text
    assert "We have sent you an email" not in answer.text
    assert site.store().get("j\u00fcrgen@example.org") is None


def test_an_internationalised_domain_is_signed_up_and_mailed_in_its_ascii_form(site: ServedSite) -> None:
    assert site.sign_up("ada@b\u00fccher.example").status_code == 200
    assert site.mails(1)[0]["To"] == "ada@xn--bcher-kva.example"
    assert site.store().get("ada@xn--bcher-kva.example") is not None
