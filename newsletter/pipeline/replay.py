"""Rebuild the message one reader was sent in a past issue, from what the ledger recorded.

Papers, their order, the reader's name and keywords, the matched keywords, the templates and
the Message-ID are the recorded ones, so the operator sees what went out, not what would today.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import LedgerError, NewsletterError
from ..files import atomic_write_text
from ..mail.compose import MessageComposer
from ..models import Subscriber
from ..render.digest import DigestRenderer, template_dirs
from ..settings import Settings
from ..sources.paper import Paper
from ..store import Database, Place, open_database
from ..store.deliveries import DeliveryLedger
from ..store.history import DeliveryRecord, deliveries_to
from ..store.opening import existing_database
from ..subscribers import open_list
from .build import finish_digest
from .issue import LinkSigner, check_issue_id, normalised_issue_id
from .previewfiles import PreviewResult
from .snapshot import IssueSnapshot, load_snapshot, read_templates, templates_hash


@dataclass(frozen=True)
class RecordedPick:
    """A paper as it was picked for the reader, with the keywords it matched then."""

    paper: Paper
    matched: list[str] = field(default_factory=list)
    liked: float = 0.0
    feedback: float = 0.0
    related: list[str] = field(default_factory=list)
    quoted: str = ""  # the sentence the card quoted by meaning when sent; never worked out again
    filler: bool = False  # one of the week's popular papers filling the digest, not a match


@dataclass(frozen=True)
class ReplayedIssue:
    """A rebuilt past message, what the ledger said about it, and what may differ from the original."""

    result: PreviewResult
    record: DeliveryRecord
    templates_changed: bool
    notes: tuple[str, ...]


def _record(place: Place, list_name: str, issue_id: str, email: str | None) -> DeliveryRecord:
    if not email:
        raise NewsletterError(
            f"issue {issue_id} can only be shown for a reader it was sent to",
            where=place.shown,
            fix="pick a subscriber (--subscriber EMAIL), or the current issue for a reader with no keywords",
        )
    db = existing_database(place)  # a preview creates no database
    records = [] if db is None else deliveries_to(db, issue_id, list_name, email)
    if not records:
        raise LedgerError(
            f"the ledger has no record of issue {issue_id} for {email} in list '{list_name}'",
            where=place.shown,
            fix="check the issue id and address with `newsletter report`, or drop --issue for this week's",
        )
    return records[0]


def _snapshot(db: Database, record: DeliveryRecord, list_name: str, issue_id: str) -> IssueSnapshot:
    blob = DeliveryLedger(db, issue_id, list_name, record.channel).snapshot()
    if blob is None:
        raise LedgerError(
            f"issue {issue_id} was sent before the ledger kept what messages are built from",
            where=db.place.shown,
            fix="only issues sent with this version or later can be rebuilt",
        )
    return load_snapshot(blob)


def _reader(settings: Settings, list_name: str, record: DeliveryRecord) -> tuple[Subscriber, dict[str, Any]]:
    """The reader as recorded with the delivery (name, keywords, matched), else as the list has them now."""
    if record.reader:
        data: dict[str, Any] = json.loads(record.reader)
        subscriber = Subscriber(
            email=record.email, name=data.get("name", ""), keywords=data.get("keywords", [])
        )
        return subscriber, data
    now = open_list(settings.places, list_name, look_only=True).get(record.email)
    return now or Subscriber(email=record.email), {}


def _sent_at(record: DeliveryRecord) -> datetime | None:
    """The Date header as near as the ledger knows it: when the delivery was last recorded."""
    try:
        return datetime.fromisoformat(record.updated_at)
    except ValueError:
        return None


def replay_delivery(
    settings: Settings,
    list_name: str | None,
    issue_id: str,
    email: str | None,
    *,
    signer: LinkSigner | None = None,
    to: str | None = None,
) -> ReplayedIssue:
    """The message `email` got in `issue_id`, rebuilt from the ledger and the issue's snapshot."""
    list_name = list_name or settings.default_list
    issue_id = check_issue_id(normalised_issue_id(issue_id))
    place = settings.places.database()
    record = _record(place, list_name, issue_id, email)
    db = open_database(place)  # there is one: it holds the record
    snapshot = _snapshot(db, record, list_name, issue_id)
    missing = [pid for pid in record.papers if pid not in snapshot.papers]
    if missing:
        raise LedgerError(
            f"the snapshot of issue {issue_id} lacks {len(missing)} of the papers sent ({missing[0]}, ...)",
            where=db.place.shown,
            fix="the ledger may be damaged; restore it from a backup",
        )
    subscriber, recorded = _reader(settings, list_name, record)
    matched: dict[str, list[str]] = recorded.get("matched", {})
    taste: dict[str, list[float]] = recorded.get("taste", {})
    related: dict[str, list[str]] = recorded.get("related", {})
    quoted = recorded.get("quoted")
    if not isinstance(quoted, dict):
        quoted = {}
    filler = set(recorded.get("filler") or ())
    picks = []
    for pid in record.papers:
        liked, weight = (float(value) for value in taste.get(pid, (0, 0)))
        picks.append(
            RecordedPick(
                snapshot.papers[pid],
                list(matched.get(pid, [])),
                liked,
                weight,
                list(related.get(pid, [])),
                str(quoted.get(pid, "")),
                pid in filler,
            )
        )
    now_hash = templates_hash(read_templates(template_dirs(settings)))
    changed = now_hash != snapshot.templates_hash
    signer = signer or LinkSigner.for_run(settings, local_only=True)
    with tempfile.TemporaryDirectory(prefix="newsletter-replay-") as folder:
        for name, source in snapshot.templates.items():
            atomic_write_text(Path(folder) / name, source)
        then = settings.model_copy(
            update={
                "templates_dir": Path(folder),
                "sender": settings.sender.model_copy(update=snapshot.sender),
            }
        )
        renderer = DigestRenderer(then, snapshot.info)
        composer = MessageComposer(then, snapshot.info, signer.secret, signer.tokens)
        built = finish_digest(
            renderer, composer, signer, list_name, subscriber, picks, to_address=to, now=_sent_at(record)
        )
    notes = [f"Issue {issue_id} as sent to {record.email} ({record.status}, {record.updated_at})."]
    if changed:
        notes.append(
            f"The templates changed since this issue was sent (then {snapshot.templates_hash},"
            f" now {now_hash}): shown with the templates recorded at send time."
        )
    if built.message.message_id != record.message_id and to is None:
        notes.append(f"Message-ID differs from the recorded {record.message_id}: the secret changed since.")
    result = PreviewResult.of(snapshot.info, built, paper_ids=record.papers)
    return ReplayedIssue(result, record, changed, tuple(notes))
