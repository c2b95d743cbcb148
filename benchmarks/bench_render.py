#!/usr/bin/env python3
"""How many digest messages one process composes per second, for 10,000 subscribers.

Two audiences over the shipped sample papers (69 papers, issue 2024-W11):
  (a) 20 distinct interest profiles shared by 10,000 subscribers (distinct names and addresses);
  (b) 10,000 subscribers with pairwise distinct keyword sets.

Three measurements each:
  pipeline        what `send` does per subscriber before SMTP: rank, sign the unsubscribe
                  link, render (DigestRenderer) and compose the RFC 5322 bytes (MessageComposer);
  render+compose  the same with each subscriber's picks and link made beforehand;
  render only     DigestRenderer.render alone (HTML, text, subject), picks made beforehand.

The renderer is built fresh for each run, so its once-per-issue and once-per-paper premailer
calls are inside the timing; their count is printed too.

Then, per audience, the bodies' quoted-printable: MessageComposer's LineEncoder (line by line,
lines shared by many digests encoded once) against encoding each body whole with binascii (what
compose did before), and what the renderer's card caches and the line cache hold afterwards.

Usage: python benchmarks/bench_render.py [--subscribers N] [--repeat R]
"""

from __future__ import annotations

import argparse
import binascii
import functools
import random
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from newsletter.mail.compose import LineEncoder, MessageComposer
from newsletter.mail.tokens import unsubscribe_url
from newsletter.models import Subscriber
from newsletter.pipeline.issue import PreparedIssue, prepare_issue
from newsletter.ranking.selection import ScoredPaper
from newsletter.render.digest import DigestRenderer
from newsletter.settings import Settings, load_settings

SECRET = "benchmark-secret"
BASE_URL = "https://digest.example.org"
VOCABULARY = [
    "diffusion models",
    "music generation",
    "large language models",
    "reinforcement learning",
    "state space models",
    "text-to-image",
    "benchmarking",
    "mathematical reasoning",
    "RLHF",
    "reward models",
    "preference optimization",
    "recommendation",
    "translation",
    "medical",
    "passage ranking",
    "symbolic music",
    "score matching",
    "network pruning",
    "quantile regression",
    "diversity metrics",
    "data science agent",
    "Kaggle",
    "video generation",
    "retrieval",
    "transformers",
    "distillation",
    "image editing",
    "speech",
    "3D",
    "robotics",
    "agents",
    "multimodal",
    "evaluation",
    "code generation",
    "alignment",
    "efficient inference",
    "mixture of experts",
    "attention",
    "contrastive learning",
    "graph neural networks",
]


def audiences(count: int) -> dict[str, list[Subscriber]]:
    """The two audiences: 20 shared profiles, and every keyword set distinct."""
    rng = random.Random(11)
    profiles = [rng.sample(VOCABULARY, rng.randint(0 if i < 2 else 1, 4)) for i in range(20)]
    shared = [
        Subscriber(email=f"reader{i}@example.org", name=f"Reader {i}", keywords=profiles[i % 20])
        for i in range(count)
    ]
    seen: set[frozenset[str]] = set()
    distinct: list[Subscriber] = []
    while len(distinct) < count:
        keywords = rng.sample(VOCABULARY, rng.randint(1, 5))
        if frozenset(keywords) in seen:
            continue
        seen.add(frozenset(keywords))
        i = len(distinct)
        distinct.append(Subscriber(email=f"person{i}@example.org", name=f"Person {i}", keywords=keywords))
    return {"(a) 20 profiles": shared, "(b) all distinct": distinct}


def run_pipeline(
    issue: PreparedIssue, settings: Settings, subscribers: list[Subscriber]
) -> tuple[float, int]:
    """Rank, link, render and compose every subscriber; seconds taken and premailer calls."""
    started = time.perf_counter()
    renderer = DigestRenderer(settings, issue.info)
    composer = MessageComposer(settings, issue.info, SECRET)
    top = settings.selection.top_n
    for subscriber in subscribers:
        picks = issue.ranker.rank(subscriber.keywords, top=top)
        link = unsubscribe_url(BASE_URL, SECRET, issue.info.list_name, subscriber.email)
        composer.compose(subscriber, renderer.render(subscriber, picks, link), link)
    return time.perf_counter() - started, renderer.inline_calls


