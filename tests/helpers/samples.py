"""Fixed inputs for the render, golden and browser tests: settings, an issue, papers, a reader."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path

from newsletter.models import IssueInfo, Subscriber
from newsletter.render.digest import DigestRenderer, RenderedDigest
from newsletter.settings import Settings
from newsletter.sources.paper import Paper

ISSUE_DATE = date(2024, 3, 14)
UNSUBSCRIBE = "https://digest.example.org/unsubscribe?t=AQunsubscribe-token_abc"
MANAGE = "https://digest.example.org/manage?t=AQmanage-token_abc"
ARCHIVE = "https://digest.example.org/archive/ml/2024-W11"

ABSTRACT = (
    "Diffusion models have become the standard tool for image synthesis, yet sampling remains slow. "
    "We propose a distillation method that reduces the number of steps from fifty to four, e.g. on "
    "ImageNet and LAION. Our approach trains a student with a consistency objective and a small "
    "adversarial loss. Experiments show state-of-the-art FID at four steps, and a user study confirms "
    "that quality is preserved. We further show that the method applies to text-to-image models and "
    "to video generation without changes. Code and weights are released for research use."
)


@dataclass
class Pick:
    """Stands in for selection.ScoredPaper: what rendering reads from a pick."""

    paper: Paper
    score: float = 1.0
    matched: list[str] = field(default_factory=list)


def make_settings(tmp_path: Path | None = None, **overrides: object) -> Settings:
    """Settings with a fixed sender, resolved against an empty folder so no user theme applies."""
    values: dict[str, object] = {
        "title": "ML Paper Digest",
        "sender": {
            "name": "ML Reading Group",
            "address": "digest@example.org",
            "postal_address": "1 Example Street, Example City",
        },
        "config_dir": tmp_path or Path("/nonexistent-config-dir"),
    }
    values.update(overrides)
    return Settings.model_validate(values)


def make_issue(archive_url: str | None = ARCHIVE) -> IssueInfo:
    return IssueInfo(
        issue_id="2024-W11",
        issue_date=ISSUE_DATE,
        list_name="ml",
        title="ML Paper Digest",
        window_start=date(2024, 3, 8),
        archive_url=archive_url,
    )


def make_paper(index: int, **changes: object) -> Paper:
    """Paper `index` of a fixed set covering every optional field being present or absent."""
    authors = [
        ["Ada Lovelace"],
        ["Ada Lovelace", "Alan Turing"],
        ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra"],
        [],
    ][index % 4]
    values: dict[str, object] = {
        "id": f"2403.{index + 1:05d}",
        "title": [
            "Four-Step Diffusion Models by Consistency Distillation",
            'Scaling Laws for Large Language Models & Their "Emergent" Abilities',
            "State-Space Models Meet Music Generation",
            "A Survey of Reinforcement Learning from Human Feedback",
        ][index % 4]
        + ("" if index < 4 else f" (Part {index // 4 + 1})"),
        "abstract": ABSTRACT,
        "authors": authors,
        "published": datetime(2024, 3, 14 - index % 7, 8, 0, tzinfo=UTC),
        "url": f"https://huggingface.co/papers/2403.{index + 1:05d}",
        "pdf_url": f"https://arxiv.org/pdf/2403.{index + 1:05d}" if index % 2 == 0 else None,
        "code_url": f"https://github.com/example/project-{index + 1}" if index % 3 == 0 else None,
        "upvotes": [42, None, 1, 7][index % 4],
        "source": "test",
    }
    values.update(changes)
    return Paper.model_validate(values)


def alice() -> Subscriber:
    return Subscriber(
        email="alice@example.org", name="Alice Moreau", keywords=["diffusion models", "music generation"]
    )


def alice_picks(count: int = 4) -> list[Pick]:
    """Alice's picks with the keywords each paper matched, as the ranker would report them."""
    matched = {0: ["diffusion models"], 2: ["music generation"]}
    return [Pick(make_paper(i), 1.0 - i / 100, matched.get(i % 4, [])) for i in range(count)]


def render_alice(tmp_path: Path | None = None, count: int = 4) -> RenderedDigest:
    renderer = DigestRenderer(make_settings(tmp_path), make_issue())
    return renderer.render(alice(), alice_picks(count), UNSUBSCRIBE, MANAGE)


class Markup(HTMLParser):
    """Collects the tags, attributes, links and text of an HTML document."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.hrefs: list[str] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)
        self.hrefs.extend(value for name, value in attrs if name == "href" and value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


class Shown(HTMLParser):
    """What a browser makes of a page: its tags and attributes, its text with runs of spaces as one.

    Two pages alike here look alike, however their characters are written (references or
    UTF-8) and wherever a tag holds a line break: what a 7bit HTML part changes, and no more.
    """

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.seen: list[object] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        self.seen.append(("/", tag))

    def handle_data(self, data: str) -> None:
        self.seen.append(" ".join(data.split()))


def on_screen(page: str) -> list[object]:
    """A page as `Shown` sees it, to compare two pages."""
    return Shown(page).seen


def text_urls(text: str) -> list[str]:
    """The links of a plain-text part."""
    return re.findall(r"https?://\S+", text)
