#!/usr/bin/env python3
"""Build the shipped sample papers (``examples/daily_papers_2024-03-DD.json``) from the seed page.

The seed (``shared/seed/daily-papers-page.txt`` beside the repository) is a scrape of a
"daily papers" listing: a few header lines, the date line ``Mar 14``, then the papers as
alternating non-blank lines, title then abstract.  This script turns those papers into files
shaped exactly like the Hugging Face ``daily_papers`` API response (one JSON list per day), so
the ``sources`` stage, the ranking and the previews can run on realistic data offline.

What is copied and what is made up (see ``examples/README.md``):

* verbatim from the seed: every title and abstract (only the line end is stripped);
* derived from the abstract: ``paper.githubRepo``, the first GitHub repository it names;
* synthetic, deterministic: ``paper.id`` (``"sample-"`` + 10 hex chars of the title's SHA-256,
  deliberately not an arXiv id), ``paper.upvotes`` (0..120 from the same hash), and the dates
  (paper ``i`` in seed order goes to 2024-03-(14 - i % 7)).  The seed has no authors, so
  ``authors`` is empty.

Usage::

    python tools/build_sample_data.py [SEED] [--out DIR]

Standard library only; the output is byte-for-byte the same on every run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SEED = REPO_ROOT.parent / "shared/seed/daily-papers-page.txt"
DEFAULT_OUT = REPO_ROOT / "examples"

DATE_LINE = "Mar 14"
LAST_DAY = dt.date(2024, 3, 14)
DAYS = 7
PAPER_PUBLISHED_TIME = "00:00:00.000Z"  # paper.publishedAt: the sample "submission" time
FEATURED_TIME = "08:00:00.000Z"  # top-level publishedAt: when the paper was featured that day
MAX_UPVOTES = 120
FILE_PATTERN = "daily_papers_{date}.json"

# A GitHub repository as written in an abstract, with or without the scheme
# ("https://github.com/owner/repo.", "github.com/owner/repo/").  Only owner/repo is kept.
GITHUB_REPO = re.compile(r"(?<![\w.-])(?:https?://)?(?:www\.)?github\.com/([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)")


class SeedError(Exception):
    """The seed file is missing or does not have the expected layout."""


class SeedPaper(NamedTuple):
    """One paper as it appears in the seed: title and abstract, verbatim."""

    title: str
    abstract: str


def parse_seed(text: str) -> list[SeedPaper]:
    """Return the papers listed after the ``Mar 14`` line, in seed order.

    Raises SeedError if the date line is missing, if no papers follow it, if the non-blank
    lines after it are not an even number (title/abstract pairs), or if a title repeats.
    """
    # Split on "\n" only (str.splitlines would also split on \f, \x1c, U+2028, ...).
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    try:
        start = lines.index(DATE_LINE)
    except ValueError:
        raise SeedError(f"no line reading exactly {DATE_LINE!r} in the seed") from None
    body = [line for line in lines[start + 1 :] if line.strip()]
    if not body:
        raise SeedError(f"no paper lines after {DATE_LINE!r}")
    if len(body) % 2:
        raise SeedError(
            f"expected title/abstract pairs after {DATE_LINE!r}, but found {len(body)} "
            f"non-blank lines (an odd number); last line starts {body[-1][:60]!r}"
        )
    papers = [SeedPaper(body[i], body[i + 1]) for i in range(0, len(body), 2)]
    seen: set[str] = set()
    for paper in papers:
        if paper.title in seen:
            raise SeedError(f"title appears twice in the seed: {paper.title!r}")
        seen.add(paper.title)
    return papers


def title_digest(title: str) -> str:
    """Hex SHA-256 of the UTF-8 title: the source of the sample id and upvotes."""
    return hashlib.sha256(title.encode("utf-8")).hexdigest()


def sample_id(title: str) -> str:
    """A stable id that cannot be mistaken for an arXiv id."""
    return "sample-" + title_digest(title)[:10]


def sample_upvotes(title: str) -> int:
    """Synthetic upvote count in 0..MAX_UPVOTES, fixed by the title."""
    return int(title_digest(title)[10:18], 16) % (MAX_UPVOTES + 1)


def github_repo(abstract: str) -> str | None:
    """The first GitHub repository named in the abstract, as ``https://github.com/owner/repo``."""
    match = GITHUB_REPO.search(abstract)
    if match is None:
        return None
    path = match.group(1).rstrip(".")
    return f"https://github.com/{path}"


def day_for(index: int) -> dt.date:
    """Paper ``index`` (0-based, seed order) goes to 2024-03-14 minus ``index % 7`` days."""
    return LAST_DAY - dt.timedelta(days=index % DAYS)


def to_record(paper: SeedPaper, day: dt.date) -> dict[str, Any]:
    """One record shaped like an item of the HF ``daily_papers`` API response."""
    inner: dict[str, Any] = {
        "id": sample_id(paper.title),
        "title": paper.title,
        "summary": paper.abstract,
        "authors": [],
        "publishedAt": f"{day.isoformat()}T{PAPER_PUBLISHED_TIME}",
        "upvotes": sample_upvotes(paper.title),
        "ai_keywords": [],
    }
    repo = github_repo(paper.abstract)
    if repo is not None:
        inner["githubRepo"] = repo
    return {
        "paper": inner,
        "publishedAt": f"{day.isoformat()}T{FEATURED_TIME}",
        "title": paper.title,
        "summary": paper.abstract,
        "numComments": 0,
        "thumbnail": "",
    }


def build_days(papers: Sequence[SeedPaper]) -> dict[dt.date, list[dict[str, Any]]]:
    """Group the records by day, oldest day first, seed order within a day."""
    days: dict[dt.date, list[dict[str, Any]]] = {
        LAST_DAY - dt.timedelta(days=n): [] for n in reversed(range(DAYS))
    }
    for index, paper in enumerate(papers):
        day = day_for(index)
        days[day].append(to_record(paper, day))
    return days


def render(records: list[dict[str, Any]]) -> str:
    """The exact text written to a day file."""
    return json.dumps(records, indent=2, ensure_ascii=False) + "\n"


def write_days(days: dict[dt.date, list[dict[str, Any]]], out_dir: Path) -> list[Path]:
    """Write one file per day into ``out_dir`` (created if needed); return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for day, records in days.items():
        path = out_dir / FILE_PATTERN.format(date=day.isoformat())
        path.write_text(render(records), encoding="utf-8", newline="\n")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        description="Build examples/daily_papers_2024-03-DD.json from the daily-papers seed page."
    )
    parser.add_argument(
        "seed",
        nargs="?",
        type=Path,
        default=DEFAULT_SEED,
        help=f"seed page to read (default: {DEFAULT_SEED})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"directory to write the JSON files into (default: {DEFAULT_OUT})",
    )
    args = parser.parse_args(argv)

    try:
        text = args.seed.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot read seed {args.seed}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        papers = parse_seed(text)
    except SeedError as exc:
        print(f"error: {args.seed}: {exc}", file=sys.stderr)
        return 1

    days = build_days(papers)
    for path, records in zip(write_days(days, args.out), days.values(), strict=False):
        print(f"{path}: {len(records)} papers")
    print(f"{len(papers)} papers over {len(days)} days")
    return 0


if __name__ == "__main__":
    sys.exit(main())
