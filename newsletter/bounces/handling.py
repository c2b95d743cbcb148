"""Reading what comes back to the bounce address: bounces mark readers whose mailbox is gone,
complaints unsubscribe the reader who called the digest spam, the rest changes nothing.

Every message read lands in exactly one category of the summary (hard, soft, complaint,
auto-reply, not ours, not understood). A report counts only for the exact recipient of the
delivery it names: the one whose signed VERP token it came back to (whatever its format), or
whose Message-ID it quotes; a report naming any other reader is ignored, with the reason.
"""

from __future__ import annotations

import mailbox
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from enum import StrEnum
from functools import partial
from pathlib import Path

from ..errors import SubscriberError
from ..mail.tokens import TokenSigner
from ..mail.verp import opened_key
from ..settings import Settings
from ..statuses import SubscriberStatus
from ..store import Database
from ..store.bouncelog import BounceEvent, EventKind, policy_blocks, record_events
from ..store.history import message_ids_by_key
from ..store.subscribers import SubscriberStore
from .classify import Severity
from .dsn import Bounce, bounces_in
from .reading import ReadAs, Reading, read_report

__all__ = ["Bounce", "BounceReport", "SentLookup", "apply_bounces", "bounces_in", "read_messages"]

# Message-ID -> (list, address) for the ids we recorded sending; the ledger answers it.
SentLookup = Callable[[list[str]], Mapping[str, tuple[str, str]]]


class BounceCategory(StrEnum):
    """Where one message read lands in the summary: each in exactly one."""

    HARD = "hard"
    SOFT = "soft"  # temporary, a policy block, or cannot tell
    COMPLAINT = "complaint"
    AUTO_REPLY = "auto-reply"
    NOT_OURS = "not ours"
    NOT_UNDERSTOOD = "not understood"


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
    """A report, or one block of it, that does not count: not about a message we sent to that address."""

    recipient: str
    reason: str


@dataclass(frozen=True)
class Bound:
    """A bounce or complaint about exactly one delivery of ours, and the report it came in."""

    bounce: Bounce
    message_id: str
    fingerprint: str


@dataclass
class BounceReport:
    """What a bounce scan found and changed."""

    messages: int = 0
    counts: dict[BounceCategory, int] = field(default_factory=lambda: dict.fromkeys(BounceCategory, 0))
    policy: int = 0  # of the soft ones
    marked: list[str] = field(default_factory=list)
    unsubscribed: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    unclear: list[Ignored] = field(default_factory=list)  # counted soft: cannot tell; listed
    ignored: list[Ignored] = field(default_factory=list)

    @property
    def hard(self) -> int:
        return self.counts[BounceCategory.HARD]

    @property
    def soft(self) -> int:
        return self.counts[BounceCategory.SOFT]

    def summary(self) -> str:
        """One line for the terminal: every message in one category, then what changed."""
        c = self.counts
        return (
            f"{self.messages} messages: {c[BounceCategory.HARD]} hard, {c[BounceCategory.SOFT]} soft "
            f"({self.policy} policy blocks, {len(self.unclear)} cannot tell), "
            f"{c[BounceCategory.COMPLAINT]} complaints, {c[BounceCategory.AUTO_REPLY]} auto-replies, "
            f"{c[BounceCategory.NOT_OURS]} not ours, {c[BounceCategory.NOT_UNDERSTOOD]} not understood; "
            f"{len(self.marked)} marked bounced, {len(self.unsubscribed)} unsubscribed by complaint, "
            f"{len(self.already)} already bounced or unsubscribed, {len(self.unknown)} not on the list"
        )


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


def verp_check(settings: Settings, db: Database) -> VerpCheck | None:
    """Tokens are opened with the configured secrets (current and previous); without one they cannot be."""
    if not settings.secret:
        return None
    signer = TokenSigner.from_settings(settings)
    return VerpCheck(partial(opened_key, signer), partial(message_ids_by_key, db))


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


