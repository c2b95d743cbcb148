"""Issue 22 rows 2 and 15 through a real `serve`: the sign-up limits hold whatever a client claims,
and only the lists the operator opened take sign-ups from the public.

Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers.served_site import ServedSite, served_site
from helpers.signup_site import SECRET
from sqlalchemy import select

from newsletter.mail.tokens import Purpose, TokenSigner
from newsletter.store import open_database
from newsletter.store.schema import metadata

SIGNUPS_PER_IP = 10


StartSite = Callable[..., ServedSite]


@pytest.fixture
def site_with(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[StartSite]:
    """Starts the site (lists `news`, the default, and `alpha`) with these settings."""
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    (tmp_path / "subscribers").mkdir()
    (tmp_path / "subscribers" / "alpha.csv").write_text("email,name,keywords,status\n", encoding="utf-8")
    with contextlib.ExitStack() as stack:
        yield lambda **settings: stack.enter_context(served_site(tmp_path, **settings))


def sign_up_from(site: ServedSite, count: int, forwarded: bool) -> list[int]:
    """Statuses of `count` sign-ups of different addresses, each claiming another client address."""
    statuses = []
    for i in range(count):
        headers = {"X-Forwarded-For": f"10.0.{i}.{i + 1}"} if forwarded else {}
        with site.browser(**headers) as browser:
            statuses.append(site.sign_up(f"reader{i}@example.org", client=browser).status_code)
    return statuses


def test_forwarded_headers_from_an_untrusted_peer_do_not_dodge_the_per_ip_limit(site_with: StartSite) -> None:
    site = site_with()
    statuses = sign_up_from(site, SIGNUPS_PER_IP + 1, forwarded=True)
    assert statuses == [200] * SIGNUPS_PER_IP + [429]


def test_a_trusted_proxy_names_the_client(site_with: StartSite) -> None:
    site = site_with(serve={"trusted_proxies": ["127.0.0.1"]})
    assert sign_up_from(site, SIGNUPS_PER_IP + 1, forwarded=True) == [200] * (SIGNUPS_PER_IP + 1)


def test_plus_tag_and_dot_variants_share_one_mail_an_hour_across_lists(site_with: StartSite) -> None:
    site = site_with(serve={"public_lists": ["alpha"]})
    variants = [
        ("news", "target+1@example.org"),
        ("news", "target+2@example.org"),
        ("news", "t.arget@example.org"),
        ("alpha", "Target+3@Example.org"),
    ]
    pages = [site.sign_up(address, list_name=name, client=site.browser()) for name, address in variants]
    site.mails(1)
    assert [page.status_code for page in pages] == [200] * 4
    assert all("no new email" in page.text for page in pages[1:])
    assert len(site.smtp.received) == 1


def test_a_list_takes_public_sign_ups_only_when_the_config_says_so(site_with: StartSite) -> None:
    site = site_with()
    assert site.client.get("/subscribe", params={"list": "alpha"}).status_code == 404
    assert site.client.post("/subscribe", data={"list": "alpha", "email": "x@example.org"}).status_code == 404
    assert site.client.get("/subscribe", params={"list": "news"}).status_code == 200  # the default list does
    assert site.store("alpha").get("x@example.org") is None


def test_a_list_the_config_opens_takes_sign_ups(site_with: StartSite) -> None:
    site = site_with(serve={"public_lists": ["alpha"]})
    assert site.sign_up("x@example.org", list_name="alpha").status_code == 200
    assert site.store("alpha").get("x@example.org") is not None


SAVES_PER_HOUR = 30


def test_preference_saves_with_one_readers_link_are_limited_and_stored_in_place(site_with: StartSite) -> None:
    site = site_with()
    token = TokenSigner(SECRET).sign(Purpose.MANAGE, "news", "alice@example.org")
    statuses, stored = [], []
    for i in range(SAVES_PER_HOUR + 1):
        form = {"t": token, "keywords": f"topic {i}", "frequency": "weekly"}
        statuses.append(site.client.post("/manage", data=form).status_code)
        stored.append(rows_about(site, "alice@example.org"))
    assert statuses == [200] * SAVES_PER_HOUR + [429]
    alice = site.store().get("alice@example.org")
    assert alice is not None and alice.keywords == [f"topic {SAVES_PER_HOUR - 1}"]
    assert set(stored) == {stored[0]}  # each save overwrote what there was: nothing piles up
    unsubscribed = site.client.post("/manage", data={"t": token, "action": "unsubscribe"})
    assert unsubscribed.status_code == 200 and not site.store().is_active("alice@example.org")


def rows_about(site: ServedSite, address: str) -> int:
    """Rows of any table that hold this address (the limits keep only a keyed hash of it)."""
    db = open_database(site.settings.places.database())
    with db.read() as conn:
        return sum(
            len([row for row in conn.execute(select(table)) if any(address in str(v) for v in row)])
            for table in metadata.sorted_tables
        )
