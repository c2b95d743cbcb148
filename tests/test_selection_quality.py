"""Ranking quality guard: on our judged queries, the default ranker never falls behind plain BM25,
and a reader's feedback helps (a like) or does no harm (a dislike)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _ndcg_eval() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ndcg_eval", ROOT / "benchmarks" / "ndcg_eval.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_our_mean_ndcg_at_10_is_at_least_plain_bm25_on_the_sample_papers() -> None:
    _, results = _ndcg_eval().evaluate(ROOT / "benchmarks" / "judgements.json", ROOT / "examples")
    mean = {name: sum(values) / len(values) for name, values in results.items()}
    assert mean["ours (defaults)"] >= mean["plain BM25"]
    assert mean["ours (defaults)"] >= mean["words only (before)"]
    assert mean["ours (relevance only)"] >= mean["plain BM25"]


def test_ndcg_is_one_for_the_ideal_order_and_zero_without_relevant_papers() -> None:
    ndcg = _ndcg_eval().ndcg
    grades = {"a": 3, "b": 1}
    assert ndcg(["a", "b", "x"], grades) == 1.0
    assert ndcg(["x", "y"], grades) == 0.0
    assert 0 < ndcg(["b", "a"], grades) < 1


def test_a_like_finds_more_relevant_papers_and_a_dislike_costs_none() -> None:
    module = _ndcg_eval()
    settings = module.SelectionSettings()
    judged, papers = ROOT / "benchmarks" / "judgements.json", ROOT / "examples"
    before, after = module.feedback_gain(judged, papers, settings)
    assert after >= before + 0.05  # a reader notices: 0.568 -> 0.669 when written
    before, after = module.dislike_effect(judged, papers, settings)
    assert after >= before - 0.01