def prepared_work(
    issue: PreparedIssue, settings: Settings, subscribers: list[Subscriber]
) -> list[tuple[Subscriber, list[ScoredPaper], str]]:
    """Each subscriber's picks and link, made before the clock starts."""
    top = settings.selection.top_n
    return [
        (
            s,
            issue.ranker.rank(s.keywords, top=top),
            unsubscribe_url(BASE_URL, SECRET, issue.info.list_name, s.email),
        )
        for s in subscribers
    ]


def run_render_compose(
    issue: PreparedIssue, settings: Settings, subscribers: list[Subscriber]
) -> tuple[float, int]:
    """Render and compose with picks and links made beforehand."""
    work = prepared_work(issue, settings, subscribers)
    started = time.perf_counter()
    renderer = DigestRenderer(settings, issue.info)
    composer = MessageComposer(settings, issue.info, SECRET)
    for subscriber, picks, link in work:
        composer.compose(subscriber, renderer.render(subscriber, picks, link), link)
    return time.perf_counter() - started, renderer.inline_calls


def run_render_only(
    issue: PreparedIssue, settings: Settings, subscribers: list[Subscriber]
) -> tuple[float, int]:
    """Render only (HTML, text, subject), with picks and links made beforehand."""
    work = prepared_work(issue, settings, subscribers)
    started = time.perf_counter()
    renderer = DigestRenderer(settings, issue.info)
    for subscriber, picks, link in work:
        renderer.render(subscriber, picks, link)
    return time.perf_counter() - started, renderer.inline_calls


def held_mib(*mappings: Mapping[Any, Any]) -> float:
    """What some caches' keys and values take, each object once (strings, bytes and their tuples)."""
    seen: set[int] = set()
    held = 0
    for mapping in mappings:
        for item in [part for pair in mapping.items() for part in pair]:
            for one in (item, *item) if isinstance(item, tuple) else (item,):
                if id(one) not in seen:
                    seen.add(id(one))
                    held += sys.getsizeof(one)
    return held / (1 << 20)


def quoted_printable_cost(issue: PreparedIssue, settings: Settings, subscribers: list[Subscriber]) -> str:
    """CPU seconds to quoted-printable every digest body, line-cached and whole; what the caches hold."""
    renderer = DigestRenderer(settings, issue.info)
    encoder = LineEncoder()
    cached = whole = cards = lines = 0.0
    for n, (subscriber, picks, link) in enumerate(prepared_work(issue, settings, subscribers), 1):
        digest = renderer.render(subscriber, picks, link)
        for body in (digest.text, digest.html):
            started = time.process_time()
            encoder.encode(body)
            middle = time.process_time()
            plain = body.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
            binascii.b2a_qp(plain, istext=True).replace(b"\n", b"\r\n")
            cached, whole = cached + middle - started, whole + time.process_time() - middle
        if n % 250 == 0 or n == len(subscribers):  # the caches are cleared when full: keep the most seen
            cards = max(cards, held_mib(renderer._by_profile, renderer._highlights, renderer._texts))
            lines = max(lines, held_mib(encoder._cache))
    return (
        f"line cache {cached:.2f} s CPU, whole bodies {whole:.2f} s ({whole / cached:.1f}x); "
        f"most held: filled cards {cards:.1f} MiB, encoded lines {lines:.1f} MiB"
    )


def best_of(repeat: int, run: Callable[[], tuple[float, int]]) -> tuple[float, int]:
    results = [run() for _ in range(repeat)]
    return min(r[0] for r in results), results[0][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of R runs")
    args = parser.parse_args()
    settings = load_settings(REPO / "newsletter.toml")
    issue = prepare_issue(settings)
    print(
        f"issue {issue.info.issue_id}: {issue.paper_count} papers loaded, "
        f"{len(issue.ranker.papers)} in the window, top {settings.selection.top_n} per subscriber, "
        f"{args.subscribers} subscribers, best of {args.repeat}, single process"
    )
    for label, subscribers in audiences(args.subscribers).items():
        runs = (
            ("pipeline", run_pipeline),
            ("render+compose", run_render_compose),
            ("render only", run_render_only),
        )
        for kind, runner in runs:
            seconds, calls = best_of(args.repeat, functools.partial(runner, issue, settings, subscribers))
            print(
                f"{label:18} {kind:15} {len(subscribers) / seconds:8.0f} messages/s "
                f"({seconds:.2f} s, {calls} premailer calls)"
            )
        print(f"{label:18} quoted-printable {quoted_printable_cost(issue, settings, subscribers)}")


if __name__ == "__main__":
    main()
