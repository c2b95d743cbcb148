"""One keyword rule everywhere: ';', ',' or a line break separate keywords, whoever reads them."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.papers import ISSUE, make_paper, unrelated_papers

from newsletter.cli import main
from newsletter.ranking.selection import Ranker
from newsletter.settings import SelectionSettings
from newsletter.sources.jsonl import paper_to_jsonl
from newsletter.subscribers import SubscriberStore
from newsletter.subscribers.signup import clean_preferences

# Commas, semicolons and a line break; spaces to collapse, an empty part, a repeat in other case.
TYPED = "Diffusion,  speech\nDIFFUSION;  music   generation ;,"
MEANT = ["Diffusion", "speech", "music generation"]
PAPER = make_paper(
    "both", "Diffusion for speech and music generation", "Diffusion models make speech and music."
)


def invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def write_csv(path: Path, keywords: str) -> Path:
    with path.open("w", encoding="utf-8", newline="") as out:
        csv.writer(out).writerows([["email", "name", "keywords"], ["ada@example.org", "Ada", keywords]])
    return path


def from_papers_rank(tmp_path: Path, typed: str) -> list[str]:
    papers = tmp_path / "papers.jsonl"
    papers.write_text(
        "".join(paper_to_jsonl(p) + "\n" for p in [PAPER, *unrelated_papers()]), encoding="utf-8"
    )
    out = invoke(
        "papers", "rank", "--papers", str(papers), "--date", str(ISSUE), "--keywords", typed, "--json"
    )
    return list(json.loads(out)[0]["matched"])  # a paper that matches them all names them all, in order


def from_subscribers_add(tmp_path: Path, typed: str) -> list[str]:
    (tmp_path / "subscribers").mkdir()
    invoke("subscribers", "add", "ada@example.org", "--keywords", typed, "--list", "news")
    return list(json.loads(invoke("subscribers", "list", "--list", "news", "--json"))[0]["keywords"])


def from_the_csv(tmp_path: Path, typed: str) -> list[str]:
    ada = SubscriberStore(write_csv(tmp_path / "news.csv", typed)).get("ada@example.org")
    assert ada is not None
    return ada.keywords


def from_import(tmp_path: Path, typed: str) -> list[str]:
    (tmp_path / "subscribers").mkdir()
    invoke("subscribers", "import", str(write_csv(tmp_path / "people.csv", typed)), "--list", "news")
    ada = SubscriberStore(tmp_path / "subscribers" / "news.csv").get("ada@example.org")
    assert ada is not None
    return ada.keywords


def from_the_web_form(tmp_path: Path, typed: str) -> list[str]:
    return list(clean_preferences("Ada", typed, "weekly").keywords)


def from_ranking_a_csv_cell(tmp_path: Path, typed: str) -> list[str]:
    return Ranker([PAPER, *unrelated_papers()], ISSUE, SelectionSettings()).rank(typed)[0].matched


ENTRY_POINTS: list[Callable[[Path, str], list[str]]] = [
    from_papers_rank,
    from_subscribers_add,
    from_the_csv,
    from_import,
    from_the_web_form,
    from_ranking_a_csv_cell,
]


@pytest.mark.parametrize("read", ENTRY_POINTS, ids=lambda read: read.__name__)
def test_every_entry_point_splits_keywords_the_same_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read: Callable[[Path, str], list[str]]
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("NEWSLETTER_SUBSCRIBERS_DIR", "NEWSLETTER_DEFAULT_LIST"):
        monkeypatch.delenv(name, raising=False)
    assert read(tmp_path, TYPED) == MEANT


def test_keywords_are_written_back_joined_by_semicolons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "subscribers").mkdir()
    invoke("subscribers", "add", "ada@example.org", "--keywords", TYPED, "--list", "news")
    assert "Diffusion; speech; music generation" in (tmp_path / "subscribers" / "news.csv").read_text()
    assert from_the_csv(tmp_path, "Diffusion; speech; music generation") == MEANT
