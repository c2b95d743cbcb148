"""Small Paper factories shared by the ranking, feedback and rendering tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from newsletter.sources.paper import Paper

ISSUE = date(2024, 3, 14)


def make_paper(
    pid: str,
    title: str,
    abstract: str = "A study of things.",
    days_ago: float = 1.0,
    upvotes: int | None = None,
    authors: list[str] | None = None,
) -> Paper:
    """A paper listed `days_ago` days before the end of ISSUE."""
    when = datetime(2024, 3, 15, tzinfo=UTC) - timedelta(days=days_ago)
    return Paper(
        id=pid,
        title=title,
        abstract=abstract,
        authors=authors or [],
        published=when,
        url=f"https://example.org/{pid}",
        upvotes=upvotes,
        source="test",
    )


# Six papers on unrelated subjects, none sharing a word with the paraphrases the tests search for.
UNRELATED = [
    (
        "rl",
        "Aligning chat assistants with reinforcement learning from human feedback",
        "We train a reward model on human preference comparisons and fine-tune the policy with PPO.",
    ),
    (
        "alloys",
        "Crystal structure prediction of metal alloys",
        "We predict stable crystal structures of binary alloys with density functional theory.",
    ),
    (
        "cells",
        "Segmenting cells in microscopy images",
        "A convolutional network segments cells in fluorescence microscopy.",
    ),
    ("sort", "Faster sorting on GPUs", "A radix sort for graphics processors."),
    (
        "tts",
        "Speech synthesis from text with neural vocoders",
        "A text-to-speech system that generates natural audio waveforms.",
    ),
    (
        "traffic",
        "Traffic forecasting for city roads",
        "Graph networks predict traffic speed on road sensors.",
    ),
]


def unrelated_papers() -> list[Paper]:
    return [make_paper(pid, title, abstract) for pid, title, abstract in UNRELATED]
