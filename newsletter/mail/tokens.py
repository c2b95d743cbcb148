"""Link tokens: opaque, purpose-bound proof that a link was minted by us for one reader of one list.

Why the address is *encrypted into* the token rather than looked up by a stored id: the web side
must map a token back to its subscriber in O(1) without reading the list. A stored id column
would need an index (id -> row) that every writer keeps in step with the CSV people edit by
hand, and building it means reading the whole list (in every server process, a cost that grows
with the list) before the first one-click unsubscribe can be answered. An AES-SIV
(RFC 5297, `cryptography`) ciphertext of the address needs nothing stored: the token *is* the
id. SIV is an authenticated encryption, so the tag doubles as the MAC: a token that was not
minted with our key, or was changed in one bit, does not decrypt. It is deterministic, so the
same link comes out for the same reader every time (stable golden files, one cache key), and it
reveals nothing but equality of two tokens. Token layout (base64url, no padding)::

    version (1 byte) | SIV tag (16) | E(expires u32 | len(list) u8 | list | len(item) u8 | item | email)

The purpose (unsubscribe, manage, confirm, feedback) is the SIV's associated data: it is in no
byte of the token yet a manage token fails to open as a confirm token. `item` binds a feedback
token to one paper id. A typical token is 80-100 URL-safe characters.

A digest carries a dozen links for one reader (unsubscribe, manage, two per paper). Sealing
each on its own was a tenth of a send's time, so they share one sealed part (`ReaderLinks`)::

    version 2 (1 byte) | SIV(len(list) u8 | list | email) | item | len(item) u8 | tag (12)

The sealed part is AES-SIV under the associated data "reader links" (no purpose opens it as a
version 1 token, nor it a version 1 token); `tag` is a keyed BLAKE2b (a key of its own, derived
from the same secret) over the purpose and every byte before the tag. So each link is still
bound to its purpose and item, a changed byte fails the tag, and the address stays sealed:
minting one link costs a hash, not a seal. Version 2 never expires, so confirm links stay
version 1.

Rotating NEWSLETTER_SECRET: set the new secret in NEWSLETTER_SECRET and the old one in
NEWSLETTER_SECRET_PREVIOUS. New links are minted with the new secret; links minted with either
secret verify. After the oldest mail still in use has aged out (a few months of digests), drop
NEWSLETTER_SECRET_PREVIOUS.

Links from before these tokens (`/unsubscribe?list=L&email=E&token=HMAC` and the mailto subject
`unsubscribe L E HMAC`) keep working through `verify_legacy_token`; nothing mints them any more.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlencode

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from ..errors import ConfigError
from ..safety.listnames import is_list_name
from ..safety.secretkey import require_strong_previous
from ..settings import Settings

UNSUBSCRIBE_PATH = "/unsubscribe"
MANAGE_PATH = "/manage"
CONFIRM_PATH = "/confirm"
FEEDBACK_PATH = "/feedback"
CONFIRM_TTL = timedelta(hours=48)
_VERSION = 1
_MAX_TOKEN = 1024  # base64 characters: a longer query value is refused before any decoding
_KEY_INFO = b"paper-digest link tokens v1"
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]+")
_SEALED_CHARS = re.compile(r"[A-Z2-7]+")
_LINKS_VERSION = 2
_LINKS_DATA = b"reader links"  # the associated data of version 2's sealed part: never a Purpose
_TAG_INFO = b"paper-digest link tags v2"
_TAG_BYTES = 12
_MAX_SEALED = 104  # base32 characters of a sealed token: 64 bytes, more than any local part holds


class Purpose(StrEnum):
    """What a link may do; a token minted for one purpose opens for no other."""

    UNSUBSCRIBE = "unsubscribe"
    MANAGE = "manage"
    CONFIRM = "confirm"
    FEEDBACK = "feedback"
    BOUNCE = "bounce"  # the VERP return path of one delivery (mail/verp.py), never a link


@dataclass(frozen=True)
class Claims:
    """What a verified token says: who, on which list, for which item, until when."""

    purpose: Purpose
    list_name: str
    email: str
    item: str = ""
    expires: int | None = None  # unix seconds, None for links that stay valid


def _key(secret: str) -> AESSIV:
    # 64 bytes for AES-SIV-256 (one half MAC, one half CTR), derived so the raw secret is never a key.
    material = hmac.new(secret.encode("utf-8"), _KEY_INFO, hashlib.sha512).digest()
    return AESSIV(material)


def _tag_key(secret: str) -> bytes:
    # A key apart from the SIV's, so the tag and the seal never share key material.
    return hmac.new(secret.encode("utf-8"), _TAG_INFO, hashlib.sha256).digest()


def _tag(key: bytes, purpose: Purpose, signed: bytes) -> bytes:
    return hashlib.blake2b(
        signed, key=key, digest_size=_TAG_BYTES, person=purpose.value.encode("ascii")
    ).digest()


def _missing_secret() -> ConfigError:
    return ConfigError(
        "no secret to sign links with",
        fix="set NEWSLETTER_SECRET (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)",
    )


class TokenSigner:
    """Mints tokens with the current secret and opens those of the current or previous one."""

    def __init__(self, secret: str, previous: Sequence[str] = ()) -> None:
        if not secret:
            raise _missing_secret()
        self.secret = secret
        self.previous = tuple(p for p in previous if p and p != secret)
        self._keys = [_key(secret), *(_key(p) for p in self.previous)]
        self._tag_keys = [_tag_key(secret), *(_tag_key(p) for p in self.previous)]

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenSigner:
        """The signer for a configured secret (and the one being rotated out)."""
        if not settings.secret:
            raise ConfigError(
                "NEWSLETTER_SECRET is not set, so links cannot be signed or checked",
                where=settings.source_label,
                fix="set NEWSLETTER_SECRET to a long random string (keep it the same between runs)",
            )
        # Links forged with a guessable previous secret would open like genuine ones.
        require_strong_previous(settings.secret_previous, settings.source_label)
        return cls(settings.secret, [settings.secret_previous or ""])

    def sign(
        self,
        purpose: Purpose,
        list_name: str,
        email: str,
        *,
        item: str = "",
        expires: datetime | timedelta | None = None,
        now: float | None = None,
    ) -> str:
        """A URL-safe token; `expires` is an instant or a time from now, None for no expiry."""
        when = _expiry(expires, now)
        list_bytes, item_bytes = list_name.encode("utf-8"), item.encode("utf-8")
        if len(list_bytes) > 255 or len(item_bytes) > 255:
            raise ValueError("list name and item must be at most 255 bytes")
        plain = b"".join(
            [
                struct.pack(">IB", when or 0, len(list_bytes)),
                list_bytes,
                struct.pack(">B", len(item_bytes)),
                item_bytes,
                email.strip().lower().encode("utf-8"),
            ]
        )
        sealed = self._keys[0].encrypt(plain, [purpose.value.encode("ascii")])
        return base64.urlsafe_b64encode(bytes([_VERSION]) + sealed).rstrip(b"=").decode("ascii")

    def reader_links(self, list_name: str, email: str) -> ReaderLinks:
        """One reader's link tokens, all from one seal (see the module docstring, version 2)."""
        list_bytes = list_name.encode("utf-8")
        if len(list_bytes) > 255:
            raise ValueError("list name must be at most 255 bytes")
        plain = bytes([len(list_bytes)]) + list_bytes + email.strip().lower().encode("utf-8")
        sealed = self._keys[0].encrypt(plain, [_LINKS_DATA])
        return ReaderLinks(bytes([_LINKS_VERSION]) + sealed, self._tag_keys[0])

    def verify(self, token: str, purpose: Purpose, *, now: float | None = None) -> Claims | None:
        """The claims of a genuine, unexpired token of this purpose; None for anything else."""
        raw = _decode(token)
        if raw is not None and raw[0] == _LINKS_VERSION:
            return self._verify_link(raw, purpose)
        if raw is None or raw[0] != _VERSION:
            return None
        for key in self._keys:
            try:
                plain = key.decrypt(raw[1:], [purpose.value.encode("ascii")])
            except InvalidTag:
                continue
            claims = _parse(plain, purpose)
            if claims is None:
                return None
            if claims.expires is not None and claims.expires < (time.time() if now is None else now):
                return None
            return claims
        return None

    def _verify_link(self, raw: bytes, purpose: Purpose) -> Claims | None:
        """A version 2 token: the tag for this purpose first, then the sealed reader."""
        if purpose not in LINK_PURPOSES or len(raw) < 1 + 16 + 2 + _TAG_BYTES:
            return None
        signed, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
        item_length = signed[-1]
        sealed = signed[1 : len(signed) - 1 - item_length]
        if len(sealed) < 16 + 2:
            return None
        for key, tag_key in zip(self._keys, self._tag_keys, strict=True):
            if not hmac.compare_digest(_tag(tag_key, purpose, signed), tag):
                continue
            try:
                plain = key.decrypt(sealed, [_LINKS_DATA])
                list_name = plain[1 : 1 + plain[0]].decode("utf-8")
                email = plain[1 + plain[0] :].decode("utf-8")
                item = signed[len(signed) - 1 - item_length : -1].decode("utf-8")
            except (InvalidTag, IndexError, UnicodeDecodeError):
                return None  # a tag of ours over a part that is not: cannot happen; never trust it
            return Claims(purpose, list_name, email, item) if list_name and email else None
        return None

    def seal(self, purpose: Purpose, payload: bytes) -> str:
        """A short, case-insensitive token (lowercase base32) for places where links do not fit.

        Made for e-mail local parts (64 octets at most, and some servers fold their case): no
        version byte and no layout, just the SIV tag and the sealed payload; a new format would
        be a new purpose. 16 + n bytes give ceil((16 + n) * 8 / 5) characters.
        """
        sealed = self._keys[0].encrypt(payload, [purpose.value.encode("ascii")])
        return base64.b32encode(sealed).rstrip(b"=").decode("ascii").lower()

    def unseal(self, token: str, purpose: Purpose) -> bytes | None:
        """The payload of a genuine sealed token of this purpose; None for anything else."""
        token = token.strip().upper()
        if not 27 <= len(token) <= _MAX_SEALED or not _SEALED_CHARS.fullmatch(token):
            return None  # 27 characters: the 16-byte tag and at least one byte of payload
        try:
            raw = base64.b32decode(token + "=" * (-len(token) % 8))
        except (binascii.Error, ValueError):
            return None
        for key in self._keys:
            try:
                return key.decrypt(raw, [purpose.value.encode("ascii")])
            except InvalidTag:
                continue
        return None


