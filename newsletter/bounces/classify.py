"""What a message at the bounce address is, and how permanent a failure it reports.

A bounce says "permanent" in several ways: an enhanced status code (RFC 3463: 5.x.x, 4.x.x), an
SMTP reply code (550, 452), or only a phrase ("user unknown", "mailbox full", "will retry").
Formats other than RFC 3464 (qmail, Exim, Yahoo, Exchange, ...) are read by flufl.bounce, the
detector library of GNU Mailman, rather than by regular expressions of our own. Auto-replies and
spam complaints (ARF, RFC 5965) are told apart first: neither is a bounce.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from email.message import Message
from enum import StrEnum

from flufl.bounce import all_failures

from ..text import one_line


class Severity(StrEnum):
    """How a failure reads: never going to work, worth another issue, a policy block, or unclear."""

    PERMANENT = "permanent"
    TEMPORARY = "temporary"
    POLICY = "policy"  # 5.7.x: refused as spam or by policy; a reader is marked only when it repeats
    UNKNOWN = "cannot tell"  # counted soft, and listed


@dataclass(frozen=True)
class Failure:
    """A severity and the words it was read from, for the report."""

    severity: Severity
    reason: str


ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
REPLY_CODE = re.compile(r"(?<![\d.])([45])[0-5]\d(?=[ -]|$)", re.MULTILINE)
# Said by servers that will try again, or about a message that is only late.
TEMPORARY_PHRASES = re.compile(
    r"will (?:be )?retr(?:y|ied)|still trying|delayed|not (?:yet )?been delivered yet|"
    r"temporar(?:y|ily)|try again later|this is (?:only )?a warning|warning: message|"
    r"mailbox (?:is )?full|over ?quota|quota exceeded|exceeded (?:the |their |storage )?(?:quota|allocation)",
    re.IGNORECASE,
)
PERMANENT_PHRASES = re.compile(
    r"user unknown|unknown user|no such (?:user|mailbox|recipient|address)|does not exist|"
    r"doesn't exist|not a valid (?:user|mailbox|recipient)|invalid (?:recipient|mailbox|address)|"
    r"unknown (?:recipient|mailbox|address|local part)|mailbox (?:unavailable|not found|disabled)|"
    r"account (?:has been )?(?:disabled|closed|deactivated|expired|suspended)|no mailbox|"
    r"user not found|recipient not found|address rejected|unrouteable|host unknown|"
    r"permanent(?:ly)? (?:error|failure|fatal)|could not be delivered|undeliverable|"
    r"delivery (?:has )?failed|failed permanently|no longer (?:valid|active|exists)",
    re.IGNORECASE,
)
FINAL_ACTIONS = ("failed", "error")  # "error" is RFC 1894's old word for it
NOT_FAILURES = ("delivered", "relayed", "expanded")
TEXT_LIMIT = 8000  # a bounce's own words come first; what follows is mostly the returned message


def of_codes(text: str) -> Failure | None:
    """The severity the first status code in some text gives: enhanced first, then SMTP's."""
    enhanced = [m for m in ENHANCED.finditer(text) if m.group(0) not in ("5.0.0", "4.0.0")]
    found = enhanced[0] if enhanced else ENHANCED.search(text)
    if found is not None:
        code = found.group(0)
        if code.startswith("5.7."):
            return Failure(Severity.POLICY, code)
        return Failure(Severity.PERMANENT if code[0] == "5" else Severity.TEMPORARY, code)
    reply = REPLY_CODE.search(text)
    if reply is not None:
        return Failure(Severity.PERMANENT if reply.group(1) == "5" else Severity.TEMPORARY, reply.group(0))
    return None


def of_phrases(text: str) -> Failure | None:
    """The severity the usual words give: a warning wins, as warnings quote the failure they retry."""
    if found := TEMPORARY_PHRASES.search(text):
        return Failure(Severity.TEMPORARY, found.group(0).lower())
    if found := PERMANENT_PHRASES.search(text):
        return Failure(Severity.PERMANENT, found.group(0).lower())
    return None


def of_block(action: str, status: str, diagnostic: str) -> Failure:
    """One RFC 3464 recipient block: a final Action is permanent unless a 5.7.x code says policy."""
    word = action.split("(", 1)[0].strip().lower()  # "failed (Bad destination mailbox address)"
    specific = status if status and not status.endswith(".0.0") else ""
    coded = of_codes(specific) or of_codes(diagnostic) or of_codes(status)
    reason = one_line(" ".join(filter(None, (word, status, diagnostic))))[:300]
    if coded is not None and coded.severity is Severity.POLICY and word not in ("delayed", *NOT_FAILURES):
        return Failure(Severity.POLICY, reason)
    if word == "delayed" or word in NOT_FAILURES:
        return Failure(Severity.TEMPORARY, reason)
    if word in FINAL_ACTIONS:
        return Failure(Severity.PERMANENT, reason)
    found = coded or of_phrases(diagnostic)
    return Failure(found.severity if found else Severity.UNKNOWN, reason)


