"""`newsletter papers`: fetch papers from a source and rank them for a keyword list."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import click

from ..files import atomic_write_text
from ..ranking.feedback import DISLIKE_SHARE, Taste
from ..ranking.feedbackstore import FeedbackStore
from ..ranking.selection import Ranker, ScoredPaper
from ..render.text import cut_abstract
from ..render.why import why_picked
from ..settings import SelectionSettings
from ..sources import PaperLoad, load_papers
from ..sources.paper import Paper
from ..text import split_keywords
from .app import AppContext, pass_app
from .options import issue_date_option, parse_date


@click.group()
def papers() -> None:
    """Fetch papers from Hugging Face or arXiv, and see how they rank for given keywords.

    Example: newsletter papers rank --papers examples/ --keywords "diffusion models"
    """


def load_for_command(app: AppContext, given: tuple[Path, ...]) -> PaperLoad:
    """Use --papers if given, else the configured paths; warn about skipped records on stderr."""
    settings = app.settings
    paths = list(given) or [settings.path(p) for p in settings.papers]
    loaded = load_papers(paths)
    for problem in loaded.problems:
        click.echo(f"Warning: {problem}", err=True)
    return loaded


@papers.command("rank")
@click.option(
    "--papers",
    "paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Paper file or folder (repeatable; default: 'papers' in the config).",
)
@click.option(
    "--keywords",
    default="",
    help='Interests separated by ";", "," or a line break, e.g. "diffusion; state space models".',
)
@issue_date_option
@click.option("--window-days", type=click.IntRange(min=1), help="Days covered, ending on the issue date.")
@click.option("--top", type=click.IntRange(min=1), help="How many papers to show (default: selection.top_n).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, best first.")
@click.option("--explain", is_flag=True, help="Show matched keywords and each part of the score.")
@click.option(
    "--like", "liked", multiple=True, help="A paper id to rank as if the reader liked it (repeatable)."
)
@click.option("--dislike", "disliked", multiple=True, help="A paper id the reader disliked (repeatable).")
@pass_app
def rank(
    app: AppContext,
    *,
    paths: tuple[Path, ...],
    keywords: str,
    issue_date: date | None,
    window_days: int | None,
    top: int | None,
    as_json: bool,
    explain: bool,
    liked: tuple[str, ...],
    disliked: tuple[str, ...],
) -> None:
    """Rank papers for a keyword list the way a subscriber's digest would.

    Example: newsletter papers rank --papers examples/ --keywords "diffusion; music" --explain
    """
    loaded = load_for_command(app, paths)
    selection = app.settings.selection
    if window_days is not None:
        selection = selection.model_copy(update={"window_days": window_days})
    day = issue_date or app.settings.issue_date or date.today()
    ranker = Ranker(loaded.papers, day, selection)
    taste = taste_from_ids(app, ranker, loaded.papers, liked, disliked) if (liked or disliked) else None
    ranked = ranker.rank(split_keywords(keywords), top=top or selection.top_n, taste=taste)
    if as_json:
        click.echo(json.dumps([scored_to_dict(s, explain) for s in ranked], indent=2, ensure_ascii=False))
        return
    if not ranked:
        click.echo(f"No papers match in the {selection.window_days} days up to {day.isoformat()}.", err=True)
    for place, scored in enumerate(ranked, start=1):
        click.echo(describe(place, scored, explain, selection))


def taste_from_ids(
    app: AppContext,
    ranker: Ranker,
    loaded: Sequence[Paper],
    liked: tuple[str, ...],
    disliked: tuple[str, ...],
) -> Taste:
    """--like/--dislike as a reader's feedback: ids from --papers, or papers a past issue carried."""
    if app.settings.selection.semantic_weight <= 0:
        raise click.UsageError("--like and --dislike compare meaning: they need semantic_weight > 0")
    by_id = {p.id: p for p in loaded}
    store = FeedbackStore.open(app.settings) if FeedbackStore.exists(app.settings) else None

    words: dict[str, tuple[str, ...]] = {}

    def vector(paper_id: str) -> tuple[str, Any]:
        found = ranker.vector_of(paper_id)
        if found is None and paper_id in by_id:
            found = ranker.embed_papers([by_id[paper_id]])[0]
        if found is not None and paper_id in by_id:
            words[paper_id] = ranker.telling_terms([by_id[paper_id]])[0]
        if found is None and store is not None:
            remembered = store.paper(paper_id)
            if remembered:
                found, words[paper_id] = remembered.vector, remembered.terms
        if found is None:
            raise click.BadParameter(
                f"no paper with id {paper_id!r} in --papers or in past issues"
                f" ({app.settings.places.database().shown})",
                param_hint="--like/--dislike",
            )
        return paper_id, found

    return Taste.of([vector(i) for i in liked], [vector(i) for i in disliked], words)


def scored_to_dict(scored: ScoredPaper, explain: bool) -> dict[str, Any]:
    """The JSON shape of DESIGN.md: id, title, score, published, plus matched and url."""
    paper = scored.paper
    item: dict[str, Any] = {
        "id": paper.id,
        "title": paper.title,
        "score": round(scored.score, 6),
        "published": paper.published.isoformat(),
        "matched": scored.matched,
        "url": paper.url,
        "upvotes": paper.upvotes,
        "filler": scored.filler,  # not a match: one of the week's popular papers (selection.filler)
    }
    if explain:
        item["parts"] = {k: round(v, 6) for k, v in scored.parts.items()}
    return item


