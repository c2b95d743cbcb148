"""Time the per-subscriber ranking at scale: 2,000 papers, 100,000 subscribers, top 10 each.

Run: python benchmarks/bench_selection.py [--papers 2000] [--subscribers 100000] [--seed 7]
Prints build seconds, ranking seconds, total, and peak resident memory, with the semantic part on
(the default; --semantic-weight 0 for words only), then every reader again with 5 liked and 2
disliked papers. Targets (#24): <= 2.5 s and <= 300 MB, and <= 10 s with feedback, on a 2-core
machine; wall time varies when other processes share the CPU, so CPU seconds are printed too.
With the semantic part on it also prints the model's load time (in a fresh process) and one
keyword's cosines to every paper done as the ranker does them (einsum) and with numpy's `@`,
which hands them to a threaded BLAS.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np

from newsletter.ranking.feedback import Taste
from newsletter.ranking.selection import Ranker
from newsletter.ranking.semantic import load_model
from newsletter.settings import SelectionSettings
from newsletter.sources.paper import Paper

ISSUE = date(2024, 3, 14)
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "vi", "zo", "pe", "su", "da", "fi", "go", "hu"]


def make_word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))


def make_vocabulary(rng: random.Random, size: int = 300) -> list[str]:
    """300 interests: two thirds single words, one third two- or three-word phrases."""
    words = sorted({make_word(rng) for _ in range(size * 3)})
    rng.shuffle(words)
    terms: list[str] = []
    for i in range(size):
        n = 1 if i % 3 else rng.choice([2, 3])
        terms.append(" ".join(words[i * 3 : i * 3 + n]))
    return terms


def make_papers(rng: random.Random, count: int, vocabulary: list[str]) -> list[Paper]:
    """Papers whose text mixes a few interests with filler, published across the week."""
    filler = [make_word(rng) for _ in range(3000)]
    start = datetime(2024, 3, 8, tzinfo=UTC)
    papers = []
    for i in range(count):
        topics = rng.sample(vocabulary, 3)
        title = " ".join(rng.sample(filler, 5) + topics[:1])
        body = rng.sample(filler, 120) + [t for t in topics for _ in range(rng.randint(1, 3))]
        rng.shuffle(body)
        papers.append(
            Paper(
                id=f"bench-{i:05d}",
                title=title,
                abstract=" ".join(body),
                published=start + timedelta(minutes=rng.randrange(7 * 24 * 60)),
                url=f"https://example.org/{i}",
                upvotes=rng.randint(0, 300),
                source="bench",
            )
        )
    return papers


def unseen_keyword_cost(
    ranker: Ranker, vocabulary: list[str], rng: random.Random, count: int = 2000
) -> float:
    """Microseconds to score a keyword nobody used before (new pairs of known words)."""
    words = [w for term in vocabulary for w in term.split()]
    fresh = {f"{rng.choice(words)} {rng.choice(words)}" for _ in range(count * 2)} - set(vocabulary)
    sample = sorted(fresh)[:count]
    started = time.perf_counter()
    for keyword in sample:
        ranker.rank([keyword], top=10)
    return (time.perf_counter() - started) / len(sample) * 1e6


def feedback_run(
    ranker: Ranker, interests: list[list[str]], rng: random.Random, top: int
) -> tuple[float, float, int]:
    """Every reader with 5 liked and 2 disliked papers of the window: (wall s, cpu s, readers).

    Each reader's feedback (Taste) is made inside the timing, as a send makes it per reader.
    """
    if ranker.vectors.shape[1] == 0:
        return float("nan"), float("nan"), 0
    terms = ranker.telling_terms()
    judged = [rng.sample(range(len(ranker.papers)), 7) for _ in interests]
    started, cpu_started = time.perf_counter(), time.process_time()
    for keywords, chosen in zip(interests, judged, strict=True):
        pairs = [(ranker.papers[i].id, ranker.vectors[i]) for i in chosen]
        words = {ranker.papers[i].id: terms[i] for i in chosen}
        ranker.rank(keywords, top=top, taste=Taste.of(pairs[:5], pairs[5:], words))
    return time.perf_counter() - started, time.process_time() - cpu_started, len(interests)


def model_load_seconds() -> float:
    """The semantic model's table and tokenizer loaded in a fresh process, as each `send` does once."""
    code = (
        f"import sys, time; sys.path.insert(0, {str(REPO)!r})\n"
        "from newsletter.ranking.semantic import load_model\n"
        "started = time.perf_counter(); load_model(); print(time.perf_counter() - started)\n"
    )
    return float(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    )


