"""Turn a rendered digest into the exact bytes of one RFC 5322 message per subscriber."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from functools import lru_cache
from typing import cast
from urllib.parse import quote

from ..models import IssueInfo, Subscriber, utc_now
from ..render.digest import RenderedDigest
from ..settings import Settings
from ..text import one_line
from .dkim import DkimSigner
from .tokens import TokenSigner, request_subject, subject_for
from .verp import return_path
from .wire import END_OF_DATA, from_wire, stuffed_dots, to_wire

CRLF = "\r\n"
_NOT_LIST_ID = re.compile(r"[^a-z0-9-]+")
_ADDRESS = re.compile(r"^[^\s<>()\[\],;:\"\\@]+@[^\s<>()\[\],;:\"\\@]+$")
_SAFE_ATOM = re.compile(r"^[A-Za-z0-9 !#$%&'*+/=?^_`{|}~.-]*$")
_MAX_SUBJECT = 200
_MAX_RAW_NAME = 60  # longer names are folded as encoded words so no line nears 998 bytes


class HeaderValueError(ValueError):
    """A value that cannot go into a header safely (e.g. an address with a line break)."""


@dataclass(frozen=True)
class ComposedMessage:
    """The bytes handed to the SMTP server and the id that ties them to the ledger.

    Kept as the DATA payload (framed for DATA where it is built, often in a builder process),
    so the sending loop writes it as is; `data` gives back the message itself.
    """

    message_id: str
    recipient: str
    wire: bytes
    sender: str = ""  # this message's own envelope sender (VERP); empty = the run's

    @classmethod
    def of(cls, message_id: str, recipient: str, data: bytes) -> ComposedMessage:
        return cls(message_id=message_id, recipient=recipient, wire=to_wire(data))

    @property
    def data(self) -> bytes:
        """The RFC 5322 message, as the receiving server stores it (for .eml files and checks)."""
        return from_wire(self.wire)

    @property
    def size(self) -> int:
        """Octets as RFC 1870's SIZE counts them: CRLF line ends, no dot-stuffing, no final dot."""
        return len(self.wire) - len(END_OF_DATA) - stuffed_dots(self.wire)


def encoded_words(text: str) -> str:
    """RFC 2047 base64 words, split at character boundaries so every line stays short."""
    words, chunk = [], b""
    for char in text:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > 42:
            words.append(chunk)
            chunk = b""
        chunk += encoded
    if chunk:
        words.append(chunk)
    return (CRLF + " ").join(f"=?utf-8?b?{base64.b64encode(w).decode('ascii')}?=" for w in words)


@lru_cache(maxsize=1_024)
def header_text(value: str) -> str:
    """Unstructured header text: raw when plain ASCII, else encoded so '=?' is never live."""
    value = one_line(value)  # no header is forged (CR, LF) or reordered (bidi controls)
    if value.isascii() and "=?" not in value and len(value) <= 900:
        return value
    return encoded_words(value)


def checked_address(address: str) -> str:
    """An address fit for a header and the envelope, or HeaderValueError."""
    address = address.strip()
    if not _ADDRESS.match(address) or not address.isascii():
        raise HeaderValueError(f"{address!r} is not a plain ASCII email address")
    return address


def mailbox(name: str, address: str) -> str:
    """'Display Name <addr>' with the name quoted or encoded as needed."""
    address = checked_address(address)
    name = one_line(name)
    if not name:
        return address
    plain = name.isascii() and "=?" not in name and len(name) <= _MAX_RAW_NAME
    if plain and _SAFE_ATOM.match(name):
        return f"{name} <{address}>" if "." not in name else f'"{name}" <{address}>'
    if plain:
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}" <{address}>'
    return f"{encoded_words(name)} <{address}>"


