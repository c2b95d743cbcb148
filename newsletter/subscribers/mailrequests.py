"""Unsubscribe requests sent by email: the mailto: half of List-Unsubscribe, honoured."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message

from ..errors import ConfigError, SubscriberError
from ..mail.tokens import TokenSigner, verify_unsubscribe
from ..settings import Settings
from . import open_list

# "unsubscribe <opaque token>" (or, in mail sent before opaque tokens, "unsubscribe <list>
# <address> <token>"), possibly behind "Re:" or "Fwd:" added by a client.
_PREFIX = r"^(?:\s*(?:re|fwd?|aw|wg)\s*:\s*)*unsubscribe\s+"
_REQUEST = re.compile(_PREFIX + r"(?P<token>[\w-]{20,1024})\s*$", re.IGNORECASE)
_LEGACY_REQUEST = re.compile(
    _PREFIX + r"(?P<list>[\w.-]+)\s+(?P<email>\S+@\S+)\s+(?P<token>[\w-]{20,})\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class MailRequest:
    """One parsed request; list and address are empty until an opaque token is opened."""

    list_name: str
    email: str
    token: str


def parse_request(subject: str) -> MailRequest | None:
    """The request in a subject line, or None when the message is something else."""
    line = subject.replace("\n", " ").strip()
    match = _REQUEST.match(line)
    if match is not None:
        return MailRequest("", "", match["token"])
    match = _LEGACY_REQUEST.match(line)
    if match is None:
        return None
    return MailRequest(match["list"], match["email"].strip("<>").lower(), match["token"])


def _opened(signer: TokenSigner, request: MailRequest) -> MailRequest | None:
    """The request with its list and address when the token is genuine, else None."""
    found = verify_unsubscribe(signer, request.token, request.list_name, request.email)
    return None if found is None else MailRequest(*found, request.token)


@dataclass
class RequestReport:
    """What a scan of the request mailbox found and changed."""

    messages: int = 0
    unsubscribed: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    forged: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    other: int = 0

    def summary(self) -> str:
        return (
            f"{self.messages} messages: {len(self.unsubscribed)} unsubscribed, "
            f"{len(self.already)} already unsubscribed, {len(self.forged)} with a bad token, "
            f"{len(self.unknown)} not on their list, {self.other} not unsubscribe requests"
        )


def _subject(message: Message) -> str:
    raw = message.get("Subject", "")
    try:
        return str(make_header(decode_header(raw)))
    except (UnicodeDecodeError, LookupError, ValueError):
        return str(raw)


def apply_mail_requests(settings: Settings, messages: Iterable[Message]) -> RequestReport:
    """Unsubscribe every address whose request carries a valid token; ignore everything else."""
    if not settings.secret:
        raise ConfigError(
            "NEWSLETTER_SECRET is not set, so request tokens cannot be checked",
            fix="set it to the secret the emails were sent with",
        )
    signer = TokenSigner.from_settings(settings)
    report = RequestReport()
    for message in messages:
        report.messages += 1
        request = parse_request(_subject(message))
        if request is None:
            report.other += 1
            continue
        genuine = _opened(signer, request)
        if genuine is None:
            report.forged.append(request.email or f"token {request.token[:12]}...")
        else:
            _unsubscribe(settings, genuine, report)
    return report


def _unsubscribe(settings: Settings, request: MailRequest, report: RequestReport) -> None:
    label = f"{request.email} ({request.list_name})"
    try:
        changed = open_list(settings.places, request.list_name).unsubscribe(request.email)
    except SubscriberError:  # not on the list, or no such list
        report.unknown.append(label)
        return
    (report.unsubscribed if changed else report.already).append(label)