LINK_PURPOSES = frozenset({Purpose.UNSUBSCRIBE, Purpose.MANAGE, Purpose.FEEDBACK})


class ReaderLinks:
    """The tokens of one reader's links in a digest: one seal, then a keyed hash per link."""

    def __init__(self, sealed: bytes, tag_key: bytes) -> None:
        self._sealed = sealed
        self._tag_key = tag_key

    def token(self, purpose: Purpose, item: str = "") -> str:
        """A URL-safe token for one purpose (and item); version 1's `verify` opens it too."""
        if purpose not in LINK_PURPOSES:
            raise ValueError(f"{purpose} links need a token of their own (TokenSigner.sign)")
        item_bytes = item.encode("utf-8")
        if len(item_bytes) > 255:
            raise ValueError("item must be at most 255 bytes")
        signed = self._sealed + item_bytes + bytes([len(item_bytes)])
        raw = signed + _tag(self._tag_key, purpose, signed)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _expiry(expires: datetime | timedelta | None, now: float | None) -> int | None:
    if expires is None:
        return None
    if isinstance(expires, timedelta):
        return int((time.time() if now is None else now) + expires.total_seconds())
    return int(expires.timestamp())


def _decode(token: str) -> bytes | None:
    token = token.strip()
    if not token or len(token) > _MAX_TOKEN or not _TOKEN_CHARS.fullmatch(token):
        return None
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) > 17 else None