def _ours(ids: Iterable[str], known: Mapping[str, tuple[str, str]], list_name: str) -> dict[str, str]:
    """Address (lower case) -> Message-ID of the deliveries on this list among these ids."""
    return {known[i][1].lower(): i for i in ids if i in known and known[i][0] == list_name}


def _target(
    store: SubscriberStore, addresses: Iterable[str], ours: Mapping[str, str], *, by_token: bool
) -> str | Ignored | None:
    """The recipient of the delivery a report is about, or why it may not count: it names another
    reader of the list (as Final- or Original-Recipient), which proves nothing about them."""
    named = list(addresses)
    target = next((a for a in named if a.lower() in ours), None)
    if target is None and by_token and ours:
        target = next(iter(ours))  # a genuine token says whose it was, whatever address is reported
    if target is None:
        return None
    for address in named:
        if address.lower() != target.lower() and store.get(address) is not None:
            return Ignored(address, f"names {address}, but the delivery it is about went to {target}")
    return target


def _bound(bounce: Bounce, target: str, ours: Mapping[str, str], mark: str) -> Bound:
    exact = Bounce(target, bounce.action, bounce.status, bounce.diagnostic, failure=bounce.failure)
    return Bound(exact, ours[target.lower()], mark)


def _decide_block(
    store: SubscriberStore,
    read: Reading,
    bounce: Bounce,
    tokens: _Tokens,
    known: Mapping[str, tuple[str, str]],
) -> Bound | Ignored:
    """One recipient block: the bounce of exactly our delivery's recipient, or why it does not count."""
    ids = [*read.ids, *tokens.ids]
    reason = why_not_ours(bounce, ids, known, store.name)
    ours = _ours(ids if reason is None else tokens.ids, known, store.name)
    # One recipient per message is how we send: a genuine token says whose the report is, and
    # blocks naming another reader of the list are ignored (_target).
    by_token = reason is not None and bool(tokens.ids)
    if reason is None or by_token:
        target = _target(store, bounce.addresses, ours, by_token=by_token)
        if isinstance(target, Ignored):
            return target
        if target is not None:
            return _bound(bounce, target, ours, read.fingerprint)
    return Ignored(bounce.recipient, tokens.reason or reason or "is about a message we sent to someone else")


def _decide_blocks(
    store: SubscriberStore, read: Reading, tokens: _Tokens, known: Mapping[str, tuple[str, str]]
) -> tuple[BounceCategory, list[Bound], list[Ignored]]:
    bound: dict[str, Bound] = {}
    ignored: list[Ignored] = []
    for bounce in read.blocks:
        decided = _decide_block(store, read, bounce, tokens, known)
        if isinstance(decided, Ignored):
            ignored.append(decided)
            continue
        key = decided.bounce.recipient.lower()  # several blocks about one delivery count once, the hardest
        if key not in bound or (decided.bounce.is_hard and not bound[key].bounce.is_hard):
            bound[key] = decided
    if not bound:
        return BounceCategory.NOT_OURS, [], ignored
    hard = any(b.bounce.is_hard for b in bound.values())
    return (BounceCategory.HARD if hard else BounceCategory.SOFT), list(bound.values()), ignored