class LineEncoder:
    """Quoted-printable line by line with a cache: digests of one issue share most of their lines.

    QP encodes each line on its own, so joining encoded lines gives the same bytes as encoding
    the whole body, and a line many digests share is encoded once (benchmarks/bench_render.py
    compares the two). Lines come out framed for SMTP DATA (a line that starts with a dot gets
    a second one, RFC 5321 4.5.2), also once per cached line. A line is cached the second time
    it is seen: one reader's own lines (their links, their cards' feedback links) never come
    back, and caching them filled the cache with lines used once. Both are cleared when full to
    bound memory. (7bit HTML goes through HtmlEncoder.)
    """

    def __init__(self, max_lines: int = 20_000, max_seen: int = 50_000) -> None:
        self.max_lines = max_lines
        self.max_seen = max_seen
        self._line = _quoted_printable_line
        self._cache: dict[str, bytes] = {}
        self._seen: set[int] = set()  # hashes of lines seen once: a few bytes each, not the line

    def encode(self, text: str) -> bytes:
        """The text encoded as quoted-printable lines framed for DATA."""
        cache, seen, encode_line = self._cache, self._seen, self._line
        if len(cache) > self.max_lines:
            cache.clear()
        if len(seen) > self.max_seen:
            seen.clear()
        out = []
        for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
            encoded = cache.get(line)
            if encoded is None:
                encoded = encode_line(line)
                key = hash(line)
                if key in seen:
                    cache[line] = encoded
                else:
                    seen.add(key)
            out.append(encoded)
        return b"\r\n".join(out)


def _quoted_printable_line(line: str) -> bytes:
    return _stuffed(binascii.b2a_qp(line.encode("utf-8"), istext=True))


_MAX_LINE = 998  # octets per line, CRLF not counted (RFC 5322 2.1.1)
_TAG_NAME = re.compile(rb"<[A-Za-z][A-Za-z0-9]*(?=[ >])")  # after it, a line break is only a space


def seven_bit_line(line: str) -> bytes | None:
    """One line of HTML as 7bit, framed for DATA, or None when only quoted-printable can carry it.

    Every character beyond ASCII becomes a character reference (the same character on screen),
    and a line longer than 998 octets is broken inside a start tag, after its name, where a line
    break is whitespace like the space it replaces (or one a tag may hold there). So nothing is
    encoded: no `=3D` for every `=`, no soft break every 76 characters.
    """
    return _seven_bit(line.encode("ascii", "xmlcharrefreplace"))


def _seven_bit(data: bytes) -> bytes | None:
    """seven_bit_line for a line whose characters are references already."""
    if len(data) > _MAX_LINE:
        folded = _fold(data)
        if folded is None:
            return None
        data = folded.replace(b"\n", b"\r\n")
        return _stuffed(data) if b"\n." in data else data
    return b"." + data if data.startswith(b".") else data


class HtmlEncoder:
    """7bit HTML from the pieces the renderer joined: a piece digests share is encoded once.

    Gives the bytes of `seven_bit_line` on each line of the pieces' join: a reference stands
    for one character, so encoding pieces and joining them is encoding their join; the lines
    are then framed as `seven_bit_line` frames them, but split, measured and joined in C, and
    only a line over 998 octets or one that starts with a dot goes through Python. Pieces
    without a character beyond ASCII need no encoding; the others are cached when long (a
    card's title and teaser), so one reader's short ones (a name, a preheader) fill no cache.
    """

    def __init__(self, max_bytes: int = 1 << 20) -> None:
        self.max_bytes = max_bytes  # of encoded pieces kept: the bound on this cache's memory
        self._cache: dict[str, bytes] = {}
        self._bytes = 0

    def encode(self, pieces: Iterable[str]) -> bytes:
        """The pieces' join as 7bit lines framed for DATA; b"" when only quoted-printable can carry it."""
        cache = self._cache
        if self._bytes > self.max_bytes:
            cache.clear()
            self._bytes = 0
        out = []
        for piece in pieces:
            if piece.isascii():
                out.append(piece.encode("ascii"))
                continue
            encoded = cache.get(piece)
            if encoded is None:
                encoded = piece.encode("ascii", "xmlcharrefreplace")
                if _CACHED_PIECE <= len(piece) <= _CACHED_PIECE_MAX:
                    cache[piece] = encoded
                    self._bytes += len(encoded)
            out.append(encoded)
        data = b"".join(out)
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = data.split(b"\n")
        if max(map(len, lines)) <= _MAX_LINE and b"\n." not in data and not data.startswith(b"."):
            return data.replace(b"\n", b"\r\n")  # every line is framed as it is
        framed = [_seven_bit(line) for line in lines]
        if None in framed:
            return b""
        return b"\r\n".join(cast(list[bytes], framed))


