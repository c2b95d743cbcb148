"""Reading bounce reports (RFC 3464 DSNs) so addresses that can never receive mail stop getting it."""

from __future__ import annotations

import mailbox
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from email.parser import HeaderParser
from email.utils import parseaddr
from functools import partial
from pathlib import Path

from ..errors import SubscriberError
from ..mail.tokens import TokenSigner
from ..mail.verp import opened_key, tokens_in
from ..settings import Settings
from ..statuses import SubscriberStatus
from ..store import Database
from ..store.history import message_ids_by_key
from ..store.subscribers import SubscriberStore
from ..text import one_line

DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
RETURNED_MESSAGES = ("message/rfc822", "message/global")
RETURNED_HEADERS = ("text/rfc822-headers", "message/global-headers")
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
# Message-ID -> (list, address) for the ids we recorded sending; the ledger answers it.
SentLookup = Callable[[list[str]], Mapping[str, tuple[str, str]]]


@dataclass(frozen=True)
class VerpCheck:
    """What trusting a VERP token takes: opening it (our secret) and finding its delivery (the ledger)."""

    opened: Callable[[str], str | None]  # token -> delivery key; None when forged or altered
    message_ids: Callable[[list[str]], Mapping[str, str]]  # delivery key -> Message-ID we sent


@dataclass(frozen=True)
class _Tokens:
    """A report's VERP tokens, resolved: the Message-IDs they stand for, or why none."""

    ids: tuple[str, ...] = ()
    reason: str | None = None


@dataclass(frozen=True)
class Ignored:
    """A bounce that does not count: it is not about a message we sent to that address."""

    recipient: str
    reason: str


@dataclass(frozen=True)
class Bounce:
    """One recipient block of a DSN."""

    recipient: str
    action: str
    status: str
    diagnostic: str = ""
    original: str = ""

    @property
    def is_hard(self) -> bool:
        """Permanent failure: the server said 5.x.x, so retrying next week will not help."""
        return self.action == "failed" and self.status.startswith("5.")

    @property
    def addresses(self) -> tuple[str, ...]:
        """Final recipient first, then the original one (ours, when the mail was forwarded)."""
        return tuple(dict.fromkeys(a for a in (self.recipient, self.original) if a))


@dataclass
class BounceReport:
    """What a bounce scan found and changed."""

    messages: int = 0
    not_reports: int = 0
    hard: int = 0
    soft: int = 0
    marked: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the terminal."""
        return (
            f"{self.messages} messages, {self.hard} hard and {self.soft} soft bounces, "
            f"{len(self.marked)} marked bounced, {len(self.already)} already bounced or unsubscribed, "
            f"{len(self.unknown)} not on the list, {self.not_reports} not delivery reports, "
            f"{len(self.ignored)} ignored (not about mail we sent)"
        )


def _field(block: Message, name: str) -> str:
    return one_line(str(block.get(name, "")))


def _address(block: Message, name: str) -> str:
    # "rfc822; user@example.org": the address type comes first and is not part of the address.
    value = _field(block, name)
    if not value:
        return ""
    address = value.split(";", 1)[-1].strip()
    return parseaddr(address)[1] or address.strip("<>")


def _blocks(part: Message) -> list[Message]:
    """The header blocks of a delivery-status part, parsed by the stdlib or by us (RFC 6533 global)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = [block for block in payload if isinstance(block, Message)]
        if all(not block.get_payload() for block in blocks):
            return blocks
        # The stdlib reads message/global-delivery-status as one message: blocks after the first are its body.
        text = "\n\n".join(block.as_string() for block in blocks)
    else:
        raw = part.get_payload(decode=True)
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)
    return [
        HeaderParser().parsestr(chunk.strip() + "\n") for chunk in BLANK_LINE.split(text) if chunk.strip()
    ]


def bounces_in(message: Message) -> list[Bounce] | None:
    """The recipient blocks of a DSN, or None when the message is not a delivery report."""
    for part in message.walk():
        if part.get_content_type() not in DSN_TYPES:
            continue
        found = []
        for block in _blocks(part)[1:]:  # the first block is about the message, the rest per recipient
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