def describe(place: int, scored: ScoredPaper, explain: bool, selection: SelectionSettings) -> str:
    """One line per paper; with --explain, why it was picked and how its score adds up."""
    paper = scored.paper
    line = f"{place:>2}. {scored.score:6.3f}  {paper.published.date().isoformat()}  {paper.title}"
    if scored.filler:
        line += "  (popular this week, not a match)"
    if not explain:
        return line
    every = scored.parts
    related = scored.related
    # The card's teaser, so the sentence quoted is the one the email quotes.
    teaser = cut_abstract(paper.abstract)[0]
    why = why_picked(
        paper,
        scored.matched,
        teaser,
        liked=scored.liked,
        feedback=scored.feedback,
        related=related,
        closeness=scored.closest_sentence,
    )
    total = " + ".join(f"{k} {v:.3f}" for k, v in every.items() if ": " not in k)
    lines = [line, f"      why: {why.reason}"]
    if why.sentence:
        lines.append(f"      {why.label.lower()}: \u201c{why.sentence}\u201d")
    lines.append(f"      score {scored.score:.3f} = {total}")
    keywords = [(k[9:], v) for k, v in every.items() if k.startswith("keyword: ") and v > 0]
    width = max((len(k) for k, _ in keywords), default=0)
    for keyword, value in keywords:
        lines.append(
            f"      {keyword:<{width}}  {value:.3f}" + _split(every, keyword, selection, keyword in related)
        )
    if "feedback" in every:
        like, dislike = every["feedback: like"], every["feedback: dislike"]
        lines.append(
            f"      feedback {every['feedback']:+.3f} = {selection.feedback_weight:g}"
            f" x (close to a paper you liked {like:.2f}"
            f" - {DISLIKE_SHARE:g} x close to one you disliked {dislike:.2f})"
        )
    return "\n".join(lines)


def _split(parts: dict[str, float], keyword: str, selection: SelectionSettings, meaning_only: bool) -> str:
    """' = 0.7 x words 0.91 + 0.3 x meaning 0.40' when the score fuses both, else nothing."""
    if f"meaning: {keyword}" not in parts:
        return ""
    share = selection.semantic_weight
    found = (
        f" = {1 - share:g} x words {parts[f'words: {keyword}']:.2f}"
        f" + {share:g} x meaning {parts[f'meaning: {keyword}']:.2f}"
    )
    return found + ("  (by meaning only: none of its words is in the paper)" if meaning_only else "")


@papers.command("fetch")
@click.option("--source", type=click.Choice(["hf", "arxiv"]), required=True, help="Where to fetch from.")
@click.option(
    "--date",
    "day",
    callback=parse_date,
    help="One day YYYY-MM-DD or 'today' (HF daily papers; arXiv submission date).",
)
@click.option("--week", help="An ISO week such as 2024-W11.")
@click.option("--query", default="", help='arXiv API search_query, e.g. "cat:cs.LG AND abs:diffusion".')
@click.option("--base-url", help="Mirror or proxy to use instead of huggingface.co / export.arxiv.org.")
@click.option(
    "--max-results",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="arXiv: stop after this many results.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    help="Seconds to wait for each network read (default: [fetch] timeout, 30).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write JSON Lines here (default: standard output).",
)
@pass_app
def fetch(
    app: AppContext,
    *,
    source: str,
    day: date | None,
    week: str | None,
    query: str,
    base_url: str | None,
    max_results: int,
    timeout: float | None,
    output: Path | None,
) -> None:
    """Download papers and save them as JSON Lines that --papers can read.

    Answers are capped in size and time by the [fetch] settings (2 MiB, 30 s per answer, 600 s
    in all by default), and redirects are followed only within the same site.

    Example: newsletter papers fetch --source hf --date 2024-03-14 -o papers/2024-03-14.jsonl
    """
    from ..sources.fetch import (
        ARXIV_BASE,
        ARXIV_SPACING,
        HF_BASE,
        fetch_arxiv,
        fetch_hf,
        parse_week,
    )
    from ..sources.http import FetchPolicy
    from ..sources.jsonl import paper_to_jsonl

    if day is not None and week is not None:
        raise click.UsageError("give --date or --week, not both")
    if source == "hf" and day is None and week is None:
        raise click.UsageError("--source hf needs --date YYYY-MM-DD or --week YYYY-Www")
    limits = app.settings.fetch
    per_read = {"timeout": timeout} if timeout is not None else {}
    if source == "hf":
        result = fetch_hf(
            day=day,
            week=week,
            base_url=base_url or HF_BASE,
            policy=FetchPolicy.from_settings(limits, **per_read),
        )
    else:
        first, last = parse_week(week) if week else ((day, day) if day else (None, None))
        result = fetch_arxiv(
            query=query,
            first=first,
            last=last,
            base_url=base_url or ARXIV_BASE,
            max_results=max_results,
            policy=FetchPolicy.from_settings(limits, spacing=ARXIV_SPACING, **per_read),
        )
    for problem in result.problems:
        click.echo(f"Warning: {problem}", err=True)
    lines = "".join(paper_to_jsonl(p) + "\n" for p in result.papers)
    if output is None:
        click.echo(lines, nl=False)
    else:
        # A cron job reading the file never sees half of it, and a failed fetch keeps the old one.
        atomic_write_text(output, lines)
    click.echo(
        f"Fetched {len(result.papers)} papers in {result.requests} requests"
        + (f" into {output}" if output else ""),
        err=True,
    )