def of_text(text: str) -> Failure:
    """A report without recipient blocks, from its readable text: phrases of warning, codes, phrases."""
    head = text[:TEXT_LIMIT]
    warning = TEMPORARY_PHRASES.search(head)
    coded = of_codes(head)
    if coded is not None and coded.severity is Severity.POLICY:
        return Failure(Severity.POLICY, _context(head, coded.reason))
    if warning is not None:
        return Failure(Severity.TEMPORARY, _context(head, warning.group(0)))
    found = coded or of_phrases(head)
    if found is None:
        return Failure(Severity.UNKNOWN, "no status code or known phrase")
    return Failure(found.severity, _context(head, found.reason))


def _context(text: str, hit: str) -> str:
    """The line a code or phrase was found on, for a reason a person can read."""
    at = text.lower().find(hit.lower())
    if at < 0:
        return hit
    start = text.rfind("\n", 0, at) + 1
    end = text.find("\n", at)
    return one_line(text[start : end if end >= 0 else len(text)])[:300]


def readable_text(message: Message) -> str:
    """The text/plain words of a message, leaving out any message it returns."""
    chunks: list[str] = []
    _collect(message, chunks)
    return "\n".join(chunks)[: TEXT_LIMIT * 2]


def _collect(part: Message, chunks: list[str]) -> None:
    kind = part.get_content_type()
    if kind.startswith("message/") or kind.endswith("rfc822-headers"):
        return
    if part.is_multipart():
        for sub in part.get_payload():
            if isinstance(sub, Message):
                _collect(sub, chunks)
        return
    if part.get_content_maintype() == "text":
        raw = part.get_payload(decode=True)
        if isinstance(raw, bytes):
            chunks.append(_decoded(raw, part.get_content_charset()))


def _decoded(raw: bytes, charset: str | None) -> str:
    try:
        return raw.decode(charset or "latin-1", "replace")
    except LookupError:  # a charset Python does not know ("ansi_x3.110-1983")
        return raw.decode("latin-1")


# --- what the message is ---------------------------------------------------------------------

FEEDBACK_REPORT = "message/feedback-report"
AUTO_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[ -]?(?:reply|response|antwort|risposta|respuesta)|out of (?:the )?office|"
    r"vacation|away from|abwesenheit|on leave|absence|autosvar|r[ée]ponse automatique|"
    r"please confirm|confirm your|verify your|verification required|challenge|"
    r"(?:re:\s*)?(?:your message|your e-?mail) (?:to .* )?(?:is|was) (?:being )?(?:held|quarantined))",
    re.IGNORECASE,
)
# Bounces often carry Auto-Submitted or Precedence too: these say it comes from delivery software.
BOUNCE_SENDER = re.compile(r"mailer-daemon|postmaster|mail delivery|mail administrator|\bmta\b|<>", re.I)
BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (?:status|fail|notification|problem)|returned mail|failure notice|"
    r"mail delivery failed|could not be delivered|delivery has failed|non[- ]?delivery|"
    r"mail error|warning: could not send|nondeliverable|returned to sender|user unknown|unknown user",
    re.IGNORECASE,
)


def is_complaint(message: Message) -> bool:
    """A spam complaint in the feedback-loop format (ARF, RFC 5965): a machine-readable part says so."""
    if message.get_content_type() == "multipart/report":
        kind = str(message.get_param("report-type", "") or "").lower()
        if kind == "feedback-report":
            return True
    return any(part.get_content_type() == FEEDBACK_REPORT for part in message.walk())


def looks_like_delivery_software(message: Message) -> bool:
    """From a mailer daemon or titled like a bounce: then Auto-Submitted does not make it an auto-reply."""
    sender = str(message.get("From", ""))
    return bool(BOUNCE_SENDER.search(sender) or BOUNCE_SUBJECT.search(str(message.get("Subject", ""))))


def is_auto_reply(message: Message) -> bool:
    """A vacation message, an autoresponder or a challenge-response: about the reader, not the mail."""
    if looks_like_delivery_software(message):
        return False
    auto = str(message.get("Auto-Submitted", "")).strip().lower()
    flagged = (
        auto not in ("", "no")
        or _precedence(message) in ("auto_reply", "auto-reply")
        or any(message.get(name) is not None for name in AUTO_REPLY_HEADERS)
    )
    return flagged or bool(AUTO_SUBJECT.search(one_line(str(message.get("Subject", "")))))


def is_bulk(message: Message) -> bool:
    """Precedence: bulk or junk, as many autoresponders write (and some bounces: asked only after
    the detectors found no failure in it)."""
    return _precedence(message) in ("bulk", "junk") and not looks_like_delivery_software(message)


def _precedence(message: Message) -> str:
    return str(message.get("Precedence", "")).strip().lower()


AUTO_REPLY_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autogenerated")


def detected(message: Message) -> tuple[set[str], set[str]]:
    """The (temporary, permanent) failing addresses flufl.bounce's detectors find, if any."""
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # a detector tripping over a malformed message must not stop the run
        logging.getLogger(__name__).debug("flufl.bounce failed on a message", exc_info=True)
        return set(), set()
    return {_text(a) for a in temporary}, {_text(a) for a in permanent}


def _text(address: bytes | str) -> str:
    return address.decode("utf-8", "replace") if isinstance(address, bytes) else address
