"""Following an author (`author: Name`) and the 'why this paper' line on every card."""

from __future__ import annotations

import pytest
from helpers.papers import ISSUE, make_paper

from newsletter.models import IssueInfo, Subscriber
from newsletter.ranking.authors import author_name, parse_name
from newsletter.ranking.selection import Ranker
from newsletter.render.digest import DigestRenderer
from newsletter.render.why import why_picked
from newsletter.settings import SelectionSettings, Settings


@pytest.mark.parametrize(
    ("keyword", "author", "same"),
    [
        ("author: Ada Lovelace", "Ada Lovelace", True),
        ("Author:  lovelace, a.", "Ada Lovelace", True),
        ("author: A. Lovelace", "Ada King Lovelace", True),
        ("author: José García", "Jose Garcia", True),
        ("author: Ludwig van Beethoven", "L. van Beethoven", True),
        ("author: Ada Lovelace", "Alan Lovelace", False),
        ("author: Lovelace, B.", "Ada Lovelace", False),
        ("author: Ada Lovelace", "Ada Byron", False),
    ],
)
def test_author_names_match_when_normalised(keyword: str, author: str, same: bool) -> None:
    name = author_name(keyword)
    wanted, found = parse_name(name or ""), parse_name(author)
    assert wanted is not None and found is not None
    assert wanted.matches(found) is same


def test_an_ordinary_keyword_is_no_author() -> None:
    assert author_name("diffusion models") is None
    assert author_name("authorship attribution: a survey") is None
    assert author_name("author:   ") is None


PAPERS = [
    make_paper(
        "a", "Graph networks for traffic", "We forecast traffic.", authors=["Ada Lovelace", "C. Babbage"]
    ),
    make_paper("b", "Diffusion models", "Denoising diffusion for images.", authors=["Grace Hopper"]),
]


def test_an_author_keyword_picks_their_papers_and_says_so() -> None:
    picks = Ranker(PAPERS, ISSUE, SelectionSettings()).rank(["author: Lovelace, A."])
    assert [p.paper.id for p in picks] == ["a"]
    assert picks[0].matched == ["author: Lovelace, A."]
    why = why_picked(picks[0].paper, picks[0].matched, "We forecast traffic.")
    assert why.reason == "By Lovelace, A., whom you follow"


def test_why_names_matched_keywords_else_feedback_else_popularity() -> None:
    paper = make_paper("p", "Music generation", "We make music.", upvotes=12)
    assert why_picked(paper, ["music generation"], "We make music.").reason == (
        "Matches your keywords: music generation"
    )
    assert why_picked(paper, [], "", liked=0.6, feedback=0.2).reason == "Similar to a paper you liked"
    assert why_picked(paper, [], "").reason == "Popular this week"
    assert why_picked(make_paper("q", "T"), [], "").reason == "New this week"


def test_a_match_in_the_cut_part_of_the_abstract_shows_the_sentence() -> None:
    long = " ".join(["This paper studies many things at length."] * 20)
    paper = make_paper("p", "A long paper", long + " Finally we apply it to protein folding.")
    shown = " ".join(["This paper studies many things at length."] * 5)
    why = why_picked(paper, ["protein folding"], shown)
    assert why.sentence == "Finally we apply it to protein folding."
    assert why_picked(paper, ["length"], shown).sentence == ""  # visible on the card already


def test_the_card_shows_why_and_highlights_no_author_keyword() -> None:
    settings = Settings()
    info = IssueInfo(
        issue_id="2024-W11",
        issue_date=ISSUE,
        list_name="news",
        title="Digest",
        window_start=ISSUE,
        archive_url=None,
    )
    picks = Ranker(PAPERS, ISSUE, SelectionSettings()).rank(["author: Ada Lovelace", "traffic"])
    reader = Subscriber(email="r@example.org", keywords=["author: Ada Lovelace", "traffic"])
    digest = DigestRenderer(settings, info).render(
        reader, picks, "https://x.example/u", feedback_url=lambda pid: ""
    )
    assert "By Ada Lovelace, whom you follow. Matches your keywords: traffic." in digest.html
    assert "author: Ada Lovelace" in digest.html  # the reader's keywords, shown as they wrote them
    assert "Why: By Ada Lovelace, whom you follow. Matches your keywords: traffic." in digest.text
