"""Ranking quality: nDCG@10 of our ranker next to plain BM25 on judged queries over examples/.

Systems: plain BM25; "words only (before)", the lexical ranker alone (semantic_weight = 0, what
shipped before the hybrid); "ours (defaults)", lexical fused with meaning; and the same without
recency and popularity.

Then the two cosine bands the meaning thresholds are set from, over the same papers: two abstracts'
cosine (mean and sd: why feedback closeness is scaled to the window, not cut at a fixed cosine),
and a keyword's cosine to a random abstract sentence (its 99th percentile: why a card quotes a
sentence only from MIN_QUOTE_COSINE up).

Run: python benchmarks/ndcg_eval.py [--judgements benchmarks/judgements.json] [--papers examples]
"Plain BM25" is bm25s with its default tokenizer (English stopwords, no stemming) over title and
abstract as one text, the subscriber's keywords as one bag of words, no title weight, no phrases.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import re
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import bm25s
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from newsletter.ranking.feedback import Taste
from newsletter.ranking.selection import Ranker
from newsletter.ranking.semantic import load_model, paper_text
from newsletter.ranking.sentences import MIN_QUOTE_COSINE
from newsletter.render.why import sentences_of
from newsletter.settings import SelectionSettings
from newsletter.sources import load_papers
from newsletter.sources.paper import Paper
from newsletter.text import split_keywords

K = 10


def ndcg(ranked_titles: Sequence[str], grades: dict[str, int], k: int = K) -> float:
    """Graded nDCG with gain 2^rel - 1, the usual form for 0..3 judgements."""
    dcg = sum((2 ** grades.get(t, 0) - 1) / math.log2(i + 2) for i, t in enumerate(ranked_titles[:k]))
    ideal = sorted(grades.values(), reverse=True)[:k]
    idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


class PlainBM25:
    """The baseline: what bm25s gives out of the box."""

    def __init__(self, papers: Sequence[Paper]) -> None:
        self.papers = list(papers)
        corpus = [f"{p.title} {p.abstract}" for p in self.papers]
        self.index = bm25s.BM25()
        self.index.index(bm25s.tokenize(corpus, stopwords="en", show_progress=False), show_progress=False)

    def rank(self, keywords: str) -> list[str]:
        query = bm25s.tokenize(
            [" ".join(split_keywords(keywords))], stopwords="en", show_progress=False, return_ids=False
        )[0]
        scores = self.index.get_scores(query)
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        return [self.papers[i].title for i in order[:K] if scores[i] > 0]


def evaluate(judgements: Path, papers_path: Path) -> tuple[list[str], dict[str, list[float]]]:
    """nDCG@10 per query for each system, so a test can check ours never falls behind plain."""
    judged = json.loads(judgements.read_text(encoding="utf-8"))
    papers = load_papers([papers_path]).papers
    titles = {p.title for p in papers}
    issue = date.fromisoformat(judged["issue_date"])
    defaults = SelectionSettings()
    relevance_only = defaults.model_copy(update={"recency_weight": 0.0, "popularity_weight": 0.0})
    words_only = defaults.model_copy(update={"semantic_weight": 0.0})
    systems: dict[str, Callable[[str], list[str]]] = {
        "plain BM25": PlainBM25(papers).rank,
        "words only (before)": _ours(papers, issue, words_only),
        "ours (defaults)": _ours(papers, issue, defaults),
        "ours (relevance only)": _ours(papers, issue, relevance_only),
    }
    results: dict[str, list[float]] = {name: [] for name in systems}
    for query in judged["queries"]:
        missing = set(query["relevant"]) - titles
        if missing:
            raise SystemExit(f"judged titles not in the sample papers: {sorted(missing)}")
        for name, rank in systems.items():
            results[name].append(ndcg(rank(query["keywords"]), query["relevant"]))
    return [q["keywords"] for q in judged["queries"]], results


def judged_ranker(
    judgements: Path, papers_path: Path, settings: SelectionSettings
) -> tuple[dict[str, Any], Ranker]:
    """The judgements and a ranker over the sample papers on their issue date (the feedback checks)."""
    judged = json.loads(judgements.read_text(encoding="utf-8"))
    ranker = Ranker(load_papers([papers_path]).papers, date.fromisoformat(judged["issue_date"]), settings)
    return judged, ranker


def feedback_gain(judgements: Path, papers_path: Path, settings: SelectionSettings) -> tuple[float, float]:
    """Mean nDCG@10 of the rest before and after liking the best paper of each query's first page."""
    judged, ranker = judged_ranker(judgements, papers_path, settings)
    before, after = [], []
    for query in judged["queries"]:
        keywords = split_keywords(query["keywords"])
        grades: dict[str, int] = query["relevant"]
        page = ranker.rank(keywords, top=K)
        if not page:
            continue
        best = max(page, key=lambda s: grades.get(s.paper.title, 0))  # first of the best grade
        vector = ranker.vector_of(best.paper.id)
        if vector is None:
            raise SystemExit("the feedback benchmark needs the semantic part on (semantic_weight > 0)")
        rest = {t: g for t, g in grades.items() if t != best.paper.title}
        if not any(rest.values()):
            continue  # nothing left to find: the query says nothing about feedback
        exclude = [best.paper.id]
        before.append(ndcg([s.paper.title for s in ranker.rank(keywords, top=K, exclude_ids=exclude)], rest))
        taste = Taste.of(
            [(best.paper.id, vector)], [], {best.paper.id: ranker.telling_terms([best.paper])[0]}
        )
        after.append(ndcg([s.paper.title for s in ranker.rank(keywords, top=K, taste=taste)], rest))
    return sum(before) / len(before), sum(after) / len(after)


