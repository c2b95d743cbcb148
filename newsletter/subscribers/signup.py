"""Self-service changes to a list (sign-up, confirm, preferences), each one short transaction.

A change names the status the reader's page was built from, so a hand edit or another change
made meanwhile wins instead of being overwritten. What someone asks for on the sign-up form for
an address the list already has waits, apart, until its owner confirms from their mailbox:
nothing stored changes before that. A confirm link carries a digest of the request it was mailed
for, so a later sign-up by someone else can never ride on the owner's confirmation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from ..errors import SubscriberError
from ..models import Subscriber, to_the_second, utc_now
from ..statuses import Frequency, SubscriberStatus
from ..store.subscriberrows import utc_text
from ..store.subscribers import SubscriberStore
from ..text import scrub_controls, split_keywords
from .csvfile import RowError
from .rows import check_email

PENDING_DAYS = 7  # a sign-up nobody confirmed is dropped after this long
MAX_KEYWORDS = 20
MAX_KEYWORD = 80
MAX_NAME = 100


class SignupOutcome(StrEnum):
    """What a sign-up did; the web page is the same for all of them (no enumeration)."""

    PENDING = "pending"  # new (or still pending, or coming back): a confirmation mail is due
    ALREADY = "already"  # active already: nothing changed, a reminder with the manage link is due


class ConfirmOutcome(StrEnum):
    """What a confirm link did."""

    CONFIRMED = "confirmed"
    ALREADY = "already"  # it was active already: the same happy page
    GONE = "gone"  # no row (dropped, removed) or a newer unsubscribe: the link is spent


@dataclass(frozen=True)
class Preferences:
    """What a reader may set about themselves, checked and bounded."""

    name: str = ""
    keywords: tuple[str, ...] = ()
    frequency: Frequency = Frequency.WEEKLY
    pause_until: date | None = None

    def values(self) -> dict[str, str | None]:
        """The stored fields these preferences write."""
        return {
            "name": self.name,
            "keywords": "; ".join(self.keywords),
            "frequency": self.frequency.value,
            "pause_until": self.pause_until.isoformat() if self.pause_until else None,
        }

    def digest(self) -> str:
        """What a confirm link carries to name the request it was mailed for."""
        return request_digest(self.values())


def request_digest(values: Mapping[str, str | None]) -> str:
    """A short fingerprint of a sign-up request (name, keywords, frequency), as links carry it."""
    text = "\n".join(str(values.get(key) or "") for key in ("name", "keywords", "frequency"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def clean_preferences(
    name: str, keywords: str, frequency: str, pause_until: str = "", today: date | None = None
) -> Preferences:
    """Preferences from form fields; SubscriberError saying which field is wrong and how."""
    words = [word[:MAX_KEYWORD].rstrip() for word in split_keywords(keywords)]
    if len(words) > MAX_KEYWORDS:
        raise SubscriberError(f"{len(words)} keywords is too many", fix=f"keep at most {MAX_KEYWORDS}")
    try:
        chosen = Frequency(frequency.strip().lower() or Frequency.WEEKLY)
    except ValueError:
        raise SubscriberError("frequency must be weekly or daily", fix="pick one of the two") from None
    pause = None
    if pause_until.strip():
        try:
            pause = date.fromisoformat(pause_until.strip())
        except ValueError:
            raise SubscriberError("the pause date is not a date", fix="use the form 2026-12-31") from None
        if pause < (today or date.today()):
            pause = None  # a pause that has ended is no pause
    clean_name = " ".join(scrub_controls(name).split())[:MAX_NAME]
    if any(ch in clean_name for ch in '<>"\\') or any(ord(ch) < 32 for ch in clean_name):
        raise SubscriberError("the name has characters we cannot use", fix="use letters, spaces and dots")
    return Preferences(clean_name, tuple(words), chosen, pause)


def checked_address(email: str) -> str:
    """A sign-up address in normalised form that our mail can reach, or SubscriberError for anything else.

    Mail goes out in plain ASCII (no SMTPUTF8), so an internationalised domain is kept in its
    `xn--` form, and a local part beyond ASCII is refused here rather than told "we sent you an
    email" that can never be sent.
    """
    if len(email) > 254:
        raise SubscriberError("that email address is too long", fix="check the address")
    try:
        address = check_email(email)
    except RowError:
        raise SubscriberError(
            "that is not an email address we can write to", fix="check the address"
        ) from None
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        raise SubscriberError(
            "our mail server cannot deliver to an address with letters beyond plain ASCII before the @",
            fix="please use another address",
        )
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        raise SubscriberError(
            "that is not an email address we can write to", fix="check the address"
        ) from None


def request_signup(
    store: SubscriberStore, email: str, prefs: Preferences, now: datetime | None = None
) -> SignupOutcome:
    """Record a sign-up: a new address is added `pending`; an address the list has is left alone.

    The request waits apart and is applied when the owner confirms; until then the row, and
    whatever it says, stays. Every state costs the same one transaction, so the time an answer
    takes does not tell who is on the list.
    """
    pending = Subscriber(
        email=email,
        name=prefs.name,
        keywords=list(prefs.keywords),
        status=SubscriberStatus.PENDING,
        subscribed_at=now or to_the_second(utc_now()),
        frequency=prefs.frequency,
        pause_until=prefs.pause_until,
    )
    had = store.record_signup(pending)
    return SignupOutcome.ALREADY if had is SubscriberStatus.ACTIVE else SignupOutcome.PENDING


def confirm(
    store: SubscriberStore,
    email: str,
    issued_at: datetime,
    digest: str = "",
    now: datetime | None = None,
) -> ConfirmOutcome:
    """Activate a pending (or returning) address; a link older than their last unsubscribe is spent.

    Only the request the link was mailed for (`digest`) is applied; one made since by anyone is
    dropped. A returning reader keeps the name and topics they had where the request left them empty.
    """
    current = store.get(email)
    if current is None:
        return ConfirmOutcome.GONE
    if current.status is SubscriberStatus.ACTIVE:
        return ConfirmOutcome.ALREADY
    if current.unsubscribed_at is not None and current.unsubscribed_at > issued_at:
        return ConfirmOutcome.GONE
    values: dict[str, str | None] = {}
    asked = store.take_request(email)
    if asked is not None and digest and request_digest(asked) == digest:
        returning = current.status is not SubscriberStatus.PENDING
        values.update({key: value for key, value in asked.items() if value or not returning})
    values.update(
        status=SubscriberStatus.ACTIVE.value,
        unsubscribed_at=None,
        confirmed_at=utc_text(now or to_the_second(utc_now())),
    )
    if store.update(email, values, expect={"status": current.status.value}):
        return ConfirmOutcome.CONFIRMED
    return ConfirmOutcome.ALREADY if store.is_active(email) else ConfirmOutcome.GONE


def save_preferences(store: SubscriberStore, email: str, prefs: Preferences) -> bool:
    """Write a reader's own preferences; False when they are not on the list any more."""
    return store.update(email, prefs.values())


def leave(store: SubscriberStore, email: str) -> None:
    """Unsubscribe from the preferences page (the same as the one-click link)."""
    store.unsubscribe(email)


def drop_stale_pending(store: SubscriberStore, now: datetime | None = None) -> int:
    """Remove sign-ups nobody confirmed within PENDING_DAYS; returns how many went."""
    return store.drop_pending((now or to_the_second(utc_now())) - timedelta(days=PENDING_DAYS))


__all__ = [
    "ConfirmOutcome",
    "Preferences",
    "SignupOutcome",
    "checked_address",
    "clean_preferences",
    "confirm",
    "drop_stale_pending",
    "leave",
    "request_digest",
    "request_signup",
    "save_preferences",
]
