"""What a message at the bounce address is, before the ledger is asked whose it is: a spam
complaint, an RFC 3464 report, an auto-reply, a bounce in another format, or something else."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from email.message import Message
from enum import StrEnum

from .classify import (
    Failure,
    Severity,
    detected,
    is_auto_reply,
    is_bulk,
    is_complaint,
    looks_like_delivery_software,
    of_text,
    readable_text,
)
from .dsn import Bounce, bounces_in, envelope_tokens, referenced_ids, returned_tokens


class ReadAs(StrEnum):
    """What a message is, as far as its own content tells."""

    COMPLAINT = "complaint"  # ARF
    BLOCKS = "blocks"  # an RFC 3464 report with recipient blocks
    AUTO_REPLY = "auto-reply"
    FAILURE = "failure"  # a bounce in another format (or a report without recipient blocks)
    OTHER = "other"


@dataclass(frozen=True)
class Reading:
    """One message as read, before the ledger is asked whose it is."""

    what: ReadAs
    failure: Failure
    ids: list[str]
    tokens: list[str]
    fingerprint: str
    blocks: tuple[Bounce, ...] = ()
    named: tuple[str, ...] = ()  # the recipients it names, where not in blocks


def fingerprint(message: Message) -> str:
    """Which report this is, so that reading the same mailbox again counts nothing twice."""
    try:
        data = message.as_bytes()
    except (UnicodeError, LookupError):  # a header the generator cannot write back
        data = str(message).encode("utf-8", "replace")
    return hashlib.sha256(data).hexdigest()


def read_report(message: Message) -> Reading:
    """What one message is: a complaint, a DSN, an auto-reply, a bounce in another format, or other."""
    ids, tokens, mark = referenced_ids(message), envelope_tokens(message), fingerprint(message)
    if is_complaint(message):
        tokens = list(dict.fromkeys([*tokens, *returned_tokens(message)]))
        return Reading(
            ReadAs.COMPLAINT, Failure(Severity.UNKNOWN, _complaint_reason(message)), ids, tokens, mark
        )
    blocks = bounces_in(message)
    if blocks:
        return Reading(ReadAs.BLOCKS, Failure(Severity.UNKNOWN, ""), ids, tokens, mark, tuple(blocks))
    if blocks is None and is_auto_reply(message):
        return Reading(ReadAs.AUTO_REPLY, Failure(Severity.UNKNOWN, "an auto-reply"), ids, tokens, mark)
    temporary, permanent = detected(message)
    text = readable_text(message)
    if temporary or permanent:
        named = tuple(sorted(temporary | permanent))
        return Reading(
            ReadAs.FAILURE, _detected_failure(text, bool(permanent)), ids, tokens, mark, named=named
        )
    if is_bulk(message) and blocks is None:
        return Reading(ReadAs.AUTO_REPLY, Failure(Severity.UNKNOWN, "an auto-reply"), ids, tokens, mark)
    if blocks is not None or looks_like_delivery_software(message):
        return Reading(ReadAs.FAILURE, of_text(text), ids, tokens, mark)
    return Reading(ReadAs.OTHER, Failure(Severity.UNKNOWN, "does not read as a bounce"), ids, tokens, mark)


def _detected_failure(text: str, permanent: bool) -> Failure:
    """flufl.bounce says permanent or temporary; the text may still show it is a 5.7.x policy block."""
    found = of_text(text)
    if not permanent:
        reason = found.reason if found.severity is Severity.TEMPORARY else "a delivery warning"
        return Failure(Severity.TEMPORARY, reason)
    if found.severity in (Severity.POLICY, Severity.PERMANENT):
        return found
    return Failure(Severity.PERMANENT, "reported as a permanent failure")


def _complaint_reason(message: Message) -> str:
    """Who complained and how, from the feedback report's own fields."""
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            payload = part.get_payload()
            block = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(block, Message):
                kind = str(block.get("Feedback-Type", "abuse")).strip()
                source = str(block.get("Reporting-MTA", "") or block.get("User-Agent", "")).strip()
                return f"spam complaint ({kind}{', ' + source if source else ''})"
    return "spam complaint"
