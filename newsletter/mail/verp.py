"""Signed VERP return paths: each message's envelope sender names the delivery it belongs to.

Many bounces (Exchange, some Gmail and Postfix setups) quote neither the Message-ID nor the
headers of the message that failed; all they surely keep is the envelope recipient, which is
our envelope sender (MAIL FROM). So each message goes out from `local+b-<token>@domain` of the
bounce address, and a report delivered there is matched to the delivery by its token.

The token is `TokenSigner.seal(Purpose.BOUNCE, key)`: AES-SIV, so it is authenticated (a forged
or altered one does not open), bound to this purpose, and says nothing readable. `key` is the
first `KEY_BYTES` of the Message-ID's own HMAC (mail/compose.py `message_id`), which is a keyed
hash of issue, list and address: the ledger finds the delivery by it, and no address is in it.
25 bytes become 40 lowercase base32 characters, so `+b-` and the token take 43 of the 64 octets
RFC 5321 allows a local part; the bounce address's own local part may have up to 21.

No Return-Path header is written here: RFC 5321 4.4 has the server doing final delivery add it
from MAIL FROM (the embedded outbox does), and a sender should not send one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import ConfigError
from ..settings import PLAIN_ADDRESS, SenderSettings
from .tokens import Purpose, TokenSigner

TAG = "+b-"
KEY_BYTES = 9
TOKEN_CHARS = 40  # base32 of the 16-byte SIV tag and KEY_BYTES of key
MAX_LOCAL_PART = 64  # RFC 5321 4.5.3.1.1
# A token wherever an address carries one; case-insensitive, as some servers fold local parts.
FOUND = re.compile(rf"\+b-([a-z2-7]{{{TOKEN_CHARS}}})@", re.IGNORECASE)
_DIGEST = re.compile(r"\.([0-9a-f]{24})@", re.IGNORECASE)


def delivery_key(message_id: str) -> str | None:
    """The hex the ledger finds a delivery by: the start of the Message-ID's HMAC part."""
    found = _DIGEST.search(message_id)
    return found.group(1)[: KEY_BYTES * 2].lower() if found else None


class ReturnPath:
    """Mints the envelope sender of each message and opens the tokens that come back."""

    def __init__(self, signer: TokenSigner, address: str) -> None:
        local, _, domain = address.rpartition("@")
        if not PLAIN_ADDRESS.fullmatch(address):
            raise ConfigError(
                f"the bounce address {address!r} cannot carry a VERP token",
                fix="use a plain address like bounces@example.org, or set sender.verp = false",
            )
        if len(local) + len(TAG) + TOKEN_CHARS > MAX_LOCAL_PART:
            raise ConfigError(
                f"the bounce address's local part {local!r} is too long for a VERP return path "
                f"({len(local)} characters; at most {MAX_LOCAL_PART - len(TAG) - TOKEN_CHARS})",
                fix="set sender.bounce_address to a shorter address, or set sender.verp = false",
            )
        self.signer = signer
        self.local = local
        self.domain = domain

    def sender(self, message_id: str) -> str:
        """The envelope sender for one message; the plain bounce address when the id is not ours."""
        key = delivery_key(message_id)
        if key is None:
            return f"{self.local}@{self.domain}"
        return f"{self.local}{TAG}{self.signer.seal(Purpose.BOUNCE, bytes.fromhex(key))}@{self.domain}"


def opened_key(signer: TokenSigner, token: str) -> str | None:
    """The delivery key of a genuine token (minted with this or the previous secret), else None."""
    payload = signer.unseal(token, Purpose.BOUNCE)
    return payload.hex() if payload is not None and len(payload) == KEY_BYTES else None


def return_path(sender: SenderSettings, signer: TokenSigner) -> ReturnPath | None:
    """The VERP minter for these settings, or None when each message keeps the run's sender."""
    if not sender.uses_verp:
        return None
    return ReturnPath(signer, sender.envelope_sender)


def tokens_in(values: Iterable[str]) -> list[str]:
    """The VERP tokens in some header values (To, Delivered-To, ...), each once, in order."""
    # Header values come from anyone: only the first 2,000 characters of each are looked at.
    return list(dict.fromkeys(t.lower() for value in values for t in FOUND.findall(value[:2000])))
