"""The issue window follows when a paper reached readers: its HF feature day, else its date."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from newsletter.ranking.selection import Ranker
from newsletter.settings import SelectionSettings
from newsletter.sources import load_papers
from newsletter.sources.jsonl import paper_to_jsonl


def hf_record(title: str, submitted: str, featured: str) -> dict[str, object]:
    return {
        "paper": {
            "id": "2403.01234",
            "title": title,
            "summary": "A study of diffusion models.",
            "authors": [{"name": "A. Author"}],
            "publishedAt": submitted,
            "upvotes": 3,
        },
        "publishedAt": featured,
        "title": title,
        "summary": "A study of diffusion models.",
    }


def test_paper_featured_this_week_but_submitted_earlier_is_in_the_issue(tmp_path: Path) -> None:
    path = tmp_path / "hf.json"
    path.write_text(
        json.dumps([hf_record("Old preprint, featured now", "2024-02-01T00:00:00Z", "2024-03-13T08:00:00Z")]),
        encoding="utf-8",
    )
    papers = load_papers([path]).papers

    picks = Ranker(papers, date(2024, 3, 14), SelectionSettings()).rank(["diffusion models"])

    assert [p.paper.title for p in picks] == ["Old preprint, featured now"]
    assert papers[0].published.date() == date(2024, 2, 1)


def test_feature_date_survives_the_json_lines_cache(tmp_path: Path) -> None:
    source = tmp_path / "hf.json"
    source.write_text(
        json.dumps([hf_record("Featured", "2024-02-01T00:00:00Z", "2024-03-13T08:00:00Z")]), encoding="utf-8"
    )
    cached = tmp_path / "cache.jsonl"
    cached.write_text(paper_to_jsonl(load_papers([source]).papers[0]) + "\n", encoding="utf-8")

    [paper] = load_papers([cached]).papers

    assert paper.featured_at is not None and paper.featured_at.date() == date(2024, 3, 13)


def test_paper_featured_after_the_issue_date_waits_for_the_next_issue(tmp_path: Path) -> None:
    path = tmp_path / "hf.json"
    path.write_text(
        json.dumps([hf_record("Featured later", "2024-03-10T00:00:00Z", "2024-03-15T08:00:00Z")]),
        encoding="utf-8",
    )

    picks = Ranker(load_papers([path]).papers, date(2024, 3, 14), SelectionSettings()).rank([])

    assert picks == []
