"""What keeps the sign-up form from being abused: CSRF tokens and rate limits kept in the database."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import time

from ..store import Database
from ..store.limits import count_hit

CSRF_COOKIE = "nl_csrf"
CSRF_TTL = 2 * 3600.0  # seconds a form stays good to submit


class CsrfGuard:
    """A form token bound to a random cookie (double submit, signed): a page elsewhere has neither.

    The cookie is SameSite=Strict, so a form posted from another site arrives without it and is
    shown again, filled in, with a fresh token: a real person presses Subscribe once more, a
    forged cross-site post changes nothing.
    """

    def __init__(self, secret: str) -> None:
        self.key = hmac.new(secret.encode("utf-8"), b"paper-digest csrf v1", hashlib.sha256).digest()

    @staticmethod
    def new_cookie() -> str:
        return secrets.token_urlsafe(18)

    def token(self, cookie: str, now: float | None = None) -> str:
        """The form field for this cookie, stamped so it expires."""
        stamp = str(int(time.time() if now is None else now))
        return f"{stamp}.{self._mac(cookie, stamp)}"

    def check(self, cookie: str, token: str, now: float | None = None) -> bool:
        """True for a fresh token minted for this very cookie."""
        if not cookie or not token or len(token) > 100 or len(cookie) > 100:
            return False
        stamp, _, mac = token.partition(".")
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) < 12):  # "²" is a digit to isdigit
            return False
        age = (time.time() if now is None else now) - int(stamp)
        if not 0 <= age <= CSRF_TTL:
            return False
        return hmac.compare_digest(self._mac(cookie, stamp), mac)

    def _mac(self, cookie: str, stamp: str) -> str:
        digest = hmac.new(self.key, f"{cookie}\n{stamp}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode("ascii")


class RateLimit:
    """At most `limit` events per key in each fixed window of `window` seconds, counted in the database.

    Every `serve` process on the same database shares the counts, and a restart keeps them. Keys
    are hashed with a key made from the secret, so no address or IP is stored in clear; the
    limit's name keeps two limits on the same key apart.
    """

    def __init__(self, db: Database, name: str, limit: int, window: int, secret: str) -> None:
        self.db = db
        self.name = name
        self.limit = limit
        self.window = window
        self.key = hmac.new(secret.encode("utf-8"), b"paper-digest rate limit v1", hashlib.sha256).digest()

    def allow(self, key: str, now: float | None = None) -> bool:
        """Count one event for the key if it is within the limit; False (and not counted) if not."""
        digest = hmac.new(self.key, key.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
        when = time.time() if now is None else now  # the wall clock: shared by every process
        return count_hit(self.db, f"{self.name}:{digest}", self.limit, self.window, when)


def mailbox_key(address: str) -> str:
    """The one mailbox behind an address's variants, for counting mails to it.

    Most providers deliver `name+tag@` to `name@`, and Gmail ignores dots in the local part, so
    `t.arget+7@` and `target@` are one inbox: counted apart, a form could mail it once per variant.
    Folding dots for every domain only makes the limit a little stricter.
    """
    local, _, domain = address.strip().lower().rpartition("@")
    local = local.split("+", 1)[0].replace(".", "")
    return f"{local}@{domain}"


def client_key(host: str) -> str:
    """What the per-IP limit counts: the address, or its /64 for IPv6 (one customer's whole block)."""
    try:
        parsed = ipaddress.ip_address(host)
    except ValueError:
        return host
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)
