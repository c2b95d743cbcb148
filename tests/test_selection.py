"""Ranking: keyword clauses, phrases, recency and popularity, exclusion of papers already sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from helpers.papers import ISSUE
from helpers.papers import make_paper as paper

from newsletter.ranking.selection import Ranker, ScoredPaper, rank_papers
from newsletter.settings import SelectionSettings
from newsletter.sources.paper import Paper


def ids(scored: list[ScoredPaper]) -> list[str]:
    return [s.paper.id for s in scored]


def test_papers_outside_the_window_are_never_ranked() -> None:
    papers = [
        paper("in", "Diffusion", days_ago=2),
        paper("old", "Diffusion", days_ago=9),
        paper("future", "Diffusion", days_ago=-1),
    ]
    assert ids(rank_papers(papers, ["diffusion"], ISSUE, SelectionSettings())) == ["in"]


def test_with_keywords_only_matching_papers_are_returned() -> None:
    papers = [paper("a", "Diffusion models for audio"), paper("b", "Graph neural networks")]
    ranked = rank_papers(papers, ["diffusion"], ISSUE, SelectionSettings())
    assert ids(ranked) == ["a"]
    assert ranked[0].matched == ["diffusion"]


def test_two_matched_interests_beat_one() -> None:
    papers = [paper("one", "Diffusion models"), paper("two", "Diffusion models for music generation")]
    ranked = rank_papers(papers, ["diffusion", "music"], ISSUE, SelectionSettings())
    assert ids(ranked) == ["two", "one"]
    assert ranked[0].matched == ["diffusion", "music"]


def test_no_keywords_ranks_by_recency_and_popularity() -> None:
    papers = [
        paper("old", "A", days_ago=6, upvotes=1),
        paper("new", "B", days_ago=0.5, upvotes=1),
        paper("popular", "C", days_ago=6, upvotes=500),
    ]
    settings = SelectionSettings(recency_weight=1.0, popularity_weight=0.0)
    assert ids(rank_papers(papers, [], ISSUE, settings))[0] == "new"
    settings = SelectionSettings(recency_weight=0.0, popularity_weight=1.0)
    assert ids(rank_papers(papers, [], ISSUE, settings))[0] == "popular"


def test_excluded_ids_are_skipped_and_top_limits_the_list() -> None:
    papers = [paper(f"p{i}", f"Diffusion paper {i}") for i in range(5)]
    ranker = Ranker(papers, ISSUE, SelectionSettings())
    ranked = ranker.rank(["diffusion"], top=3, exclude_ids={"p0", "p1"})
    assert len(ranked) == 3
    assert not {"p0", "p1"} & set(ids(ranked))


def test_hyphens_case_and_inflections_do_not_matter() -> None:
    papers = [paper("a", "Selective State Space Models"), paper("b", "Rewards for agents")]
    ranker = Ranker(papers, ISSUE, SelectionSettings())
    assert ids(ranker.rank(["State-Space model"])) == ["a"]
    assert ids(ranker.rank(["reward"])) == ["b"]


def test_a_multi_word_keyword_prefers_the_phrase_over_scattered_words() -> None:
    filler = " ".join(f"w{i}" for i in range(20))
    papers = [
        paper("scattered", "A study", f"protein {filler} language {filler} models"),
        paper("phrase", "A study", f"protein language models {filler} {filler}"),
    ]
    ranked = rank_papers(papers, ["protein language models"], ISSUE, SelectionSettings())
    assert ids(ranked)[0] == "phrase"


def test_explain_parts_add_up_to_the_score() -> None:
    papers = [paper("a", "Diffusion models", upvotes=10)]
    scored = rank_papers(papers, ["diffusion"], ISSUE, SelectionSettings())[0]
    parts = scored.parts
    total = parts["keywords"] + parts["recency"] + parts["popularity"]
    assert abs(total - scored.score) < 1e-6
    assert parts["keyword: diffusion"] > 0


def test_a_rare_term_is_required_but_a_common_one_is_not() -> None:
    papers = [
        paper("models-only", "Graph models", "Models of graphs."),
        paper("diffusion-only", "Diffusion for audio", "We study diffusion."),
        *[paper(f"f{i}", f"Models {i}", "Models everywhere.") for i in range(8)],
    ]
    ranked = rank_papers(papers, ["diffusion models"], ISSUE, SelectionSettings())
    assert ids(ranked) == ["diffusion-only"]


def test_keyword_of_stopwords_only_is_ignored() -> None:
    papers = [paper("a", "Anything")]
    assert ids(rank_papers(papers, ["the", "of"], ISSUE, SelectionSettings())) == ["a"]


def test_ranker_without_papers_in_window_ranks_nothing() -> None:
    ranker = Ranker([paper("old", "Diffusion", days_ago=30)], ISSUE, SelectionSettings())
    assert ranker.rank(["diffusion"]) == []
    assert ranker.rank([]) == []


def test_same_keyword_twice_counts_once() -> None:
    papers = [paper("a", "Diffusion models"), paper("b", "Music and diffusion")]
    ranker = Ranker(papers, ISSUE, SelectionSettings())
    once = ranker.rank(["diffusion"])
    twice = ranker.rank(["diffusion", "Diffusion"])
    assert [(s.paper.id, s.score) for s in once] == [(s.paper.id, s.score) for s in twice]


def test_window_includes_its_first_day_and_the_whole_issue_day() -> None:
    start = datetime(2024, 3, 8, tzinfo=UTC)
    papers = [
        Paper(id="first", title="Diffusion", abstract="x", published=start, url="u"),
        Paper(
            id="last",
            title="Diffusion",
            abstract="x",
            published=start + timedelta(days=7, seconds=-1),
            url="u",
        ),
        Paper(id="before", title="Diffusion", abstract="x", published=start - timedelta(seconds=1), url="u"),
        Paper(id="after", title="Diffusion", abstract="x", published=start + timedelta(days=7), url="u"),
    ]
    ranked = Ranker(papers, ISSUE, SelectionSettings(window_days=7)).rank([])
    assert sorted(ids(ranked)) == ["first", "last"]


def test_recency_halves_every_half_life() -> None:
    papers = [paper("new", "A", days_ago=1e-6), paper("older", "B", days_ago=2)]
    settings = SelectionSettings(half_life_days=2.0, recency_weight=1.0, popularity_weight=0.0)
    parts = {s.paper.id: s.parts["recency"] for s in rank_papers(papers, [], ISSUE, settings)}
    assert abs(parts["new"] - 1.0) < 1e-6
    assert abs(parts["older"] - 0.5) < 1e-6


def test_popularity_is_log_scaled_and_optional() -> None:
    papers = [paper("many", "A", upvotes=999), paper("few", "B", upvotes=9), paper("none", "C")]
    settings = SelectionSettings(recency_weight=0.0, popularity_weight=1.0)
    parts = {s.paper.id: s.parts["popularity"] for s in rank_papers(papers, [], ISSUE, settings)}
    assert parts["many"] == 1.0
    assert abs(parts["few"] - 1 / 3) < 1e-9
    assert parts["none"] == 0.0
    off = SelectionSettings(recency_weight=0.0, popularity_weight=0.0)
    assert {s.score for s in rank_papers(papers, [], ISSUE, off)} <= {0.0, -1e-9, -2e-9}


def test_excluding_papers_for_one_subscriber_does_not_affect_the_next() -> None:
    ranker = Ranker([paper("a", "A"), paper("b", "B")], ISSUE, SelectionSettings())
    assert ids(ranker.rank([], exclude_ids={"a"})) == ["b"]
    assert sorted(ids(ranker.rank([]))) == ["a", "b"]


def test_keyword_matching_nothing_gives_an_empty_list() -> None:
    ranker = Ranker([paper("a", "Diffusion")], ISSUE, SelectionSettings())
    assert ranker.rank(["quantum chromodynamics"]) == []


def test_spellings_of_one_keyword_score_the_same() -> None:
    papers = [paper("a", "Modelling state-space systems"), paper("b", "State space model, again")]
    ranker = Ranker(papers, ISSUE, SelectionSettings())
    one = [(s.paper.id, s.score) for s in ranker.rank(["State-Space Models"])]
    two = [(s.paper.id, s.score) for s in ranker.rank(["state space modelling"])]
    assert one == two and len(one) == 2


def test_min_relevance_drops_weak_matches() -> None:
    papers = [
        paper("strong", "Diffusion diffusion", "diffusion everywhere"),
        paper("weak", "Graphs", "One mention of diffusion among many other words here and there."),
    ]
    loose = rank_papers(papers, ["diffusion"], ISSUE, SelectionSettings())
    strict = rank_papers(papers, ["diffusion"], ISSUE, SelectionSettings(min_relevance=0.5))
    assert ids(loose) == ["strong", "weak"]
    assert ids(strict) == ["strong"]


def test_a_keyword_string_is_split_not_read_letter_by_letter() -> None:
    ranker = Ranker([paper("a", "Diffusion"), paper("b", "Music")], ISSUE, SelectionSettings())
    assert sorted(ids(ranker.rank("diffusion; music"))) == ["a", "b"]


def test_a_paper_given_twice_is_ranked_once() -> None:
    twice = [paper("a", "Diffusion"), paper("a", "Diffusion"), paper("b", "Diffusion")]
    assert sorted(ids(rank_papers(twice, ["diffusion"], ISSUE, SelectionSettings()))) == ["a", "b"]


def test_bm25_is_lucenes_variant() -> None:
    import math

    from newsletter.ranking.keywordscore import Bm25

    corpus = [["graph", "neural", "graph"], ["graph"], ["vision"], []]
    index = Bm25(corpus, k1=1.2, b=0.75)
    _lengths, average = [3, 1, 1, 1], 1.5  # an empty text counts as one word
    idf = math.log(1 + (4 - 2 + 0.5) / (2 + 0.5))  # 'graph' is in 2 of 4 documents
    expected = [idf * tf / (tf + 1.2 * (0.25 + 0.75 * n / average)) for tf, n in ((2, 3), (1, 1))]
    assert index.scores("graph").tolist() == pytest.approx([*expected, 0.0, 0.0], rel=1e-6)
    assert index.scores("absent").tolist() == [0.0] * 4
    assert Bm25([], k1=1.2, b=0.75).scores("graph").tolist() == []


def test_a_send_does_not_import_what_it_does_not_use() -> None:
    """scipy (pulled in by bm25s when installed) and httpx (fetching only) cost every process memory."""
    import subprocess
    import sys

    code = (
        "import sys, newsletter.pipeline.send, newsletter.cli; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'bm25s', 'httpx'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
