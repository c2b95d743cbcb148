"""Reading what a report quotes: RFC 3464 recipient blocks, the returned message's ids and tokens.

Real reports bend the format: a line holding only a space between blocks, a comment after the
Action word, no Status but a code in the Diagnostic-Code, the returned headers typed
`message/rfc822-headers`. These readers take them as the sender meant them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from email.utils import parseaddr

from ..mail.verp import tokens_in
from ..text import one_line
from .classify import Failure, Severity, of_block

DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
RETURNED_MESSAGES = ("message/rfc822", "message/global")
RETURNED_HEADERS = ("text/rfc822-headers", "message/global-headers", "message/rfc822-headers")
BLANK_LINE = re.compile(r"\r?\n[ \t]*\r?\n")
MESSAGE_ID = re.compile(r"<[^<>\s]{1,250}>")
# Where a report delivered to our VERP address keeps that address (mail/verp.py).
ENVELOPE_HEADERS = (
    "Delivered-To",
    "X-Original-To",
    "Envelope-To",
    "X-Envelope-To",
    "Original-Recipient",
    "To",
)


@dataclass(frozen=True)
class Bounce:
    """One recipient block of a DSN (or the one failure a report in another format is about)."""

    recipient: str
    action: str
    status: str
    diagnostic: str = ""
    original: str = ""
    failure: Failure | None = None

    @property
    def severity(self) -> Severity:
        """How permanent: read from the block's Action, Status and Diagnostic-Code."""
        found = self.failure or of_block(self.action, self.status, self.diagnostic)
        return found.severity

    @property
    def reason(self) -> str:
        """The words the severity was read from, for the report."""
        return (self.failure or of_block(self.action, self.status, self.diagnostic)).reason

    @property
    def is_hard(self) -> bool:
        """Permanent failure: retrying next week will not help."""
        return self.severity is Severity.PERMANENT

    @property
    def addresses(self) -> tuple[str, ...]:
        """Final recipient first, then the original one (ours, when the mail was forwarded)."""
        return tuple(dict.fromkeys(a for a in (self.recipient, self.original) if a))


def _field(block: Message, name: str) -> str:
    return one_line(str(block.get(name, "")))


def _address(block: Message, name: str) -> str:
    # "rfc822; user@example.org": the address type comes first and is not part of the address.
    value = _field(block, name)
    if not value:
        return ""
    address = value.split(";", 1)[-1].strip()
    return parseaddr(address)[1] or address.strip("<>")


def _part_text(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):
        # the stdlib split it into blocks already, but a line of only a space merged two of them
        return "\n\n".join(block.as_string() for block in payload if isinstance(block, Message))
    raw = part.get_payload(decode=True)
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)


def _blocks(part: Message) -> list[Message]:
    """The header blocks of a delivery-status part, split where a line is blank or only spaces."""
    text = _part_text(part)
    return [
        HeaderParser().parsestr(chunk.strip() + "\n") for chunk in BLANK_LINE.split(text) if chunk.strip()
    ]


def has_dsn_part(message: Message) -> bool:
    """Whether the message carries a machine-readable delivery status part at all."""
    return any(part.get_content_type() in DSN_TYPES for part in message.walk())


def bounces_in(message: Message) -> list[Bounce] | None:
    """The recipient blocks of a DSN (any block naming a recipient, the first included, as a
    merged block still holds one), or None when the message has no delivery-status part."""
    for part in message.walk():
        if part.get_content_type() not in DSN_TYPES:
            continue
        found = []
        for block in _blocks(part):
            final, original = _address(block, "Final-Recipient"), _address(block, "Original-Recipient")
            if final or original:
                found.append(
                    Bounce(
                        final or original,
                        _field(block, "Action").lower(),
                        _field(block, "Status").split(" ", 1)[0],
                        _field(block, "Diagnostic-Code"),
                        original,
                    )
                )
        return found
    return None


def returned_headers(message: Message) -> list[Message]:
    """The headers of the message a report returns (RFC 3462's third part), in whichever type."""
    found: list[Message] = []
    for part in message.walk():
        kind = part.get_content_type()
        payload = part.get_payload()
        first = payload[0] if isinstance(payload, list) and payload else None
        if kind in (*RETURNED_MESSAGES, *RETURNED_HEADERS) and isinstance(first, Message):
            found.append(first)  # the stdlib parses message/* types (rfc822-headers too) as messages
        elif kind in RETURNED_HEADERS:
            raw = part.get_payload(decode=True)
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(part.get_payload())
            found.append(HeaderParser().parsestr(text))
    return found


def referenced_ids(message: Message) -> list[str]:
    """The Message-IDs a report says it is about: its In-Reply-To and References, and the
    Message-ID of the returned message or headers."""
    ids = [
        i for name in ("In-Reply-To", "References") for i in MESSAGE_ID.findall(str(message.get(name, "")))
    ]
    for headers in returned_headers(message):
        ids += MESSAGE_ID.findall(str(headers.get("Message-ID", "")))
    return list(dict.fromkeys(ids))


def envelope_tokens(message: Message) -> list[str]:
    """The VERP tokens in the addresses a report was delivered to (our envelope sender)."""
    values = [str(v) for name in ENVELOPE_HEADERS for v in message.get_all(name, [])]
    return tokens_in(values)


def returned_tokens(message: Message) -> list[str]:
    """The VERP tokens of the returned message's own Return-Path (where a complaint quotes it)."""
    values = [str(v) for headers in returned_headers(message) for v in headers.get_all("Return-Path", [])]
    return tokens_in(values)