def _parse(plain: bytes, purpose: Purpose) -> Claims | None:
    try:
        expires, list_length = struct.unpack_from(">IB", plain)
        offset = 5
        list_name = plain[offset : offset + list_length].decode("utf-8")
        offset += list_length
        item_length = plain[offset]
        item = plain[offset + 1 : offset + 1 + item_length].decode("utf-8")
        email = plain[offset + 1 + item_length :].decode("utf-8")
    except (struct.error, IndexError, UnicodeDecodeError):
        return None  # cannot happen for a token we sealed; never trust it anyway
    if not email or not list_name:
        return None
    return Claims(purpose, list_name, email, item, expires or None)


def link(base_url: str, path: str, token: str) -> str:
    """An absolute link to one of `newsletter serve`'s pages carrying only the token."""
    if _TOKEN_CHARS.fullmatch(token):  # every token we mint: URL-safe, so quoting would keep it as is
        return f"{base_url.rstrip('/')}{path}?t={token}"
    return f"{base_url.rstrip('/')}{path}?{urlencode({'t': token})}"


PATHS = {
    Purpose.UNSUBSCRIBE: UNSUBSCRIBE_PATH,
    Purpose.MANAGE: MANAGE_PATH,
    Purpose.CONFIRM: CONFIRM_PATH,
    Purpose.FEEDBACK: FEEDBACK_PATH,
}


