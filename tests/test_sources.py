"""Reading papers: every format detected from content, bad records skipped and reported."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from newsletter.errors import SourceError
from newsletter.sources import load_papers

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def hf_record(pid: str, title: str = "A Title", summary: str = "An abstract.", **paper: object) -> dict:
    inner = {"id": pid, "title": title, "summary": summary, "publishedAt": "2024-03-12T10:00:00.000Z",
             "authors": [{"name": "Ada Lovelace", "hidden": False}], "upvotes": 7,
             "ai_keywords": ["diffusion"], "githubRepo": "https://github.com/x/y"}
    inner.update(paper)
    return {"paper": inner, "publishedAt": "2024-03-13T00:00:00.000Z", "title": title, "numComments": 2}


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_hf_record_maps_every_field_for_an_arxiv_id(tmp_path: Path) -> None:
    path = write_json(tmp_path / "d.json", [hf_record("2403.01234", title=" A\n  Title ")])
    paper = load_papers([path]).papers[0]
    assert paper.id == "2403.01234"
    assert paper.title == "A Title"
    assert paper.url == "https://huggingface.co/papers/2403.01234"
    assert paper.pdf_url == "https://arxiv.org/pdf/2403.01234"
    assert paper.code_url == "https://github.com/x/y"
    assert paper.upvotes == 7
    assert paper.keywords == ["diffusion"]
    assert paper.authors == ["Ada Lovelace"]
    assert paper.published == datetime(2024, 3, 12, 10, tzinfo=timezone.utc)
    assert paper.source == "hf"


def test_hf_record_without_arxiv_id_links_to_a_title_search_and_has_no_pdf(tmp_path: Path) -> None:
    path = write_json(tmp_path / "d.json", [hf_record("sample-0123abcd45", title="Diffusion & Music")])
    paper = load_papers([path]).papers[0]
    assert paper.id == "sample-0123abcd45"
    assert paper.url == "https://huggingface.co/papers?q=Diffusion%20%26%20Music"
    assert paper.pdf_url is None


def test_hf_published_falls_back_to_the_top_level_date(tmp_path: Path) -> None:
    record = hf_record("2403.01234")
    del record["paper"]["publishedAt"]
    paper = load_papers([write_json(tmp_path / "d.json", [record])]).papers[0]
    assert paper.published == datetime(2024, 3, 13, tzinfo=timezone.utc)


def test_shipped_examples_load_all_69_papers_newest_first() -> None:
    if not EXAMPLES.is_dir():
        pytest.skip("sample data not written yet")
    loaded = load_papers([EXAMPLES])
    assert len(loaded.papers) == 69
    assert loaded.problems == []
    dates = [p.published for p in loaded.papers]
    assert dates == sorted(dates, reverse=True)


def test_record_without_abstract_is_reported_by_position_and_skipped(tmp_path: Path) -> None:
    path = write_json(tmp_path / "d.json", [hf_record("2403.00001"), hf_record("2403.00002", summary="  ")])
    loaded = load_papers([path])
    assert [p.id for p in loaded.papers] == ["2403.00001"]
    assert loaded.problems == [f"{path}:2: missing abstract"]


def test_file_in_no_known_format_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.json"
    path.write_text("just some notes\n", encoding="utf-8")
    with pytest.raises(SourceError, match="notes.json is in no known papers format"):
        load_papers([path])


def test_no_paths_is_an_error_with_a_fix() -> None:
    with pytest.raises(SourceError, match="--papers"):
        load_papers([])
