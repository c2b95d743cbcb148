"""Ranking quality per half of the judged set: nDCG@10 next to plain BM25, label precision and
recall, and what one like or dislike does, over the sample papers in examples/.

Systems: plain BM25; "words only", the lexical ranker alone (semantic_weight = 0); "ours
(defaults)", the digest as sent by default: lexical fused with meaning, only the papers above the
match floor (filler = nothing, so a digest may hold fewer than ten); "ours (filler popular)", the
digest as sent with filler = popular (the matches, then the week's most upvoted papers); "ours
(order)", the same ranking with the floor only labelling, not cutting (how well the ranker orders
the week, apart from which papers it dares call a match); and the defaults without recency and
popularity. The headline is "ours (defaults)": it is what a reader gets.

Label precision: of the cards in each top 10 whose why line says they match a keyword (by words
or by meaning), the share judged relevant (grade >= 1), over all queries of a half. Label recall:
of the relevant papers that fit in a top 10 (each query's ten best graded), the share the ranker
labels a match. A query with no relevant paper counts for precision only (its nDCG is undefined).

Feedback: like the best paper of a query's first page and re-rank (nDCG@10 of the rest, before
and after); dislike the first irrelevant paper of the first page (nDCG@10 before and after).
Thresholds are set on the tuning half only; the test half is reported, never tuned on.

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
from newsletter.settings import Filler, SelectionSettings
from newsletter.sources import load_papers
from newsletter.sources.paper import Paper
from newsletter.text import split_keywords

K = 10
HALVES = ("tuning", "test")
# Every paper with any relevance counts as a match: the ranking's own order, which the floor
# would label but not cut ("ours (order)").
NO_FLOOR = {"match_words": 0.0, "match_one_word": 0.0, "match_cosine": -1.0}


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


Grades = dict[str, int]
Outcome = tuple[str, float, float]  # query, nDCG@10 before, after


def judged_queries(judgements: Path, half: str | None = None) -> tuple[date, list[dict[str, Any]]]:
    """The issue date and the judged queries, of one half ("tuning" or "test") or of both."""
    judged = json.loads(judgements.read_text(encoding="utf-8"))
    queries = [q for q in judged["queries"] if half is None or q["half"] == half]
    return date.fromisoformat(judged["issue_date"]), queries


def evaluate(
    judgements: Path, papers_path: Path, half: str | None = None
) -> tuple[list[str], dict[str, list[float]]]:
    """nDCG@10 per query with relevant papers, for each system, so a test can compare them."""
    issue, queries = judged_queries(judgements, half)
    papers = load_papers([papers_path]).papers
    titles = {p.title for p in papers}
    defaults = SelectionSettings()
    relevance_only = defaults.model_copy(update={"recency_weight": 0.0, "popularity_weight": 0.0})
    words_only = defaults.model_copy(update={"semantic_weight": 0.0})
    systems: dict[str, Callable[[str], list[str]]] = {
        "plain BM25": PlainBM25(papers).rank,
        "words only": _ours(papers, issue, words_only),
        "ours (defaults)": _ours(papers, issue, defaults),
        "ours (filler popular)": _ours(papers, issue, defaults.model_copy(update={"filler": Filler.POPULAR})),
        "ours (order)": _ours(papers, issue, defaults.model_copy(update=NO_FLOOR)),
        "ours (relevance only)": _ours(papers, issue, relevance_only),
    }
    results: dict[str, list[float]] = {name: [] for name in systems}
    asked = []
    for query in queries:
        missing = set(query["relevant"]) - titles
        if missing:
            raise SystemExit(f"judged titles not in the sample papers: {sorted(missing)}")
        if not query["relevant"]:
            continue  # nDCG is undefined without a relevant paper; label precision still counts it
        asked.append(query["keywords"])
        for name, rank in systems.items():
            results[name].append(ndcg(rank(query["keywords"]), query["relevant"]))
    return asked, results


def label_quality(
    judgements: Path, papers_path: Path, settings: SelectionSettings, half: str | None = None
) -> tuple[int, int, int, int]:
    """(cards labelled a match in the top 10s, of them relevant, relevant papers that fit in a
    top 10, of them labelled a match): label precision and label recall, summed over queries."""
    issue, queries = judged_queries(judgements, half)
    ranker = Ranker(load_papers([papers_path]).papers, issue, settings)
    labelled = labelled_relevant = reachable = reached = 0
    for query in queries:
        keywords = split_keywords(query["keywords"])
        grades: Grades = query["relevant"]
        page = [s for s in ranker.rank(keywords, top=K) if s.matched]
        labelled += len(page)
        labelled_relevant += sum(1 for s in page if grades.get(s.paper.title, 0) > 0)
        matches = {s.paper.title for s in ranker.rank(keywords) if s.matched}
        best = sorted((t for t, g in grades.items() if g > 0), key=lambda t: -grades[t])[:K]
        reachable += len(best)
        reached += sum(1 for t in best if t in matches)
    return labelled, labelled_relevant, reachable, reached


def judged_ranker(
    judgements: Path, papers_path: Path, settings: SelectionSettings, half: str | None = None
) -> tuple[list[dict[str, Any]], Ranker]:
    """The judged queries and a ranker over the sample papers on their issue date (the feedback checks)."""
    issue, queries = judged_queries(judgements, half)
    return queries, Ranker(load_papers([papers_path]).papers, issue, settings)


def feedback_gain(
    judgements: Path, papers_path: Path, settings: SelectionSettings, half: str | None = None
) -> list[Outcome]:
    """Per query: nDCG@10 of the rest before and after liking the best paper of the first page."""
    queries, ranker = judged_ranker(judgements, papers_path, settings, half)
    found = []
    for query in queries:
        keywords = split_keywords(query["keywords"])
        grades: Grades = query["relevant"]
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
        without = ranker.rank(keywords, top=K, exclude_ids=[best.paper.id])
        before = ndcg([s.paper.title for s in without], rest)
        taste = Taste.of(
            [(best.paper.id, vector)], [], {best.paper.id: ranker.telling_terms([best.paper])[0]}
        )
        after = ndcg([s.paper.title for s in ranker.rank(keywords, top=K, taste=taste)], rest)
        found.append((query["keywords"], before, after))
    return found


def dislike_effect(
    judgements: Path, papers_path: Path, settings: SelectionSettings, half: str | None = None
) -> list[Outcome]:
    """Per query: nDCG@10 before and after disliking the first irrelevant paper of the first page.

    "Less like this" must not cost the reader the relevant papers that sit near an irrelevant one.
    """
    queries, ranker = judged_ranker(judgements, papers_path, settings, half)
    found = []
    for query in queries:
        keywords = split_keywords(query["keywords"])
        grades: Grades = query["relevant"]
        bad = [s for s in ranker.rank(keywords, top=K) if not grades.get(s.paper.title)]
        vector = ranker.vector_of(bad[0].paper.id) if bad else None
        if not bad or vector is None or not grades:
            continue
        worst = bad[0].paper
        before = ndcg([s.paper.title for s in ranker.rank(keywords, top=K, exclude_ids=[worst.id])], grades)
        taste = Taste.of([], [(worst.id, vector)], {worst.id: ranker.telling_terms([worst])[0]})
        after = ndcg([s.paper.title for s in ranker.rank(keywords, top=K, taste=taste)], grades)
        found.append((query["keywords"], before, after))
    return found


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


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
    parser.add_argument("--per-query", action="store_true", help="Print each query's nDCG@10 too.")
    args = parser.parse_args()
    for half in HALVES:
        report_half(args.judgements, args.papers, half, args.per_query)
    mean_cos, sd, chance, quoted, keywords = cosine_bands(args.papers)
    print(f"meaning: two abstracts' cosine {mean_cos:.2f} +- {sd:.2f} (mean and sd over every pair)")
    print(
        f"meaning: a keyword's cosine to a random abstract sentence: 99th percentile {chance:.2f},"
        f" {quoted:.1%} at or above {MIN_QUOTE_COSINE} ({keywords} title words and pairs, 20 sentences each)"
    )


def report_half(judgements: Path, papers: Path, half: str, per_query: bool) -> None:
    """Every number of one half of the judged set, with the issue's targets beside them."""
    queries, results = evaluate(judgements, papers, half)
    asked = len(judged_queries(judgements, half)[1])
    print(f"== {half} half: {asked} queries, {len(queries)} with relevant papers")
    if per_query:
        print(f"{'query':34}" + "".join(f"{name:>24}" for name in results))
        for i, query in enumerate(queries):
            print(f"{query[:34]:34}" + "".join(f"{values[i]:>24.3f}" for values in results.values()))
    means = {name: mean(v) for name, v in results.items()}
    print("mean nDCG@10   " + "   ".join(f"{name} {value:.3f}" for name, value in means.items()))
    for name in ("ours (defaults)", "ours (filler popular)", "ours (order)"):
        print(f"{name} vs plain BM25: {means[name] - means['plain BM25']:+.3f}   target >= +0.040")
    settings = SelectionSettings()
    labelled, right, reachable, reached = label_quality(judgements, papers, settings, half)
    print(
        f"label precision {right / max(labelled, 1):.3f} ({right} of {labelled} labelled cards relevant)"
        f"   target >= 0.9"
    )
    print(
        f"label recall {reached / max(reachable, 1):.3f} ({reached} of {reachable} relevant papers that"
        f" fit in a top 10 labelled)   target >= 0.9"
    )
    liked = feedback_gain(judgements, papers, settings, half)
    hurt = sum(1 for _, b, a in liked if a < b - 1e-9)
    helped = sum(1 for _, b, a in liked if a > b + 1e-9)
    before, after = mean([b for _, b, _ in liked]), mean([a for _, _, a in liked])
    print(
        f"like the best first-page paper: nDCG@10 of the rest {before:.3f} -> {after:.3f}"
        f" ({after - before:+.3f}); helps {helped}, hurts {hurt} of {len(liked)} queries"
        f"   target: rises, hurts <= 1 in 5"
    )
    disliked = dislike_effect(judgements, papers, settings, half)
    before, after = mean([b for _, b, _ in disliked]), mean([a for _, _, a in disliked])
    worst = min((a - b for _, b, a in disliked), default=0.0)
    print(
        f"dislike the first irrelevant first-page paper: nDCG@10 {before:.3f} -> {after:.3f}"
        f" ({after - before:+.3f}); worst query {worst:+.3f}   target: no query below -0.010"
    )


def _ours(papers: Sequence[Paper], issue: date, settings: SelectionSettings) -> Callable[[str], list[str]]:
    ranker = Ranker(papers, issue, settings)
    return lambda keywords: [s.paper.title for s in ranker.rank(split_keywords(keywords), top=K)]


if __name__ == "__main__":
    main()
