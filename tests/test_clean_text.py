"""Titles and abstracts read cleanly in the mail: TeX quotes, escapes and stray markup are made
plain text once, when papers are loaded, whatever the source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from newsletter.sources import load_papers
from newsletter.sources.cleantext import clean_text

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (
            "Is there a choice that is ``better'' than others?",
            "Is there a choice that is \u201cbetter\u201d than others?",
        ),
        ("the ''Answerable Matrix'' (AUCM)", "the \u201cAnswerable Matrix\u201d (AUCM)"),
        (r"averaging 85\% on LRA, R\&D and snake\_case", "averaging 85% on LRA, R&D and snake_case"),
        (r"runs in $\mathcal{O}(n \log n)$ time", r"runs in O(n \log n) time"),
        ("provides mathcal{O}(T^{2/3}) regret", "provides O(T^{2/3}) regret"),
        (
            "roughly mathfrak S^{2/p} for 1leq p<2 and 2<p<infty.",
            "roughly S^{2/p} for 1\u2264 p<2 and 2<p<\u221e.",
        ),
        (r"an \emph{\textbf{honest}} ranker", "an honest ranker"),
        (r"Schr\"odinger and \'{e}t\'e", "Schr\u00f6dinger and \u00e9t\u00e9"),
        ("the challenge.\u2026", "the challenge\u2026"),
        ("Why?...", "Why?\u2026"),
        # Left alone: prices, words that merely contain a macro's name, braces that are content.
        ("A $5 and a 10 note", "A $5 and a 10 note"),
        ("sleq is not infinity", "sleq is not infinity"),
        ("Does this figure show '{text}'?", "Does this figure show '{text}'?"),
    ],
)
def test_tex_and_stray_markup_become_plain_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


def test_every_source_cleans_title_and_abstract_when_it_loads(tmp_path: Path) -> None:
    record = {
        "id": "2403.00001",
        "title": r"Is 85\% ``enough''?",
        "abstract": r"We ask whether 85\% is ``enough''.",
        "published": "2024-03-14T00:00:00Z",
    }
    (tmp_path / "p.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    (paper,) = load_papers([tmp_path / "p.jsonl"]).papers
    assert paper.title == "Is 85% \u201cenough\u201d?"
    assert paper.abstract == "We ask whether 85% is \u201cenough\u201d."


def test_no_tex_is_left_in_the_sample_papers() -> None:
    for paper in load_papers([EXAMPLES]).papers:
        for text in (paper.title, paper.abstract):
            assert "``" not in text and "''" not in text and "\\%" not in text and "mathcal" not in text


def test_a_teaser_cut_inside_a_sentence_ends_in_one_ellipsis() -> None:
    from newsletter.render.text import cut_abstract

    giant = " ".join(["word"] * 57 + ["the", "challenge.", "then"] + ["more"] * 60) + "."
    teaser, was_cut = cut_abstract(giant, words=59)
    assert was_cut and teaser.endswith("challenge\u2026") and ".\u2026" not in teaser