def similarity_cost(ranker: Ranker, vocabulary: list[str]) -> tuple[float, float]:
    """Microseconds for one keyword's cosines to every paper: with einsum (the ranker's way), and with `@`."""
    papers = ranker.vectors
    if papers.shape[1] == 0:
        return float("nan"), float("nan")
    keywords = load_model().embed(vocabulary)
    started = time.perf_counter()
    for keyword in keywords:
        np.einsum("ij,j->i", papers, keyword)
    middle = time.perf_counter()
    for keyword in keywords:
        papers @ keyword
    done = time.perf_counter()
    return (middle - started) / len(keywords) * 1e6, (done - middle) / len(keywords) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=2000)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--semantic-weight",
        type=float,
        default=SelectionSettings().semantic_weight,
        help="0 = words only (the ranker before the semantic hybrid); default: the shipped setting",
    )
    parser.add_argument(
        "--keep-results",
        action="store_true",
        help="hold every subscriber's picks in memory, as a caller that batches would",
    )
    parser.add_argument(
        "--feedback-readers",
        type=int,
        default=None,
        help="how many readers rank again with 5 liked and 2 disliked papers (default: all)",
    )
    args = parser.parse_args()
    if args.feedback_readers is None:
        args.feedback_readers = args.subscribers

    rng = random.Random(args.seed)
    vocabulary = make_vocabulary(rng)
    papers = make_papers(rng, args.papers, vocabulary)
    interests = [rng.sample(vocabulary, rng.randint(1, 5)) for _ in range(args.subscribers)]
    distinct = len({tuple(sorted(k)) for k in interests})
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    started = time.perf_counter()
    cpu_started = time.process_time()
    ranker = Ranker(papers, ISSUE, SelectionSettings(semantic_weight=args.semantic_weight))
    built = time.perf_counter()
    cpu_built = time.process_time()
    picked = 0
    kept = []
    for keywords in interests:
        picks = ranker.rank(keywords, top=args.top)
        picked += len(picks)
        if args.keep_results:
            kept.append(picks)
    done = time.perf_counter()
    cpu_done = time.process_time()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cold = unseen_keyword_cost(ranker, vocabulary, rng)
    fed_wall, fed_cpu, fed = feedback_run(ranker, interests[: args.feedback_readers], rng, args.top)
    einsum, matmul = similarity_cost(ranker, vocabulary)
    load = model_load_seconds() if args.semantic_weight else float("nan")

    print(
        f"cpus / load average  {os.cpu_count()} / {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        "  (other processes share the CPU; timings vary with load)"
    )
    print(f"papers in window     {len(ranker.papers)}")
    print(f"subscribers          {args.subscribers} ({distinct} distinct keyword sets)")
    print(f"papers picked        {picked} (top {args.top} each)")
    print(f"semantic weight      {args.semantic_weight}  (0 = words only)")
    print(f"model load (s)       {load:.3f}  (table and tokenizer, once per process; builders inherit it)")
    cpu_build = cpu_built - cpu_started
    print(f"build index (s)      {built - started:.3f}  (cpu {cpu_build:.3f}; includes paper vectors)")
    print(
        f"rank all (s)         {done - built:.3f}  (cpu {cpu_done - cpu_built:.3f}; includes scoring each of"
        " the 300 keywords once)"
    )
    print(f"total (s)            {done - started:.3f}   target <= 2.5 (cpu {cpu_done - cpu_started:.3f})")
    print(f"per subscriber (us)  {(done - built) / args.subscribers * 1e6:.1f}")
    print(f"unseen keyword (us)  {cold:.0f}  (first use of a free-text keyword; later uses are cached)")
    print(
        f"with feedback (s)    {fed_wall:.3f}   target <= 10 (cpu {fed_cpu:.3f}; {fed} readers with"
        f" 5 liked and 2 disliked papers each, {fed_wall / max(fed, 1) * 1e6:.0f} us per reader)"
    )
    print(
        f"cosines (us)         {einsum:.0f} with einsum, {matmul:.0f} with @"
        " (one keyword to every paper; @ uses a threaded BLAS, slow when the host is busy)"
    )
    print(f"peak RSS (MB)        {peak:.0f}   target <= 300 (before ranking: {rss_before:.0f})")


if __name__ == "__main__":
    main()
