"""One subscriber's digest, built the one way that `send`, `preview` and the builder processes share.

rank -> sign links -> render -> compose: whatever a preview shows is what a send delivers.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from ..mail.compose import ComposedMessage, MessageComposer
from ..models import Subscriber
from ..render.digest import DigestRenderer, Pick, RenderedDigest
from ..settings import Settings
from .issue import LinkSigner, PreparedIssue

_PREPARE_ALL_UP_TO = 1_000  # papers in the window; beyond that, cards are inlined as picked


@dataclass(frozen=True)
class BuiltDigest:
    """One reader's digest of one issue: what was picked, the link it carries, its parts and bytes."""

    subscriber: Subscriber
    picks: tuple[Pick, ...]  # ScoredPaper when ranked now, the recorded picks when rebuilt
    unsubscribe_url: str
    digest: RenderedDigest
    message: ComposedMessage

    @property
    def paper_ids(self) -> tuple[str, ...]:
        """What the ledger records as sent, so later issues leave these papers out."""
        return tuple(pick.paper.id for pick in self.picks)


class DigestBuilder:
    """Builds any subscriber's digest of one issue; made once per issue, then called per reader.

    `DigestBuilder(settings, issue, signer).build(subscriber, already_sent)` returns exactly the
    message `send` delivers to that subscriber (same picks, links, HTML, text and bytes), or
    None when `send` mails them nothing: no paper left for them and `send_empty_digests` is off.
    `already_sent` is the paper ids the ledger says they received in earlier issues;
    `to_address` builds the test copy `send --to` mails. Raises `HeaderValueError` when the
    subscriber's address or name cannot go in a header. Pure: no file, ledger or network.
    """

    def __init__(self, settings: Settings, issue: PreparedIssue, signer: LinkSigner) -> None:
        self.settings = settings
        self.issue = issue
        self.signer = signer
        self.renderer = DigestRenderer(settings, issue.info)
        if len(issue.ranker.papers) <= _PREPARE_ALL_UP_TO:
            # One premailer call for every card, before builder processes fork and share it.
            self.renderer.prepare(issue.ranker.papers)
        self.composer = MessageComposer(settings, issue.info, signer.secret, signer.tokens)

    def build(
        self,
        subscriber: Subscriber,
        already_sent: Collection[str] = frozenset(),
        *,
        to_address: str | None = None,
        even_if_empty: bool = False,
    ) -> BuiltDigest | None:
        """The digest send would deliver to `subscriber`, or None if send would mail them nothing.

        `even_if_empty` builds the empty digest anyway (what `send_empty_digests = true` mails),
        for a preview that shows it.
        """
        picks = tuple(
            self.issue.ranker.rank(
                subscriber.keywords,
                top=self.settings.selection.top_n,
                exclude_ids=already_sent,
                taste=self.issue.taste(subscriber.email),
            )
        )
        if not picks and not (self.settings.send_empty_digests or even_if_empty):
            return None
        return finish_digest(
            self.renderer,
            self.composer,
            self.signer,
            self.issue.info.list_name,
            subscriber,
            picks,
            to_address=to_address,
        )


def finish_digest(
    renderer: DigestRenderer,
    composer: MessageComposer,
    signer: LinkSigner,
    list_name: str,
    subscriber: Subscriber,
    picks: Sequence[Pick],
    *,
    to_address: str | None = None,
    now: datetime | None = None,
) -> BuiltDigest:
    """sign links -> render -> compose for picks already made: `build` after ranking, and
    `preview --issue` with the picks the ledger recorded."""
    if to_address:
        # A test copy is addressed to the tester, under no one else's name, with their own link.
        subscriber = replace(subscriber, email=to_address, name="")
    links = signer.reader(list_name, subscriber.email)
    digest = renderer.render(
        subscriber, picks, links.url, links.manage_url(), feedback_url=links.feedback_url
    )
    message = composer.compose(
        subscriber,
        digest,
        links.url,
        to_address=to_address,
        now=now,
        unsubscribe_token=links.unsubscribe_token,
    )
    return BuiltDigest(subscriber, tuple(picks), links.url, digest, message)