_CACHED_PIECE, _CACHED_PIECE_MAX = 256, 16_384  # characters: shared pieces, never a whole page


def html_is_seven_bit(html: str) -> bool:
    """False when characters beyond ASCII are in a `<style>` block, which resolves no references."""
    if html.isascii():
        return True
    start = html.find("<style")
    while start >= 0:
        end = html.find("</style", start)
        if not html[start : end if end >= 0 else len(html)].isascii():
            return False
        start = html.find("<style", end) if end >= 0 else -1
    return True


def _fold(line: bytes) -> bytes | None:
    """A long line broken after tag names so every piece fits, or None if no tag is where needed."""
    pieces = []
    while len(line) > _MAX_LINE:
        cut = 0
        for found in _TAG_NAME.finditer(line, 0, _MAX_LINE):
            cut = found.end()
        if cut == 0:
            return None
        pieces.append(line[:cut])
        line = line[cut + 1 :] if line[cut : cut + 1] == b" " else line[cut:]
    pieces.append(line)
    return b"\n".join(pieces)


def _stuffed(encoded: bytes) -> bytes:
    """CRLF soft breaks, and a doubled dot where a line (or a soft-broken part) starts with one."""
    encoded = encoded.replace(b"\n", b"\r\n")
    if b"\n." in encoded:
        encoded = encoded.replace(b"\r\n.", b"\r\n..")
    return b"." + encoded if encoded.startswith(b".") else encoded


def message_id(secret: str, issue: IssueInfo, address: str, domain: str, test_to: str | None = None) -> str:
    """The same Message-ID for the same issue and subscriber, on every run and after a crash."""
    key = f"{issue.issue_id}\0{issue.list_name}\0{address.lower()}".encode()
    if test_to:  # a --to test copy must never share the subscriber's real Message-ID
        key += f"\0test\0{test_to.lower()}".encode()
    digest = hmac.new(secret.encode("utf-8"), key, hashlib.sha256).hexdigest()[:24]
    issue_part = _NOT_LIST_ID.sub("-", issue.issue_id.lower())
    return f"<{issue_part}.{digest}@{domain}>"


_REQUEST = re.compile(r"unsubscribe [A-Za-z0-9_-]+")  # what subject_for makes of our tokens


def _quoted_request(request: str) -> str:
    """The mailto: subject percent-encoded; a token's characters need no quoting, only the space."""
    return request.replace(" ", "%20") if _REQUEST.fullmatch(request) else quote(request)


@lru_cache(maxsize=4)
def _second(stamp: datetime) -> str:
    return format_datetime(stamp)


def _date(now: datetime) -> str:
    """The Date header's value: formatted once per second of the run, not once per message."""
    return _second(now.replace(microsecond=0))  # format_datetime never shows microseconds


