"""What keeps the sign-up form from being abused: CSRF tokens and sliding-window rate limits."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque

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
        if not stamp.isdigit():
            return False
        age = (time.time() if now is None else now) - int(stamp)
        if not 0 <= age <= CSRF_TTL:
            return False
        return hmac.compare_digest(self._mac(cookie, stamp), mac)

    def _mac(self, cookie: str, stamp: str) -> str:
        digest = hmac.new(self.key, f"{cookie}\n{stamp}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode("ascii")


class RateLimit:
    """At most `limit` events per key in any `window` seconds, remembered for `max_keys` keys.

    In memory, per server process (`newsletter serve` is one process). Keys are hashed so no
    address or IP is kept in clear; the oldest keys are forgotten first when the table is full.
    """

    def __init__(self, limit: int, window: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._events: OrderedDict[bytes, deque[float]] = OrderedDict()

    def allow(self, key: str, now: float | None = None) -> bool:
        """Count one event for the key if it is within the limit; False (and not counted) if not."""
        now = time.monotonic() if now is None else now
        hashed = hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest()
        events = self._events.get(hashed)
        if events is None:
            events = self._events[hashed] = deque()
            while len(self._events) > self.max_keys:
                self._events.popitem(last=False)
        else:
            self._events.move_to_end(hashed)
        while events and now - events[0] >= self.window:
            events.popleft()
        if len(events) >= self.limit:
            return False
        events.append(now)
        return True
