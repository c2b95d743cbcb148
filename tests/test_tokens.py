"""Unsubscribe tokens: only links we minted, for exactly that list and address, verify."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from newsletter.errors import ConfigError
from newsletter.mail.tokens import (
    make_token,
    unsubscribe_link,
    unsubscribe_url,
    verify_token,
)
from newsletter.settings import Settings

SECRET = "test-secret-0123456789"


def test_token_verifies_for_same_list_and_address_in_any_case() -> None:
    token = make_token(SECRET, "example", "Alice@Example.org")
    assert verify_token(SECRET, "example", "alice@example.ORG", token)


@pytest.mark.parametrize(
    "secret, list_name, email",
    [
        ("other-secret", "example", "alice@example.org"),
        (SECRET, "other", "alice@example.org"),
        (SECRET, "example", "bob@example.org"),
    ],
)
def test_token_fails_for_any_other_secret_list_or_address(secret: str, list_name: str, email: str) -> None:
    token = make_token(SECRET, "example", "alice@example.org")
    assert not verify_token(secret, list_name, email, token)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1],
        lambda t: t + "A",
        lambda t: t.upper(),
        lambda t: "",
        lambda t: "é" + t[1:],
    ],
)
def test_mangled_token_is_refused(mangle) -> None:
    token = make_token(SECRET, "example", "alice@example.org")
    assert not verify_token(SECRET, "example", "alice@example.org", mangle(token))


def test_token_is_url_safe() -> None:
    for i in range(200):
        token = make_token(SECRET, "example", f"user{i}@example.org")
        assert token.replace("-", "").replace("_", "").isalnum()


def test_unsubscribe_url_carries_list_address_and_token() -> None:
    url = unsubscribe_url("https://digest.example.org/", SECRET, "example", "a+b@example.org")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "digest.example.org", "/unsubscribe")
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["email"] == "a+b@example.org" and query["list"] == "example"
    assert verify_token(SECRET, "example", "a+b@example.org", query["token"])


def test_link_without_secret_is_refused_with_the_variable_to_set() -> None:
    settings = Settings(base_url="https://digest.example.org")
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET"):
        unsubscribe_link(settings, "example", "a@example.org")