class MessageComposer:
    """Builds messages for one issue; everything shared by all subscribers is prepared once."""

    def __init__(
        self, settings: Settings, issue: IssueInfo, secret: str, tokens: TokenSigner | None = None
    ) -> None:
        self.issue = issue
        self.secret = secret
        self.tokens = tokens or TokenSigner(secret)
        sender = settings.sender
        self.sender_address = checked_address(sender.address)
        self.domain = self.sender_address.rsplit("@", 1)[1]
        self.from_header = mailbox(sender.name, self.sender_address)
        list_label = _NOT_LIST_ID.sub("-", issue.list_name.lower()).strip("-") or "list"
        self.list_id = f"{header_text(settings.title)} <{list_label}.{self.domain}>"
        self.reply_to = mailbox("", sender.reply_to) if sender.reply_to else None
        self.signer = DkimSigner.from_settings(settings.dkim, settings.config_dir)
        self.body_encoder = LineEncoder()
        self.html_encoder = HtmlEncoder()
        self.return_path = return_path(sender, self.tokens)

    def compose(
        self,
        subscriber: Subscriber,
        digest: RenderedDigest,
        unsubscribe_url: str,
        *,
        to_address: str | None = None,
        now: datetime | None = None,
        unsubscribe_token: str | None = None,
    ) -> ComposedMessage:
        """One multipart/alternative message: text first, HTML last, headers injection-safe.

        `unsubscribe_token` is the one the link carries, for the mailto: request (else one is minted).
        """
        recipient = checked_address(to_address or subscriber.email)
        mid = message_id(self.secret, self.issue, subscriber.email, self.domain, to_address and recipient)
        boundary = "=_digest_" + mid[1:25].replace(".", "_").replace("@", "_")
        headers = self._headers(
            subscriber,
            recipient,
            digest,
            unsubscribe_url=unsubscribe_url,
            mid=mid,
            boundary=boundary,
            now=now,
            unsubscribe_token=unsubscribe_token,
        )
        seven_bit = html_is_seven_bit(digest.html)
        html = self.html_encoder.encode(digest.html_pieces or (digest.html,)) if seven_bit else b""
        body = [
            f"--{boundary}".encode("ascii"),
            b'Content-Type: text/plain; charset="utf-8"',
            b"Content-Transfer-Encoding: quoted-printable",
            b"",
            self.body_encoder.encode(digest.text),
            f"--{boundary}".encode("ascii"),
            b'Content-Type: text/html; charset="utf-8"',
            b"Content-Transfer-Encoding: " + (b"7bit" if html else b"quoted-printable"),
            b"",
            html or self.body_encoder.encode(digest.html),
            f"--{boundary}--".encode("ascii"),
            b"",
        ]
        # Header lines never start with a dot and body lines are stuffed as encoded: this is DATA.
        wire = headers.encode("ascii") + b"\r\n".join(body) + END_OF_DATA
        if self.signer is not None:
            wire = to_wire(self.signer.sign(from_wire(wire)))
        sender = self.return_path.sender(mid) if self.return_path is not None else ""
        return ComposedMessage(message_id=mid, recipient=recipient, wire=wire, sender=sender)

    def _headers(
        self,
        subscriber: Subscriber,
        recipient: str,
        digest: RenderedDigest,
        *,
        unsubscribe_url: str,
        mid: str,
        boundary: str,
        now: datetime | None,
        unsubscribe_token: str | None,
    ) -> str:
        subject = one_line(digest.subject)
        if len(subject) > _MAX_SUBJECT:
            subject = subject[: _MAX_SUBJECT - 1].rstrip() + "\u2026"
        unsubscribe_url = one_line(unsubscribe_url).replace(" ", "%20")
        request = (
            subject_for(unsubscribe_token)
            if unsubscribe_token
            else request_subject(self.tokens, self.issue.list_name, subscriber.email)
        )
        mailto = f"mailto:{self.sender_address}?subject=" + _quoted_request(request)
        lines = [
            f"From: {self.from_header}",
            f"To: {mailbox(subscriber.name, recipient)}",
            f"Subject: {header_text(subject)}",
            f"Date: {_date(now or utc_now())}",
            f"Message-ID: {mid}",
            "MIME-Version: 1.0",
            f"List-Id: {self.list_id}",
            f"List-Unsubscribe: <{unsubscribe_url}>,{CRLF} <{mailto}>",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        ]
        if self.reply_to:
            lines.append(f"Reply-To: {self.reply_to}")
        lines.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
        return CRLF.join(lines) + CRLF + CRLF
