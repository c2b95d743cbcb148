"""The match floor: a card says "Matches your keywords" only for a paper that matches, and what
fills the rest of a digest is a setting (nothing, or the week's popular papers in their own section)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.papers import ISSUE, make_paper, unrelated_papers

from newsletter.cli import main
from newsletter.models import IssueInfo, Subscriber
from newsletter.ranking.selection import Ranker
from newsletter.render.digest import POPULAR_HEADING, DigestRenderer
from newsletter.render.text import cut_abstract
from newsletter.render.why import SENTENCE_MAX, why_picked
from newsletter.settings import Filler, SelectionSettings, Settings
from newsletter.sources.paper import Paper

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
INFO = IssueInfo(issue_id="2024-W11", issue_date=ISSUE, list_name="news", title="Digest", window_start=ISSUE)
ESSAYS = make_paper(
    "aes",
    "Essay scoring systems are overstable",
    "Rich linguistic features such as parts-of-speech and morphology are encoded by essay scorers.",
    upvotes=90,
)
RANKED = make_paper(
    "tabsim",
    "A siamese network for table similarity",
    "Tables are compared by a learned similarity of their rows, columns, headers and cells; ranking follows.",
    upvotes=80,
)


def matched_ids(keyword: str, papers: list[Paper], **settings: object) -> list[str]:
    ranked = Ranker(papers, ISSUE, SelectionSettings(**settings)).rank([keyword])  # type: ignore[arg-type]
    return [s.paper.id for s in ranked if s.matched]


@pytest.mark.parametrize(
    ("keyword", "passing", "semantic_weight"),
    [
        ("speech synthesis", ESSAYS, 0.3),  # 'speech' of 'parts-of-speech' is not speech synthesis
        ("speech synthesis", ESSAYS, 0.0),
        ("table ranking", RANKED, 0.0),  # both words, but ten words apart: not the phrase
    ],
)
def test_one_word_of_a_multi_word_keyword_is_no_match(
    keyword: str, passing: Paper, semantic_weight: float
) -> None:
    papers = [*unrelated_papers(), passing]
    assert passing.id not in matched_ids(keyword, papers, semantic_weight=semantic_weight)


def test_the_phrase_or_its_words_close_together_match() -> None:
    papers = [*unrelated_papers(), ESSAYS, RANKED]
    assert matched_ids("speech synthesis", papers) == ["tts"]
    assert matched_ids("table similarity", papers) == ["tabsim"]
    assert matched_ids("similarity of tables", papers) == ["tabsim"]  # 'table similarity' in other order


def test_a_word_used_in_passing_in_a_long_abstract_is_no_match() -> None:
    about = make_paper("recsys", "Sequential recommendation with attention", "We recommend items to users.")
    passing = make_paper(
        "passing",
        "Robust dialogue history representations",
        "We study dialogue models on many benchmarks and datasets with several encoders, decoders and "
        "training schedules, and ablate the history length, the prompt, the model size and the data "
        "size across three model families; the method is simple, so we offer it as a recommendation "
        "for future work on conversational question answering and related tasks.",
    )
    assert matched_ids("recommendation", [*unrelated_papers(), about, passing]) == ["recsys"]


def test_below_the_floor_a_digest_is_short_by_default() -> None:
    ranker = Ranker([*unrelated_papers(), ESSAYS], ISSUE, SelectionSettings())
    assert SelectionSettings().filler is Filler.NOTHING
    assert [s.paper.id for s in ranker.rank(["speech synthesis"], top=5)] == ["tts"]


def test_the_popular_filler_comes_after_the_matches_in_its_own_section() -> None:
    papers = [*unrelated_papers(), ESSAYS, RANKED]
    ranker = Ranker(papers, ISSUE, SelectionSettings(filler=Filler.POPULAR))
    picks = ranker.rank(["speech synthesis"], top=3)
    assert [(s.paper.id, s.filler, s.matched) for s in picks] == [
        ("tts", False, ["speech synthesis"]),
        ("aes", True, []),  # the most upvoted first
        ("tabsim", True, []),
    ]
    reader = Subscriber(email="r@example.org", keywords=["speech synthesis"])
    digest = DigestRenderer(Settings(), INFO).render(reader, picks, "https://x.example/u")
    text = digest.text
    assert "1 paper from" in text and "picked for your topics" in text  # the filler is not counted
    heading = text.index(f"== {POPULAR_HEADING} ==")
    assert text.index("Speech synthesis from text") < heading < text.index("Essay scoring systems")
    assert text.count("Why: Matches your keywords: speech synthesis.") == 1
    assert text.count("Why: Popular this week.") == 2
    html = digest.html
    assert html.index("with neural vocoders</a>") < html.index(POPULAR_HEADING) < html.index(">Essay scoring")


def test_rank_json_marks_the_popular_filler_with_no_matched_keywords() -> None:
    result = CliRunner().invoke(
        main,
        [
            "papers",
            "rank",
            "--papers",
            str(EXAMPLES),
            "--date",
            "2024-03-14",
            "--top",
            "4",
            "--json",
            "--keywords",
            "passage ranking",
        ],
        env={"NEWSLETTER_SELECTION__FILLER": "popular"},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    matches = [i for i in items if not i["filler"]]
    assert len(items) == 4 and 0 < len(matches) < 4 and items[: len(matches)] == matches
    assert all(i["matched"] == ["passage ranking"] for i in matches)
    assert all(i["matched"] == [] and i["upvotes"] for i in items[len(matches) :])
    assert items[0]["title"].startswith("T2Ranking")


def test_the_quote_never_cuts_the_matched_word() -> None:
    domains = ", ".join(f"domain number {n}" for n in range(1, 16))
    long_sentence = f"We test on {domains}, audio, and medical imaging, where the method helps most."
    assert len(long_sentence) > SENTENCE_MAX
    abstract = "We propose a general method. " * 14 + long_sentence
    paper = make_paper("gen", "A general method", abstract)
    why = why_picked(paper, ["medical"], cut_abstract(abstract)[0])
    assert len(why.sentence) <= SENTENCE_MAX
    assert "medical imaging" in why.sentence and why.sentence.startswith("\u2026")
    assert not why.sentence.startswith("\u2026 ") and why.sentence.split()[0][1:] in long_sentence.split()
