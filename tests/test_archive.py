"""`newsletter archive`: snapshots, issue pages, the index and the Atom feed, on real files."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter.cli import main

ATOM = "{http://www.w3.org/2005/Atom}"
XSS_TITLE = "<script>alert(1)</script>"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def archived(*args: str) -> Result:
    result = run("archive", *args)
    assert result.exit_code == 0, result.output
    return result


def write_papers(path: Path, *papers: dict[str, object]) -> Path:
    base = {
        "abstract": "An abstract about diffusion models.",
        "authors": ["A. Author"],
        "published": "2024-03-13T09:00:00+00:00",
        "source": "jsonl",
    }
    path.write_text("".join(json.dumps({**base, **p}) + "\n" for p in papers), encoding="utf-8")
    return path


def feed_entries(project: Path) -> list[ET.Element]:
    root = ET.parse(project / "archive" / "feed.xml").getroot()
    assert root.tag == f"{ATOM}feed"
    return root.findall(f"{ATOM}entry")


def test_archive_writes_snapshot_page_index_and_feed_for_the_issue(project: Path) -> None:
    result = archived("--date", "2024-03-14")

    out = project / "archive"
    assert "1 issue page(s), index.html and feed.xml" in result.output
    snapshot = json.loads((out / "issues" / "2024-W11.json").read_text(encoding="utf-8"))
    assert snapshot["issue_id"] == "2024-W11" and snapshot["issue_date"] == "2024-03-14"
    assert len(snapshot["papers"]) == 10  # selection.top_n of the shipped config
    page = (out / "2024-W11.html").read_text(encoding="utf-8")
    for paper in snapshot["papers"]:
        assert paper["title"].replace("'", "&#39;") in page
    assert 'href="2024-W11.html"' in (out / "index.html").read_text(encoding="utf-8")
    assert [e.findtext(f"{ATOM}title") for e in feed_entries(project)] == ["Weekly Papers Digest 2024-W11"]


def test_snapshot_holds_the_top_papers_of_a_reader_with_no_keywords(project: Path) -> None:
    archived("--date", "2024-03-14")
    ranked = run("papers", "rank", "--date", "2024-03-14", "--top", "10", "--json")
    assert ranked.exit_code == 0, ranked.output

    snapshot = json.loads((project / "archive" / "issues" / "2024-W11.json").read_text(encoding="utf-8"))

    assert [p["id"] for p in snapshot["papers"]] == [p["id"] for p in json.loads(ranked.stdout)]
    page = (project / "archive" / "2024-W11.html").read_text(encoding="utf-8")
    for name in ("Alice", "alice@example.org", "Unsubscribe"):
        assert name not in page, f"the archive page is personalised: {name!r}"


def test_index_and_feed_list_issues_newest_first_with_links_to_their_pages(project: Path) -> None:
    archived("--date", "2024-03-14")
    archived("--date", "2024-03-10")  # added later, but an older issue

    index = (project / "archive" / "index.html").read_text(encoding="utf-8")
    assert index.index('href="2024-W11.html"') < index.index('href="2024-W10.html"')
    entries = feed_entries(project)
    assert [e.findtext(f"{ATOM}updated", "")[:10] for e in entries] == ["2024-03-14", "2024-03-10"]
    for entry, issue in zip(entries, ("2024-W11", "2024-W10"), strict=False):
        links = entry.findall(f"{ATOM}link")
        assert [link.get("rel") for link in links] == ["alternate"]
        href = links[0].get("href")
        assert href is not None and href.endswith(f"/archive/{issue}.html")
        assert (project / "archive" / href.rsplit("/", 1)[1]).is_file()
        assert entry.findtext(f"{ATOM}id")
    ids = [e.findtext(f"{ATOM}id") for e in entries]
    assert len(set(ids)) == 2


def test_feed_links_are_absolute_under_base_url(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "https://papers.example.org/")
    archived("--date", "2024-03-14")

    root = ET.parse(project / "archive" / "feed.xml").getroot()

    self_link = [link for link in root.findall(f"{ATOM}link") if link.get("rel") == "self"]
    assert [link.get("href") for link in self_link] == ["https://papers.example.org/archive/feed.xml"]
    entry = root.find(f"{ATOM}entry")
    assert entry is not None
    link = entry.find(f"{ATOM}link")
    assert link is not None and link.get("href") == "https://papers.example.org/archive/2024-W11.html"
    assert entry.findtext(f"{ATOM}id") == "https://papers.example.org/archive/2024-W11.html"


def test_archiving_the_same_issue_again_replaces_it(project: Path) -> None:
    archived("--date", "2024-03-14")
    archived("--date", "2024-03-14")

    assert sorted(p.name for p in (project / "archive" / "issues").iterdir()) == ["2024-W11.json"]
    assert len(feed_entries(project)) == 1


def test_issue_option_names_the_snapshot_and_page(project: Path) -> None:
    archived("--date", "2024-03-14", "--issue", "2024-W11-special-edition")

    assert (project / "archive" / "issues" / "2024-W11-special-edition.json").is_file()
    assert (project / "archive" / "2024-W11-special-edition.html").is_file()
    assert not (project / "archive" / "2024-W11.html").exists()


def test_script_in_a_paper_title_is_escaped_in_page_index_and_feed(project: Path) -> None:
    papers = write_papers(
        project / "hostile.jsonl", {"id": "x-1", "title": XSS_TITLE, "url": "https://example.org/x1"}
    )
    archived("--date", "2024-03-14", "--papers", str(papers))

    for name in ("2024-W11.html", "index.html"):
        html = (project / "archive" / name).read_text(encoding="utf-8")
        assert "<script>" not in html, name
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, name
    feed_text = (project / "archive" / "feed.xml").read_text(encoding="utf-8")
    assert "<script>" not in feed_text
    assert feed_entries(project)[0].findtext(f"{ATOM}summary") == XSS_TITLE


def test_javascript_url_from_a_source_never_becomes_a_link_in_the_archive(project: Path) -> None:
    papers = write_papers(
        project / "hostile.jsonl",
        {
            "id": "x-2",
            "title": "A paper with a hostile link",
            "url": "javascript:alert(document.cookie)",
            "pdf_url": "javascript:alert(2)",
            "code_url": "JavaScript:alert(3)",
        },
    )
    archived("--date", "2024-03-14", "--papers", str(papers))

    html = (project / "archive" / "2024-W11.html").read_text(encoding="utf-8")
    assert "A paper with a hostile link" in html
    assert "javascript:" not in html.lower()


def test_rebuild_only_rerenders_pages_from_snapshots_without_adding_an_issue(project: Path) -> None:
    archived("--date", "2024-03-14")
    out = project / "archive"
    (out / "2024-W11.html").unlink()
    (out / "index.html").unlink()
    (out / "feed.xml").unlink()

    result = archived("--rebuild-only", "--date", "2024-03-10")

    assert "1 issue page(s)" in result.output
    assert sorted(p.name for p in (out / "issues").iterdir()) == ["2024-W11.json"]
    assert {"2024-W11.html", "index.html", "feed.xml"} <= {p.name for p in out.iterdir()}
    assert len(feed_entries(project)) == 1


def test_rebuild_only_without_any_issue_writes_an_empty_index_and_feed(project: Path) -> None:
    result = archived("--rebuild-only")

    assert "0 issue page(s)" in result.output
    assert "No issues yet." in (project / "archive" / "index.html").read_text(encoding="utf-8")
    assert feed_entries(project) == []


def test_damaged_snapshot_is_a_one_line_error_naming_the_file(project: Path) -> None:
    archived("--date", "2024-03-14")
    damaged = project / "archive" / "issues" / "2024-W11.json"
    damaged.write_text('{"issue_id": "2024-W11", "papers": [', encoding="utf-8")

    result = run("archive", "--rebuild-only")

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.count("\n") == 1 and result.output.startswith("Error: ")
    assert str(damaged) in result.output
    assert "newsletter archive --date" in result.output


def test_snapshot_that_is_not_utf8_is_a_one_line_error_naming_the_file(project: Path) -> None:
    folder = project / "archive" / "issues"
    folder.mkdir(parents=True)
    damaged = folder / "2024-W09.json"
    damaged.write_bytes(b"\xff\xfe\x00garbage")

    result = run("archive", "--rebuild-only")

    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and str(damaged) in result.output


def test_broken_archive_template_override_is_a_one_line_error_naming_file_and_line(project: Path) -> None:
    override = project / "templates" / "archive" / "index.html"
    override.write_text("<ul>\n{% for issue in issues %}\n{% if %}\n", encoding="utf-8")

    result = run("archive", "--date", "2024-03-14")

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.startswith("Error: ") and f"{override}:3" in result.output
