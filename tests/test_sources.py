"""Reading papers: every format detected from content, bad records skipped and reported."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from newsletter.errors import SourceError
from newsletter.sources import load_papers
from newsletter.sources.paper import stable_id

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def hf_record(
    pid: str, title: str = "A Title", summary: str = "An abstract.", **paper: object
) -> dict[str, Any]:
    inner = {
        "id": pid,
        "title": title,
        "summary": summary,
        "publishedAt": "2024-03-12T10:00:00.000Z",
        "authors": [{"name": "Ada Lovelace", "hidden": False}],
        "upvotes": 7,
        "ai_keywords": ["diffusion"],
        "githubRepo": "https://github.com/x/y",
    }
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
    assert paper.published == datetime(2024, 3, 12, 10, tzinfo=UTC)
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
    assert paper.published == datetime(2024, 3, 13, tzinfo=UTC)


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
    with pytest.raises(SourceError, match=r"notes\.json is in no known papers format"):
        load_papers([path])


def test_no_paths_is_an_error_with_a_fix() -> None:
    with pytest.raises(SourceError, match="--papers"):
        load_papers([])


FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sources"


def test_arxiv_api_feed_strips_versions_and_keeps_authors_and_pdf() -> None:
    papers = {p.id: p for p in load_papers([FIXTURES / "arxiv_api_page0.xml"]).papers}
    radd = papers["2403.08213"]
    assert (
        radd.title
        == "Your Absorbing Discrete Diffusion Secretly Models the Conditional Distributions of Clean Data"
    )
    assert radd.abstract.startswith(
        "Discrete diffusion models with absorbing processes have shown promise in language"
    )
    assert radd.authors == ["Jingyang Ou", "Shen Nie", "Chongxuan Li"]
    assert radd.url == "https://arxiv.org/abs/2403.08213"
    assert radd.pdf_url == "http://arxiv.org/pdf/2403.08213v2"
    assert radd.keywords == ["cs.LG", "cs.CL"]
    assert radd.published == datetime(2024, 3, 13, 17, 59, 59, tzinfo=UTC)
    assert radd.source == "arxiv"


def test_old_style_arxiv_ids_keep_their_archive() -> None:
    paper = load_papers([FIXTURES / "arxiv_api_page1.xml"]).papers[0]
    assert paper.id == "hep-th/9901001"


def test_arxiv_rss_listing_drops_the_announce_prefix_and_splits_creators() -> None:
    loaded = load_papers([FIXTURES / "arxiv_listing_cs.LG.rss"])
    paper = loaded.papers[0]
    assert paper.id == "2403.07899"
    assert paper.abstract.startswith("Learning a precise dynamics model")
    assert paper.authors == ["Fan-Ming Luo", "Tian Xu", "Xingchen Cao", "Yang Yu"]
    assert paper.published == datetime(2024, 3, 14, 4, tzinfo=UTC)
    assert loaded.problems == [f"{FIXTURES / 'arxiv_listing_cs.LG.rss'}:entry 2: missing abstract"]


def test_arxiv_atom_listing_reads_like_the_rss_listing() -> None:
    paper = load_papers([FIXTURES / "arxiv_listing_cs.LG.atom"]).papers[0]
    assert paper.id == "2403.07899"
    assert paper.abstract.startswith("Learning a precise dynamics model")
    assert paper.authors == ["Fan-Ming Luo", "Tian Xu", "Xingchen Cao", "Yang Yu"]


def test_jsonl_skips_bad_lines_by_line_number_and_reads_the_rest() -> None:
    path = FIXTURES / "papers.jsonl"
    loaded = load_papers([path])
    assert sorted(p.id for p in loaded.papers) == ["2403.07899", stable_id("https://example.org/papers/42")]
    assert [problem.split(": ", 1)[0] for problem in loaded.problems] == [
        f"{path}:4",
        f"{path}:5",
        f"{path}:6",
        f"{path}:7",
    ]
    assert "missing title" in loaded.problems[0]
    assert "unreadable date" in loaded.problems[1]
    assert "not valid JSON" in loaded.problems[2]
    assert "upvotes" in loaded.problems[3]


def test_same_paper_from_hf_and_arxiv_becomes_one_with_the_best_of_both() -> None:
    loaded = load_papers([FIXTURES / "hf_daily_2024-03-14_p0.json", FIXTURES / "arxiv_api_page0.xml"])
    radd = [p for p in loaded.papers if p.id == "2403.08213"]
    assert len(radd) == 1
    assert radd[0].upvotes == 42
    assert radd[0].code_url == "https://github.com/ML-GSAI/RADD"
    assert radd[0].authors == ["Jingyang Ou", "Shen Nie"]
    assert "cs.LG" in radd[0].keywords and "discrete diffusion" in radd[0].keywords


def test_same_title_without_shared_id_is_merged_and_the_arxiv_id_wins(tmp_path: Path) -> None:
    hf = write_json(
        tmp_path / "hf.json",
        [
            hf_record(
                "sample-0123abcd45",
                title="Your Absorbing Discrete "
                "Diffusion Secretly Models the Conditional Distributions of Clean Data",
            )
        ],
    )
    loaded = load_papers([hf, FIXTURES / "arxiv_api_page0.xml"])
    assert [p.id for p in loaded.papers].count("2403.08213") == 1
    assert "sample-0123abcd45" not in [p.id for p in loaded.papers]
    merged = next(p for p in loaded.papers if p.id == "2403.08213")
    assert merged.url == "https://arxiv.org/abs/2403.08213"
    assert merged.upvotes == 7


def test_hf_pages_of_lists_are_flattened() -> None:
    loaded = load_papers([FIXTURES / "hf_daily_pages.json"])
    assert len(loaded.papers) == 3


def test_folders_are_searched_recursively_and_formats_mixed(tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    (nested / "feed.xml").write_text((FIXTURES / "arxiv_api_page1.xml").read_text())
    (tmp_path / "a" / "more.jsonl").write_text((FIXTURES / "papers.jsonl").read_text())
    (tmp_path / "README.md").write_text("not a papers file, ignored by suffix")
    loaded = load_papers([tmp_path])
    assert {p.id for p in loaded.papers} >= {"hep-th/9901001", "2403.07899"}


def test_format_is_detected_from_content_not_suffix(tmp_path: Path) -> None:
    path = tmp_path / "feed.json"
    path.write_text((FIXTURES / "arxiv_api_page1.xml").read_text())
    assert load_papers([path]).papers[0].id == "hep-th/9901001"


def test_xml_that_is_not_a_feed_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "page.xml"
    path.write_text("<html><body>hello</body></html>")
    with pytest.raises(SourceError, match=r"page.xml is in no known papers format: its XML root <html>"):
        load_papers([path])


def test_json_of_unknown_shape_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = write_json(tmp_path / "config.json", {"setting": 1})
    with pytest.raises(SourceError, match=r"config\.json is in no known papers format"):
        load_papers([path])


def test_files_with_only_bad_records_give_no_papers_error_with_hint(tmp_path: Path) -> None:
    path = write_json(tmp_path / "d.json", [hf_record("2403.00002", summary="")])
    with pytest.raises(SourceError, match=r"no papers found.*papers fetch"):
        load_papers([path])


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps([hf_record("2403.00001")]).encode())
    assert load_papers([path]).papers[0].id == "2403.00001"


def test_missing_path_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        load_papers([tmp_path / "nope"])


def test_jsonl_lines_in_daily_papers_shape_are_read_as_hf_records(tmp_path: Path) -> None:
    path = tmp_path / "hf.jsonl"
    path.write_text(
        "\n".join(json.dumps(hf_record(f"2403.0000{i}", title=f"Paper {i}")) for i in range(3)) + "\n"
    )
    loaded = load_papers([path])
    assert sorted(p.id for p in loaded.papers) == ["2403.00000", "2403.00001", "2403.00002"]
    assert {p.source for p in loaded.papers} == {"hf"}


def test_a_single_paper_shaped_json_object_is_one_paper(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "one.json",
        {"id": "2403.1", "title": "T", "abstract": "A", "published": "2024-03-12", "url": "https://x.org/1"},
    )
    assert load_papers([path]).papers[0].title == "T"
