"""What was sent, read back: `newsletter report`, the preview's issue picker and replay, and the
matching of bounce reports to the messages we sent."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import case, func, or_, select

from ..statuses import DeliveryStatus
from .database import Database
from .schema import deliveries

_d = deliveries


@dataclass(frozen=True)
class DeliveryRecord:
    """What the ledger knows about one reader's message of one issue: enough to rebuild it."""

    email: str
    channel: str
    status: str
    message_id: str
    papers: tuple[str, ...]
    reader: str | None
    updated_at: str


@dataclass(frozen=True)
class IssueRecord:
    """One issue of one list as the ledger has it, for pickers and reports."""

    issue: str
    channel: str
    readers: int
    delivered: int
    last_update: str


@dataclass(frozen=True)
class LedgerRow:
    """One subscriber's record for one issue, as `newsletter report` shows it."""

    email: str
    status: DeliveryStatus
    attempts: int
    last_reply: str | None
    updated_at: str


def read_issue(db: Database, issue: str, list_name: str, channel: str) -> list[LedgerRow]:
    """Every row of one issue, in the order they were last touched."""
    query = (
        select(_d.c.email, _d.c.status, _d.c.attempts, _d.c.last_reply, _d.c.updated_at)
        .where(_d.c.issue == issue, _d.c.list == list_name, _d.c.channel == channel)
        .order_by(_d.c.updated_at, _d.c.email)
    )
    with db.read() as conn:
        return [LedgerRow(row[0], DeliveryStatus(row[1]), *row[2:]) for row in conn.execute(query)]


def latest_issue(db: Database, list_name: str, channel: str) -> str | None:
    """The issue of this list most recently worked on, for `report` without --issue."""
    query = (
        select(_d.c.issue)
        .where(_d.c.list == list_name, _d.c.channel == channel)
        .order_by(_d.c.updated_at.desc(), _d.c.issue.desc())  # within a second, the later id
        .limit(1)
    )
    with db.read() as conn:
        found = conn.execute(query).scalar()
    return str(found) if found is not None else None


def recorded_issues(db: Database, list_name: str) -> list[IssueRecord]:
    """Every issue recorded for a list, newest first, for the preview's issue picker."""
    last = func.max(_d.c.updated_at)
    delivered = func.sum(case((_d.c.status == DeliveryStatus.DELIVERED.value, 1), else_=0))
    query = (
        select(_d.c.issue, _d.c.channel, func.count(), delivered, last)
        .where(_d.c.list == list_name)
        .group_by(_d.c.issue, _d.c.channel)
        .order_by(last.desc(), _d.c.issue.desc())
    )
    with db.read() as conn:
        return [IssueRecord(row[0], row[1], int(row[2]), int(row[3]), row[4]) for row in conn.execute(query)]


def deliveries_to(db: Database, issue: str, list_name: str, email: str) -> list[DeliveryRecord]:
    """One reader's records of one issue (one per channel, real SMTP first), for `preview --issue`."""
    query = (
        select(
            _d.c.email, _d.c.channel, _d.c.status, _d.c.message_id, _d.c.papers, _d.c.reader, _d.c.updated_at
        )
        .where(_d.c.issue == issue, _d.c.list == list_name, _d.c.email == email.strip().lower())
        .order_by(case((_d.c.channel == "outbox", 1), else_=0), _d.c.channel)
    )
    with db.read() as conn:
        rows = conn.execute(query).all()
    return [DeliveryRecord(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), r[5], r[6]) for r in rows]


def sent_messages(db: Database, message_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Message-ID -> (list, address) for the ones among these that we recorded sending."""
    wanted = sorted(set(message_ids))
    found: dict[str, tuple[str, str]] = {}
    with db.read() as conn:
        for start in range(0, len(wanted), 500):  # a bounded number of parameters per query
            chunk = wanted[start : start + 500]
            query = select(_d.c.message_id, _d.c.list, _d.c.email).where(_d.c.message_id.in_(chunk))
            found.update({mid: (name, email) for mid, name, email in conn.execute(query)})
    return found


def message_ids_by_key(db: Database, keys: Iterable[str]) -> dict[str, str]:
    """Delivery key (mail/verp.py: hex of the Message-ID's HMAC start) -> Message-ID we sent."""
    wanted = sorted({key.lower() for key in keys if key.isalnum()})
    found: dict[str, str] = {}
    with db.read() as conn:
        for start in range(0, len(wanted), 100):
            chunk = [f".{key}" for key in wanted[start : start + 100]]
            matches = or_(*(_d.c.message_id.contains(mark, autoescape=True) for mark in chunk))
            for mid in conn.execute(select(_d.c.message_id).distinct().where(matches)).scalars():
                key = next(mark[1:] for mark in chunk if mark in mid)
                found.setdefault(key, mid)
    return found


def delivered_issues(db: Database, list_name: str, channel: str, prefix: str) -> dict[str, int]:
    """Issues of a list whose id starts with `prefix` (a week or day: 2024-W11 finds 2024-W11-extra
    too), with how many readers each was delivered to; read by a range of the primary key."""
    query = (
        select(_d.c.issue, func.count())
        .where(
            _d.c.issue >= prefix,
            _d.c.issue < prefix + "\uffff",
            _d.c.list == list_name,
            _d.c.channel == channel,
            _d.c.status == DeliveryStatus.DELIVERED.value,
        )
        .group_by(_d.c.issue)
    )
    with db.read() as conn:
        return {str(issue): int(count) for issue, count in conn.execute(query)}