def read_messages(maildir: Path | None = None, mbox: Path | None = None) -> Iterator[Message]:
    """Every message in a Maildir (new and cur) or an mbox file."""
    if maildir is not None:
        if not (maildir / "cur").is_dir() and not (maildir / "new").is_dir():
            raise SubscriberError(
                f"{maildir} is not a Maildir (no cur/ or new/ folder)",
                where=str(maildir),
                fix="pass the folder that holds cur/, new/ and tmp/",
            )
        box: mailbox.Mailbox = mailbox.Maildir(maildir, factory=None, create=False)
    elif mbox is not None:
        if not mbox.is_file():
            raise SubscriberError(
                f"mbox file {mbox.name} not found", where=str(mbox), fix="check the --mbox path"
            )
        box = mailbox.mbox(mbox, create=False)
    else:
        raise SubscriberError("no mailbox given", fix="pass --maildir PATH or --mbox PATH")
    try:
        yield from box
    finally:
        box.close()


def referenced_ids(message: Message) -> list[str]:
    """The Message-IDs a report says it is about: its In-Reply-To and References, and the
    Message-ID of the returned message or headers (RFC 3462's third part)."""
    ids = [
        i for name in ("In-Reply-To", "References") for i in MESSAGE_ID.findall(str(message.get(name, "")))
    ]
    for part in message.walk():
        kind = part.get_content_type()
        headers: Message | None = None
        if kind in RETURNED_MESSAGES:
            payload = part.get_payload()
            first = payload[0] if isinstance(payload, list) and payload else None
            headers = first if isinstance(first, Message) else None
        elif kind in RETURNED_HEADERS:
            raw = part.get_payload(decode=True)
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(part.get_payload())
            headers = HeaderParser().parsestr(text)
        if isinstance(headers, Message):
            ids += MESSAGE_ID.findall(str(headers.get("Message-ID", "")))
    return list(dict.fromkeys(ids))


def why_not_ours(
    bounce: Bounce, ids: list[str], sent: Mapping[str, tuple[str, str]], list_name: str
) -> str | None:
    """None when the report is about a message we sent to this address on this list, else why not."""
    if not ids:
        return "names no Message-ID of a message we sent (forged, or not a bounce of ours)"
    ours = [sent[i] for i in ids if i in sent]
    if not ours:
        return f"is about {ids[0]}, which we never sent"
    addresses = {a.lower() for a in bounce.addresses}
    if any(name == list_name and email.lower() in addresses for name, email in ours):
        return None
    if any(email.lower() in addresses for _, email in ours):
        return f"is about mail of another list ({ours[0][0]})"
    return "is about a message we sent to someone else"


def bind_to_delivery(
    store: SubscriberStore, bounce: Bounce, ids: list[str], sent: Mapping[str, tuple[str, str]]
) -> Bounce | Ignored:
    """The bounce as about exactly the recipient of the delivery it names: a block that also names
    another reader of the list (as Final- or Original-Recipient) proves nothing about them."""
    ours = {sent[i][1].lower() for i in ids if i in sent and sent[i][0] == store.name}
    # the address as the report spells it when it names the delivery's, else the ledger's
    target = next((a for a in bounce.addresses if a.lower() in ours), min(ours, default=bounce.recipient))
    for address in bounce.addresses:
        if address.lower() != target.lower() and store.get(address) is not None:
            return Ignored(address, f"names {address}, but the delivery it is about went to {target}")
    return Bounce(target, bounce.action, bounce.status, bounce.diagnostic)


def verp_check(settings: Settings, db: Database) -> VerpCheck | None:
    """Tokens are opened with the configured secrets (current and previous); without one they cannot be."""
    if not settings.secret:
        return None
    signer = TokenSigner.from_settings(settings)
    return VerpCheck(partial(opened_key, signer), partial(message_ids_by_key, db))


def envelope_tokens(message: Message) -> list[str]:
    """The VERP tokens in the addresses a report was delivered to (our envelope sender)."""
    values = [str(v) for name in ENVELOPE_HEADERS for v in message.get_all(name, [])]
    return tokens_in(values)


