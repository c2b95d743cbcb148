"""Build exactly what one subscriber would get for an issue, without sending or recording anything."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from ..delivery.channel import channel_for
from ..errors import NewsletterError
from ..files import atomic_write_bytes, atomic_write_text
from ..mail.compose import ComposedMessage
from ..models import IssueInfo, Subscriber
from ..render.digest import RenderedDigest
from ..safety.private import private_dir
from ..settings import Settings
from ..sources.paper import Paper
from ..store.deliveries import DeliveryLedger
from ..store.opening import existing_database
from ..subscribers import open_list
from .build import BuiltDigest, DigestBuilder
from .issue import LinkSigner, PreparedIssue, prepare_issue

# Previews without --subscriber: a reader with no keywords gets the week's top papers.
ANONYMOUS = Subscriber(email="reader@example.invalid", name="", keywords=[])
ANONYMOUS_NAME = "preview"


@dataclass(frozen=True)
class PreviewResult:
    """One subscriber's digest for one issue: the rendered parts and the full message bytes."""

    issue: IssueInfo
    subscriber: Subscriber
    digest: RenderedDigest
    message: bytes
    composed: ComposedMessage
    unsubscribe_url: str
    paper_ids: tuple[str, ...]
    problems: tuple[str, ...] = ()
    papers: tuple[Paper, ...] = ()  # the picked papers themselves, for pages that list them

    @classmethod
    def of(
        cls,
        issue: IssueInfo,
        built: BuiltDigest,
        paper_ids: tuple[str, ...] | None = None,
        problems: tuple[str, ...] = (),
    ) -> PreviewResult:
        """The preview of one built digest; `paper_ids` overrides when the ledger says what was sent."""
        return cls(
            issue=issue,
            subscriber=built.subscriber,
            digest=built.digest,
            message=built.message.data,
            composed=built.message,
            unsubscribe_url=built.unsubscribe_url,
            paper_ids=built.paper_ids if paper_ids is None else paper_ids,
            problems=problems,
            papers=tuple(pick.paper for pick in built.picks),
        )

    @property
    def file_stem(self) -> str:
        """A file name that says whose preview it is and is safe on every filesystem."""
        if self.subscriber is ANONYMOUS:
            return ANONYMOUS_NAME
        return (
            re.sub(r"[^A-Za-z0-9._-]+", "_", self.subscriber.email.strip().lower()).strip("._")
            or ANONYMOUS_NAME
        )


def find_subscriber(settings: Settings, list_name: str, email: str | None) -> Subscriber:
    """The subscriber to preview, or a clear error naming the list file searched."""
    if email is None:
        return ANONYMOUS
    path = settings.list_path(list_name)
    store = open_list(settings.places, list_name, look_only=True)
    if not store.exists():
        raise NewsletterError(
            f"subscriber list '{list_name}' not found",
            where=str(path),
            fix="pass --list NAME of a file in the subscribers folder",
        )
    subscriber = store.get(email)
    if subscriber is None:
        raise NewsletterError(
            f"no subscriber {email} in list '{list_name}'",
            where=str(path),
            fix="check the address with `newsletter subscribers list`, or preview without --subscriber",
        )
    return subscriber


def _already_sent(settings: Settings, issue: IssueInfo, subscriber: Subscriber) -> frozenset[str]:
    """Papers this reader got in earlier issues: send leaves them out, so the preview does too."""
    if subscriber is ANONYMOUS:
        return frozenset()
    db = existing_database(settings.places.database())  # a preview creates no database
    if db is None:
        return frozenset()
    ledger = DeliveryLedger(db, issue.issue_id, issue.list_name, channel_for(settings.smtp))
    return ledger.papers_received_by(subscriber.key)


def build_preview(
    settings: Settings,
    list_name: str | None,
    email: str | None,
    issue_date: date | None,
    papers_paths: Sequence[Path] = (),
    *,
    prepared: PreparedIssue | None = None,
    signer: LinkSigner | None = None,
    to_address: str | None = None,
) -> PreviewResult:
    """One subscriber's digest built by the same DigestBuilder as `send`, touching no network.

    Local links stand in when no secret or base URL is set; a reader with nothing new still
    gets the (empty) digest shown, which `send` mails only with send_empty_digests = true.
    `prepared` reuses an issue already loaded; `signer` and `to_address` make the message the
    test copy `send --to` mails.
    """
    issue = prepared or prepare_issue(
        settings, list_name=list_name, issue_date=issue_date, papers=papers_paths
    )
    subscriber = find_subscriber(settings, issue.info.list_name, email)
    builder = DigestBuilder(settings, issue, signer or LinkSigner.for_run(settings, local_only=True))
    already_sent = _already_sent(settings, issue.info, subscriber)
    built = builder.build(subscriber, already_sent, to_address=to_address, even_if_empty=True)
    assert built is not None  # even_if_empty
    return PreviewResult.of(issue.info, built, problems=issue.problems)


def write_preview(result: PreviewResult, out_dir: Path) -> list[Path]:
    """Write <stem>.html, .txt and .eml into out_dir; return the paths written."""
    try:
        private_dir(out_dir)  # the names and the files hold a reader's address and topics
        # Not with_suffix: the stem of alice@example.org already has a dot.
        paths = [out_dir / f"{result.file_stem}{ext}" for ext in (".html", ".txt", ".eml")]
        new = [not path.exists() for path in paths]  # files that exist keep their owner's mode
        atomic_write_text(paths[0], result.digest.html, private=new[0])
        atomic_write_text(paths[1], result.digest.text, private=new[1])
        atomic_write_bytes(paths[2], result.message, private=new[2])
    except OSError as exc:
        raise NewsletterError(
            f"cannot write the preview ({exc.strerror})",
            where=str(out_dir),
            fix="pass --out with a writable folder",
        ) from exc
    return paths