def purpose_url(
    signer: TokenSigner,
    base_url: str,
    purpose: Purpose,
    list_name: str,
    email: str,
    *,
    item: str = "",
    expires: datetime | timedelta | None = None,
) -> str:
    """The link for one purpose, e.g. a confirm link that expires in 48 hours."""
    return link(base_url, PATHS[purpose], signer.sign(purpose, list_name, email, item=item, expires=expires))


def unsubscribe_url(base_url: str, secret: str, list_name: str, email: str) -> str:
    """The one-click link for List-Unsubscribe and the footer: an opaque token, no address."""
    return purpose_url(TokenSigner(secret), base_url, Purpose.UNSUBSCRIBE, list_name, email)


def unsubscribe_link(settings: Settings, list_name: str, email: str) -> str:
    """The link for a subscriber from settings, refusing clearly when secret or base URL is missing."""
    signer = TokenSigner.from_settings(settings)
    if not settings.base_url:
        raise ConfigError(
            "base_url is not set, so unsubscribe links have nowhere to point",
            where=settings.source_label,
            fix="set NEWSLETTER_BASE_URL to the public https address of `newsletter serve`",
        )
    return purpose_url(signer, settings.base_url, Purpose.UNSUBSCRIBE, list_name, email)


def request_subject(signer: TokenSigner, list_name: str, email: str) -> str:
    """The subject a mailto: unsubscribe link pre-fills: the opaque token, never the address."""
    return subject_for(signer.sign(Purpose.UNSUBSCRIBE, list_name, email))


def subject_for(unsubscribe_token: str) -> str:
    """The mailto: request's subject for a token already minted (a digest's own link's)."""
    return f"unsubscribe {unsubscribe_token}"


# --- links minted before opaque tokens: still honoured, never minted -------------------------


def _legacy_digest(secret: str, list_name: str, email: str) -> bytes:
    # A separator that cannot occur in a list name keeps ("a", "b@c") and ("a\nb", "@c") apart.
    message = f"unsubscribe\n{list_name}\n{email.strip().lower()}".encode()
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def make_legacy_token(secret: str, list_name: str, email: str) -> str:
    """The HMAC-SHA256 token of the old `?list=&email=&token=` links (for tests of old mail)."""
    if not secret:
        raise _missing_secret()
    return base64.urlsafe_b64encode(_legacy_digest(secret, list_name, email)).rstrip(b"=").decode("ascii")


def verify_legacy_token(secrets: Sequence[str], list_name: str, email: str, token: str) -> bool:
    """True for an old-style token minted with any of these secrets; compared in constant time."""
    given = token.strip().encode("utf-8", "replace")
    if not given or len(given) > _MAX_TOKEN:
        return False
    return any(
        hmac.compare_digest(make_legacy_token(secret, list_name, email).encode("ascii"), given)
        for secret in secrets
        if secret
    )


def verify_unsubscribe(
    signer: TokenSigner, token: str, list_name: str = "", email: str = ""
) -> tuple[str, str] | None:
    """(list, address) of a genuine unsubscribe link or mail request, opaque or legacy; None otherwise.

    The one check behind the web link and the mailto: request: an opaque token alone, or (with a
    list or an address given) an old HMAC over both. The list must be a safe list name either way.
    """
    found: tuple[str, str] | None = None
    if not (list_name or email):
        claims = signer.verify(token, Purpose.UNSUBSCRIBE)
        found = None if claims is None else (claims.list_name, claims.email)
    elif verify_legacy_token((signer.secret, *signer.previous), list_name, email, token):
        found = (list_name, email.strip().lower())
    return found if found is not None and is_list_name(found[0]) else None


__all__ = [
    "CONFIRM_TTL",
    "LINK_PURPOSES",
    "Claims",
    "Purpose",
    "ReaderLinks",
    "TokenSigner",
    "make_legacy_token",
    "purpose_url",
    "request_subject",
    "subject_for",
    "unsubscribe_link",
    "unsubscribe_url",
    "verify_legacy_token",
    "verify_unsubscribe",
]