def _resolve(tokens: list[str], verp: VerpCheck | None, keyed: Mapping[str, str]) -> _Tokens:
    if not tokens:
        return _Tokens()
    if verp is None:
        return _Tokens(reason="carries a VERP token, but no secret is set to check it with")
    keys = [verp.opened(token) for token in tokens]
    ids = tuple(keyed[key] for key in keys if key is not None and key in keyed)
    if ids:
        return _Tokens(ids)
    if all(key is None for key in keys):
        return _Tokens(reason="carries a VERP token that is not ours (forged or altered)")
    return _Tokens(reason="carries a VERP token of a delivery the ledger does not have")


def _by_token(
    bounce: Bounce, tokens: _Tokens, sent: Mapping[str, tuple[str, str]], list_name: str
) -> Bounce | None:
    """The bounce as about the token's address: a genuine token names our delivery whatever
    address the remote server reports (a forward's target, an Exchange rewrite)."""
    ours = [sent[i] for i in tokens.ids if i in sent and sent[i][0] == list_name]
    if not ours:
        return None
    return Bounce(ours[0][1], bounce.action, bounce.status, bounce.diagnostic)


def _decide(
    store: SubscriberStore,
    bounce: Bounce,
    *,
    blocks: int,
    ids: list[str],
    tokens: _Tokens,
    known: Mapping[str, tuple[str, str]],
) -> Bounce | Ignored:
    """One recipient block: the bounce of exactly our delivery's recipient, or why it does not count."""
    reason = why_not_ours(bounce, ids, known, store.name)
    # One recipient per message is how we send: a genuine token says whose it was.
    if reason is not None and blocks == 1 and (mine := _by_token(bounce, tokens, known, store.name)):
        bounce, reason = mine, None
    if reason is not None:
        return Ignored(bounce.recipient, tokens.reason or reason)
    return bind_to_delivery(store, bounce, ids, known)


def apply_bounces(
    store: SubscriberStore, messages: Iterable[Message], sent: SentLookup, verp: VerpCheck | None = None
) -> BounceReport:
    """Mark hard-bounced addresses 'bounced' when the report is about a message we sent them (its
    Message-ID, or the VERP token of the address it came back to); soft bounces are counted and
    left alone, reports about anything else are listed as ignored, with the reason."""
    report = BounceReport()
    pending: list[tuple[list[Bounce], list[str], list[str]]] = []
    for message in messages:
        report.messages += 1
        found = bounces_in(message)
        if found is None:
            report.not_reports += 1
            continue
        pending.append((found, referenced_ids(message), envelope_tokens(message)))
    opened = [k for _, _, tokens in pending for t in tokens if verp and (k := verp.opened(t))]
    keyed = verp.message_ids(opened) if verp is not None and opened else {}
    resolved = [_resolve(tokens, verp, keyed) for _, _, tokens in pending]
    known = sent([i for _, ids, _ in pending for i in ids] + [i for r in resolved for i in r.ids])
    hard: list[Bounce] = []
    for (found, ids, _), tokens in zip(pending, resolved, strict=True):
        for bounce in found:
            decided = _decide(
                store, bounce, blocks=len(found), ids=[*ids, *tokens.ids], tokens=tokens, known=known
            )
            if isinstance(decided, Ignored):
                report.ignored.append(decided)
            elif decided.is_hard:
                hard.append(decided)
            else:
                report.soft += 1
    report.hard = len(hard)
    done: set[str] = set()
    for bounce in hard:
        _mark(store, bounce, done, report)
    return report


def _mark(store: SubscriberStore, bounce: Bounce, done: set[str], report: BounceReport) -> None:
    """Mark the first of the bounce's addresses that is on the list, once per address."""
    found = next(((a, s) for a in bounce.addresses if (s := store.get(a)) is not None), None)
    if found is None:
        if bounce.recipient.lower() not in done:
            report.unknown.append(bounce.recipient)
            done.add(bounce.recipient.lower())
        return
    address, subscriber = found
    if subscriber.key in done:
        return
    done.add(subscriber.key)
    if not subscriber.is_active:
        report.already.append(address)
        return
    store.set_status(address, SubscriberStatus.BOUNCED)
    report.marked.append(address)
