"""What a template designer checks before sending: size against Gmail's clip, subject, odd links."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from html.parser import HTMLParser

GMAIL_CLIP_BYTES = 102 * 1024  # Gmail hides everything after this much HTML behind "[Message clipped]"
INBOX_SUBJECT_CHARS = 70  # about what a desktop inbox row shows before it cuts the subject
_LINK_ATTRIBUTES = frozenset({"href", "src", "action", "background"})
_WEB = re.compile(r"^https?://", re.IGNORECASE)


@dataclass(frozen=True)
class OddLink:
    """A link a mail client may not open as the designer meant: not an absolute http(s) URL."""

    tag: str
    attribute: str
    value: str


@dataclass(frozen=True)
class MessageFacts:
    """The numbers and warnings shown beside the preview."""

    html_bytes: int
    clip_bytes: int
    clipped: bool
    message_bytes: int
    papers: int
    subject: str
    inbox_subject: str
    subject_cut: bool
    odd_links: tuple[OddLink, ...]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class _LinkCollector(HTMLParser):
    """Every URL-carrying attribute in the HTML part, in document order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[OddLink] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in _LINK_ATTRIBUTES and not _WEB.match((value or "").strip()):
                self.links.append(OddLink(tag, name, (value or "")[:300]))


def odd_links(html: str) -> tuple[OddLink, ...]:
    """Links and images that are not absolute http(s): mailto, relative paths, javascript:, empty."""
    collector = _LinkCollector()
    collector.feed(html)
    collector.close()
    return tuple(collector.links)


def inbox_subject(subject: str, limit: int = INBOX_SUBJECT_CHARS) -> str:
    """The subject cut the way an inbox list cuts it: at the limit, with an ellipsis."""
    return subject if len(subject) <= limit else subject[: limit - 1].rstrip() + "\u2026"


def message_facts(subject: str, html: str, message: bytes, papers: int) -> MessageFacts:
    """All the facts for one rendered message."""
    size = len(html.encode("utf-8"))
    shown = inbox_subject(subject)
    return MessageFacts(
        html_bytes=size,
        clip_bytes=GMAIL_CLIP_BYTES,
        clipped=size > GMAIL_CLIP_BYTES,
        message_bytes=len(message),
        papers=papers,
        subject=subject,
        inbox_subject=shown,
        subject_cut=shown != subject,
        odd_links=odd_links(html),
    )