def decide(
    store: SubscriberStore, read: Reading, tokens: _Tokens, known: Mapping[str, tuple[str, str]]
) -> tuple[BounceCategory, list[Bound], list[Ignored]]:
    """A message's category, the deliveries it counts for, and what of it is ignored and why."""
    if read.what is ReadAs.AUTO_REPLY:
        return BounceCategory.AUTO_REPLY, [], []
    if read.what is ReadAs.BLOCKS:
        return _decide_blocks(store, read, tokens, known)
    by_token = _ours(tokens.ids, known, store.name)
    if read.what is ReadAs.OTHER and not by_token:
        return BounceCategory.NOT_UNDERSTOOD, [], []
    # a complaint quotes our whole message: its Message-ID alone says whose it was
    ours = by_token or _ours(read.ids, known, store.name)
    target = _target(store, read.named, ours, by_token=bool(by_token) or read.what is ReadAs.COMPLAINT)
    if isinstance(target, Ignored):
        return BounceCategory.NOT_OURS, [], [target]
    if target is None:
        why = tokens.reason or "names no Message-ID of a message we sent (forged, or not a bounce of ours)"
        return BounceCategory.NOT_OURS, [], [Ignored(read.named[0] if read.named else "-", why)]
    bounce = Bounce(target, "", "", failure=read.failure)
    if read.what is ReadAs.COMPLAINT:
        category = BounceCategory.COMPLAINT
    else:
        category = BounceCategory.HARD if bounce.is_hard else BounceCategory.SOFT
    return category, [_bound(bounce, target, ours, read.fingerprint)], []


def apply_bounces(
    store: SubscriberStore,
    messages: Iterable[Message],
    sent: SentLookup,
    verp: VerpCheck | None = None,
    *,
    policy_limit: int = 3,
) -> BounceReport:
    """Read every message, count each in one category, and act on those about a delivery of ours:
    a hard bounce marks the reader bounced, a complaint unsubscribes them, policy blocks mark them
    once `policy_limit` different messages were blocked; the rest is counted and listed."""
    report = BounceReport()
    reads = []
    for message in messages:
        report.messages += 1
        reads.append(read_report(message))
    opened = [k for read in reads for t in read.tokens if verp and (k := verp.opened(t))]
    keyed = verp.message_ids(opened) if verp is not None and opened else {}
    resolved = [_resolve(read.tokens, verp, keyed) for read in reads]
    known = sent([i for read in reads for i in read.ids] + [i for r in resolved for i in r.ids])
    found: list[tuple[BounceCategory, Bound]] = []
    for read, tokens in zip(reads, resolved, strict=True):
        category, bound, ignored = decide(store, read, tokens, known)
        report.counts[category] += 1
        report.ignored += ignored
        found += [(category, b) for b in bound]
    _act(store, found, report, policy_limit)
    return report


def _kind(category: BounceCategory, bounce: Bounce) -> EventKind:
    if category is BounceCategory.COMPLAINT:
        return EventKind.COMPLAINT
    return {Severity.PERMANENT: EventKind.HARD, Severity.POLICY: EventKind.POLICY}.get(
        bounce.severity, EventKind.SOFT
    )


def _act(
    store: SubscriberStore, found: list[tuple[BounceCategory, Bound]], report: BounceReport, policy_limit: int
) -> None:
    """Keep every bound report in the store, then change the statuses they call for."""
    events = [
        BounceEvent(b.bounce.recipient, b.message_id, _kind(c, b.bounce), b.bounce.reason, b.fingerprint)
        for c, b in found
    ]
    record_events(store.db, store.name, events)
    done: set[str] = set()
    for event, (_, bound) in zip(events, found, strict=True):
        if event.kind is EventKind.COMPLAINT:
            _unsubscribe(store, bound.bounce, done, report)
        elif event.kind is EventKind.HARD:
            _mark(store, bound.bounce, done, report)
        elif event.kind is EventKind.POLICY:
            report.policy += 1
            if policy_blocks(store.db, store.name, event.email) >= policy_limit:
                _mark(store, bound.bounce, done, report)
        elif bound.bounce.severity is Severity.UNKNOWN:
            report.unclear.append(Ignored(event.email, event.reason))


def _unsubscribe(store: SubscriberStore, bounce: Bounce, done: set[str], report: BounceReport) -> None:
    """A complaint: unsubscribe at once (the store bars the address), once per address."""
    key = bounce.recipient.lower()
    if key in done:
        return
    done.add(key)
    if store.get(bounce.recipient) is None:
        report.unknown.append(bounce.recipient)
    elif store.unsubscribe(bounce.recipient):
        report.unsubscribed.append(bounce.recipient)
    else:
        report.already.append(bounce.recipient)


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
