"""Ranking quality guard on the judged sample week (benchmarks/judgements.json, tuning half: the
half the match floor was set on): labelled matches are right, and feedback helps or does no harm."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
JUDGED, PAPERS = ROOT / "benchmarks" / "judgements.json", ROOT / "examples"


def _ndcg_eval() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ndcg_eval", ROOT / "benchmarks" / "ndcg_eval.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nine_in_ten_cards_labelled_a_match_are_relevant_on_the_tuning_half() -> None:
    module = _ndcg_eval()
    labelled, relevant, _, _ = module.label_quality(JUDGED, PAPERS, module.SelectionSettings(), "tuning")
    assert labelled and relevant / labelled >= 0.9  # 105 of 116 when written; 132 of 241 before the floor


def test_meaning_adds_to_words_on_both_halves() -> None:
    module = _ndcg_eval()
    for half in module.HALVES:
        _, results = module.evaluate(JUDGED, PAPERS, half)
        mean = {name: sum(values) / len(values) for name, values in results.items()}
        assert mean["ours (defaults)"] >= mean["words only"]


def test_every_judged_query_names_its_half_and_its_titles_exist() -> None:
    module = _ndcg_eval()
    _, queries = module.judged_queries(JUDGED)
    assert len(queries) >= 30 and {q["half"] for q in queries} == set(module.HALVES)
    assert sum(1 for q in queries if len(module.split_keywords(q["keywords"])) >= 4) >= 6
    module.evaluate(JUDGED, PAPERS)  # raises on a judged title the sample papers lack


def test_ndcg_is_one_for_the_ideal_order_and_zero_without_relevant_papers() -> None:
    ndcg = _ndcg_eval().ndcg
    grades = {"a": 3, "b": 1}
    assert ndcg(["a", "b", "x"], grades) == 1.0
    assert ndcg(["x", "y"], grades) == 0.0
    assert 0 < ndcg(["b", "a"], grades) < 1


def test_a_like_finds_more_relevant_papers_and_a_dislike_costs_none() -> None:
    module = _ndcg_eval()
    settings = module.SelectionSettings()
    liked = module.feedback_gain(JUDGED, PAPERS, settings, "tuning")
    gain = module.mean([after - before for _, before, after in liked])
    assert gain >= 0.05  # +0.169 on the tuning half when written
    disliked = module.dislike_effect(JUDGED, PAPERS, settings, "tuning")
    assert all(after >= before - 0.01 for _, before, after in disliked)
