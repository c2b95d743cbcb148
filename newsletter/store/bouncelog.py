"""Bounces and complaints per reader: what `subscribers bounces` bound to one of our deliveries.

Each report is kept once (by a hash of its bytes), so a second run over the same mailbox counts
nothing twice; `report` lists them per reader with the reason, and repeated policy blocks are
counted from here across runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import func, select

from .database import Database
from .schema import bounce_events, deliveries
from .subscriberrows import key_of, now_text

_b = bounce_events


class EventKind(StrEnum):
    """What a report said about a reader's delivery (the `kind` column)."""

    HARD = "hard"
    SOFT = "soft"
    POLICY = "policy"  # 5.7.x: refused as spam or by policy
    COMPLAINT = "complaint"


@dataclass(frozen=True)
class BounceEvent:
    """One bounce or complaint about one delivery to one reader."""

    email: str
    message_id: str
    kind: EventKind
    reason: str
    fingerprint: str
    received_at: str = ""


def record_events(db: Database, list_name: str, events: Iterable[BounceEvent]) -> set[str]:
    """Keep the events not kept yet; the fingerprints of those that are new."""
    new: set[str] = set()
    with db.write() as conn:
        for event in events:
            statement = (
                db.insert(_b)
                .values(
                    list=list_name,
                    email_key=key_of(event.email),
                    fingerprint=event.fingerprint,
                    email=event.email,
                    message_id=event.message_id,
                    kind=event.kind.value,
                    reason=event.reason[:500],
                    received_at=now_text(),
                )
                .on_conflict_do_nothing()
            )
            if conn.execute(statement).rowcount:
                new.add(event.fingerprint)
    return new


def policy_blocks(db: Database, list_name: str, email: str) -> int:
    """How many different messages to this reader were refused by policy (5.7.x)."""
    query = select(func.count(func.distinct(_b.c.message_id))).where(
        _b.c.list == list_name, _b.c.email_key == key_of(email), _b.c.kind == EventKind.POLICY.value
    )
    with db.read() as conn:
        return int(conn.execute(query).scalar() or 0)


def events_of_issue(db: Database, issue: str, list_name: str, channel: str) -> list[BounceEvent]:
    """The bounces and complaints about one issue's messages, by reader, oldest first."""
    sent = select(deliveries.c.message_id).where(
        deliveries.c.issue == issue, deliveries.c.list == list_name, deliveries.c.channel == channel
    )
    query = (
        select(_b.c.email, _b.c.message_id, _b.c.kind, _b.c.reason, _b.c.fingerprint, _b.c.received_at)
        .where(_b.c.list == list_name, _b.c.message_id.in_(sent))
        .order_by(_b.c.email_key, _b.c.received_at, _b.c.fingerprint)
    )
    with db.read() as conn:
        return [BounceEvent(r[0], r[1], EventKind(r[2]), *r[3:]) for r in conn.execute(query)]
