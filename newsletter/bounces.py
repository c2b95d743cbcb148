"""Reading bounce reports (RFC 3464 DSNs) so addresses that can never receive mail stop getting it."""

from __future__ import annotations

import mailbox
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.utils import parseaddr
from pathlib import Path

from .errors import SubscriberError
from .subscribers import SubscriberStore
from .subscribers.store import apply_status


@dataclass(frozen=True)
class Bounce:
    """One recipient block of a DSN."""

    recipient: str
    action: str
    status: str
    diagnostic: str = ""

    @property
    def is_hard(self) -> bool:
        """Permanent failure: the server said 5.x.x, so retrying next week will not help."""
        return self.action == "failed" and self.status.startswith("5.")


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

    def summary(self) -> str:
        """One line for the terminal."""
        return (f"{self.messages} messages, {self.hard} hard and {self.soft} soft bounces, "
                f"{len(self.marked)} marked bounced, {len(self.already)} already bounced or unsubscribed, "
                f"{len(self.unknown)} not on the list, {self.not_reports} not delivery reports")


def _field(block: Message, name: str) -> str:
    return " ".join(str(block.get(name, "")).split())


def _recipient(block: Message) -> str:
    # "rfc822; user@example.org": the address type comes first and is not part of the address.
    for name in ("Final-Recipient", "Original-Recipient"):
        value = _field(block, name)
        if value:
            address = value.split(";", 1)[-1].strip()
            return parseaddr(address)[1] or address.strip("<>")
    return ""


def bounces_in(message: Message) -> list[Bounce] | None:
    """The recipient blocks of a DSN, or None when the message is not a delivery report."""
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            return []
        found = []
        for block in blocks[1:]:  # the first block is about the message, the rest one per recipient
            if not isinstance(block, Message):
                continue
            recipient = _recipient(block)
            if recipient:
                status = _field(block, "Status").split(" ", 1)[0]
                found.append(Bounce(recipient, _field(block, "Action").lower(), status,
                                    _field(block, "Diagnostic-Code")))
        return found
    return None


def read_messages(maildir: Path | None = None, mbox: Path | None = None) -> Iterator[Message]:
    """Every message in a Maildir (new and cur) or an mbox file."""
    if maildir is not None:
        if not (maildir / "cur").is_dir() and not (maildir / "new").is_dir():
            raise SubscriberError(f"{maildir} is not a Maildir (no cur/ or new/ folder)", where=str(maildir),
                                  fix="pass the folder that holds cur/, new/ and tmp/")
        box: mailbox.Mailbox = mailbox.Maildir(maildir, factory=None, create=False)
    elif mbox is not None:
        if not mbox.is_file():
            raise SubscriberError(f"mbox file {mbox.name} not found", where=str(mbox), fix="check the --mbox path")
        box = mailbox.mbox(mbox, create=False)
    else:
        raise SubscriberError("no mailbox given", fix="pass --maildir PATH or --mbox PATH")
    try:
        yield from box
    finally:
        box.close()


def apply_bounces(store: SubscriberStore, messages: Iterable[Message]) -> BounceReport:
    """Mark hard-bounced addresses 'bounced'; soft bounces are counted and left alone."""
    report = BounceReport()
    hard: dict[str, str] = {}
    for message in messages:
        report.messages += 1
        found = bounces_in(message)
        if found is None:
            report.not_reports += 1
            continue
        for bounce in found:
            if bounce.is_hard:
                report.hard += 1
                hard.setdefault(bounce.recipient.lower(), bounce.recipient)
            else:
                report.soft += 1
    with store.editing() as table:
        for address in hard.values():
            positions = table.positions(address)
            if not positions:
                report.unknown.append(address)
            elif table.status(positions[0]) != "active":
                report.already.append(address)
            else:
                for position in positions:
                    apply_status(table, position, "bounced")
                report.marked.append(address)
    return report
