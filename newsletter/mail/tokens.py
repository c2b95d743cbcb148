"""Unsubscribe tokens: proof that a link was minted by us for exactly this list and address."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote, urlencode

from ..errors import ConfigError
from ..settings import Settings

UNSUBSCRIBE_PATH = "/unsubscribe"


def _digest(secret: str, list_name: str, email: str) -> bytes:
    # A separator that cannot occur in a list name keeps ("a", "b@c") and ("a\nb", "@c") apart.
    message = f"unsubscribe\n{list_name}\n{email.strip().lower()}".encode()
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def make_token(secret: str, list_name: str, email: str) -> str:
    """A URL-safe HMAC-SHA256 token for one (list, address); the address's case does not matter."""
    if not secret:
        raise ConfigError(
            "no secret to sign unsubscribe links with",
            fix="set NEWSLETTER_SECRET (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)",
        )
    return base64.urlsafe_b64encode(_digest(secret, list_name, email)).rstrip(b"=").decode("ascii")


def verify_token(secret: str, list_name: str, email: str, token: str) -> bool:
    """True only for the token we would mint; compared in constant time."""
    if not secret or not token:
        return False
    expected = make_token(secret, list_name, email).encode("ascii")
    return hmac.compare_digest(expected, token.strip().encode("utf-8", "replace"))


def unsubscribe_url(base_url: str, secret: str, list_name: str, email: str) -> str:
    """The one-click link for List-Unsubscribe and the footer: list, address and token in the query."""
    query = urlencode(
        {"list": list_name, "email": email, "token": make_token(secret, list_name, email)}, quote_via=quote
    )
    return f"{base_url.rstrip('/')}{UNSUBSCRIBE_PATH}?{query}"


def unsubscribe_link(settings: Settings, list_name: str, email: str) -> str:
    """The link for a subscriber from settings, refusing clearly when secret or base URL is missing."""
    where = settings.source_label
    if not settings.secret:
        raise ConfigError(
            "NEWSLETTER_SECRET is not set, so unsubscribe links cannot be signed",
            where=where,
            fix="set NEWSLETTER_SECRET to a long random string (keep it the same between runs)",
        )
    if not settings.base_url:
        raise ConfigError(
            "base_url is not set, so unsubscribe links have nowhere to point",
            where=where,
            fix="set NEWSLETTER_BASE_URL to the public https address of `newsletter serve`",
        )
    return unsubscribe_url(settings.base_url, settings.secret, list_name, email)


def request_subject(secret: str, list_name: str, email: str) -> str:
    """The subject a mailto: unsubscribe link pre-fills; the token proves we minted it."""
    return f"unsubscribe {list_name} {email} {make_token(secret, list_name, email)}"
