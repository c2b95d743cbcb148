"""Following an author (`author: Name`) and the 'why this paper' line on every card."""

from __future__ import annotations

import json

import pytest
from helpers.papers import ISSUE, make_paper, unrelated_papers

from newsletter.models import IssueInfo, Subscriber
from newsletter.pipeline.replay import RecordedPick
from newsletter.pipeline.snapshot import reader_record
from newsletter.ranking.authors import author_name, parse_name
from newsletter.ranking.selection import Ranker, ScoredPaper
from newsletter.render.digest import DigestRenderer
from newsletter.render.why import why_picked
from newsletter.settings import SelectionSettings, Settings
from newsletter.sources.paper import Paper


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


# The window defines the acronym once (a literal match); the "rl" paper only spells it out.
RLHF_PAPERS = [
    *unrelated_papers(),
    make_paper(
        "lit",
        "RLHF without tears",
        "A simpler recipe for reinforcement learning from human feedback (RLHF) in chat models.",
    ),
]


def _digest_for(
    keywords: list[str], papers: list[Paper], settings: SelectionSettings | None = None
) -> tuple[list[ScoredPaper], str, str]:
    info = IssueInfo(
        issue_id="2024-W11", issue_date=ISSUE, list_name="news", title="Digest", window_start=ISSUE
    )
    picks = Ranker(papers, ISSUE, settings or SelectionSettings()).rank(keywords)
    reader = Subscriber(email="r@example.org", keywords=keywords)
    digest = DigestRenderer(Settings(), info).render(
        reader, picks, "https://x.example/u", feedback_url=lambda pid: ""
    )
    return picks, digest.html, digest.text


def test_a_paraphrase_of_an_acronym_is_close_in_meaning_not_a_match() -> None:
    picks, html, text = _digest_for(["RLHF"], RLHF_PAPERS)
    by_id = {p.paper.id: p for p in picks}
    assert "rlhf" not in by_id["rl"].paper.abstract.lower() + by_id["rl"].paper.title.lower()
    assert by_id["rl"].matched == ["RLHF"] and by_id["rl"].related == ["RLHF"]
    assert by_id["lit"].matched == ["RLHF"] and by_id["lit"].related == []
    assert text.count("Why: Close in meaning to your keywords: RLHF.") == 1
    assert text.count("Why: Matches your keywords: RLHF.") == 1
    assert html.count("Close in meaning to your keywords: RLHF.") == 1
    assert html.count("Matches your keywords: RLHF.") == 1
    why_at = html.index("Close in meaning")
    card = html[html.rindex("<h2", 0, why_at) : why_at]
    assert "Aligning chat assistants" in card and 'class="hl"' not in card  # no word of it to mark
    assert 'class="hl"' in html[html.index("Matches your keywords: RLHF") - 600 :][:600]


def test_without_its_long_form_in_the_window_an_acronym_finds_no_paraphrase() -> None:
    # The model alone sees 'RLHF' as four letters: only the window's own definition gives it meaning.
    assert Ranker(unrelated_papers(), ISSUE, SelectionSettings()).rank(["RLHF"]) == []


def test_words_first_then_meaning_closest_first() -> None:
    paper = make_paper("p", "Music generation", "We make music.")
    why = why_picked(paper, ["voice", "music", "audio"], "We make music.", related=["audio", "voice"])
    assert why.reason == "Matches your keywords: music. Close in meaning to your keywords: audio, voice"
    also_liked = why_picked(paper, ["audio"], "", liked=0.6, feedback=0.2, related=["audio"])
    assert also_liked.reason == "Close in meaning to your keywords: audio. Similar to a paper you liked"
    assert why_picked(paper, ["audio"], "We make music.", related=["audio"]).sentence == ""


def test_a_speech_paper_found_by_meaning_says_so() -> None:
    # "voice" is 0.40 from the speech paper: a match by meaning once the floor allows it.
    loose = SelectionSettings(match_cosine=0.35)
    picks, _, text = _digest_for(["voice", "traffic"], unrelated_papers(), loose)
    by_id = {p.paper.id: p for p in picks}
    assert by_id["tts"].related == ["voice"] and by_id["traffic"].related == []
    assert "Why: Close in meaning to your keywords: voice." in text
    assert "Why: Matches your keywords: traffic." in text


def test_the_ledger_records_matches_by_meaning_so_a_replay_says_the_same() -> None:
    picks, _, text = _digest_for(["RLHF"], RLHF_PAPERS)
    reader = Subscriber(email="r@example.org", keywords=["RLHF"])
    record = json.loads(reader_record(reader, picks))
    assert record["related"] == {"rl": ["RLHF"]}
    recorded = [
        RecordedPick(
            p.paper, record["matched"].get(p.paper.id, []), related=record["related"].get(p.paper.id, [])
        )
        for p in picks
    ]
    info = IssueInfo(
        issue_id="2024-W11", issue_date=ISSUE, list_name="news", title="Digest", window_start=ISSUE
    )
    again = DigestRenderer(Settings(), info).render(
        reader, recorded, "https://x.example/u", feedback_url=lambda pid: ""
    )
    assert again.text == text