def dislike_effect(judgements: Path, papers_path: Path, settings: SelectionSettings) -> tuple[float, float]:
    """Mean nDCG@10 before and after disliking the first unjudged (irrelevant) paper of each first page.

    "Less like this" must not cost the reader the relevant papers that sit near an irrelevant one.
    """
    judged, ranker = judged_ranker(judgements, papers_path, settings)
    before, after = [], []
    for query in judged["queries"]:
        keywords = split_keywords(query["keywords"])
        grades: dict[str, int] = query["relevant"]
        bad = [s for s in ranker.rank(keywords, top=K) if not grades.get(s.paper.title)]
        vector = ranker.vector_of(bad[0].paper.id) if bad else None
        if not bad or vector is None:
            continue
        worst = bad[0].paper
        before.append(
            ndcg([s.paper.title for s in ranker.rank(keywords, top=K, exclude_ids=[worst.id])], grades)
        )
        taste = Taste.of([], [(worst.id, vector)], {worst.id: ranker.telling_terms([worst])[0]})
        after.append(ndcg([s.paper.title for s in ranker.rank(keywords, top=K, taste=taste)], grades))
    return sum(before) / len(before), sum(after) / len(after)


def cosine_bands(papers_path: Path, per_keyword: int = 20) -> tuple[float, float, float, float, int]:
    """Two abstracts' cosine (mean, sd); keyword vs random sentence (99th percentile, share at or
    above MIN_QUOTE_COSINE); how many keywords."""
    papers = load_papers([papers_path]).papers
    model = load_model()
    vectors = model.embed([paper_text(p.title, p.abstract) for p in papers])
    pairs = (vectors @ vectors.T)[np.triu_indices(len(papers), 1)]
    words: set[str] = set()
    for paper in papers:  # what readers plausibly follow: the titles' words and word pairs
        title = [w.lower() for w in re.findall(r"[A-Za-z][A-Za-z-]{3,}", paper.title)]
        words.update(title, (f"{a} {b}" for a, b in itertools.pairwise(title)))
    keywords = sorted(words)
    sentences = [s for p in papers for s in sentences_of(p.abstract)]
    rng = random.Random(0)
    cosines = [model.embed(rng.sample(sentences, per_keyword)) @ k for k in model.embed(keywords)]
    chance = np.concatenate(cosines)
    quoted = float(np.mean(chance >= MIN_QUOTE_COSINE))
    return float(pairs.mean()), float(pairs.std()), float(np.percentile(chance, 99)), quoted, len(keywords)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judgements", type=Path, default=ROOT / "benchmarks" / "judgements.json")
    parser.add_argument("--papers", type=Path, default=ROOT / "examples")
    args = parser.parse_args()

    queries, results = evaluate(args.judgements, args.papers)
    print(f"{'query':34}" + "".join(f"{name:>24}" for name in results))
    for i, query in enumerate(queries):
        print(f"{query[:34]:34}" + "".join(f"{values[i]:>24.3f}" for values in results.values()))
    label = f"mean nDCG@10 ({len(queries)} queries)"
    means = {name: sum(v) / len(v) for name, v in results.items()}
    print(f"{label:34}" + "".join(f"{value:>24.3f}" for value in means.values()))
    gain = means["ours (defaults)"] - means["plain BM25"]
    print(f"defaults vs plain BM25: {gain:+.3f}   target >= +0.030")
    before, after = feedback_gain(args.judgements, args.papers, SelectionSettings())
    print(
        f"feedback: like the best paper of each query's first page, re-rank; nDCG@10 of the rest"
        f" before {before:.3f}, after {after:.3f} ({after - before:+.3f})"
    )
    before, after = dislike_effect(args.judgements, args.papers, SelectionSettings())
    print(
        f"feedback: dislike the first irrelevant paper of each query's first page, re-rank; nDCG@10"
        f" before {before:.3f}, after {after:.3f} ({after - before:+.3f})"
    )
    mean, sd, chance, quoted, keywords = cosine_bands(args.papers)
    print(f"meaning: two abstracts' cosine {mean:.2f} +- {sd:.2f} (mean and sd over every pair)")
    print(
        f"meaning: a keyword's cosine to a random abstract sentence: 99th percentile {chance:.2f},"
        f" {quoted:.1%} at or above {MIN_QUOTE_COSINE} ({keywords} title words and pairs, 20 sentences each)"
    )


def _ours(papers: Sequence[Paper], issue: date, settings: SelectionSettings) -> Callable[[str], list[str]]:
    ranker = Ranker(papers, issue, settings)
    return lambda keywords: [s.paper.title for s in ranker.rank(split_keywords(keywords), top=K)]


if __name__ == "__main__":
    main()
