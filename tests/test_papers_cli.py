"""`newsletter papers rank` and `papers fetch` through the real CLI entry point."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner, Result
from helpers.recorded import RecordedServer, fixture

from newsletter.cli import main
from newsletter.sources import load_papers

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sources"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_rank_json_lists_matching_papers_best_first_with_the_documented_fields() -> None:
    result = run(
        "papers",
        "rank",
        "--papers",
        str(EXAMPLES),
        "--keywords",
        "diffusion",
        "--date",
        "2024-03-14",
        "--json",
    )
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    assert 1 <= len(items) <= 10
    assert {"id", "title", "score", "published", "matched", "url"} <= set(items[0])
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
    assert all(i["matched"] == ["diffusion"] for i in items)
    assert items[0]["published"].startswith("2024-03-")


def test_rank_reads_papers_and_date_from_the_config_when_not_given(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "papers")
    config = tmp_path / "newsletter.toml"
    config.write_text('papers = ["papers/"]\nissue_date = 2024-03-14\n[selection]\ntop_n = 3\n')
    result = run("--config", str(config), "papers", "rank", "--keywords", "state space models", "--json")
    assert result.exit_code == 0, result.output
    titles = [i["title"] for i in json.loads(result.stdout)]
    assert len(titles) == 3
    assert all("State Space Models" in t for t in titles)


def test_rank_explain_shows_matched_keywords_and_score_parts() -> None:
    result = run(
        "papers",
        "rank",
        "--papers",
        str(EXAMPLES),
        "--keywords",
        "music; reinforcement learning",
        "--date",
        "2024-03-14",
        "--top",
        "1",
        "--explain",
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(" 1. ") and "MusicRL" in lines[0]
    assert lines[1].strip() == "why: Matches your keywords: music, reinforcement learning"
    # As on the email's card: the teaser stops before "reinforcement learning", so its sentence is quoted.
    assert lines[2].strip().startswith("matched in the abstract: “MusicRL is a pretrained")
    score, total = lines[0].split()[1], lines[3].strip()
    assert (
        total.startswith(f"score {score} = keywords ") and "+ recency " in total and "+ popularity " in total
    )
    assert lines[4].split()[0] == "music" and " x words " in lines[4] and " x meaning " in lines[4]
    assert lines[5].strip().startswith("reinforcement learning ")


def test_rank_explain_says_which_keywords_matched_by_meaning_and_what_feedback_added() -> None:
    common = ["papers", "rank", "--papers", str(EXAMPLES), "--date", "2024-03-14"]
    ranked = run(*common, "--keywords", "music generation", "--json")
    liked = json.loads(ranked.stdout)[0]["id"]
    result = run(*common, "--keywords", "composing songs", "--top", "20", "--like", liked, "--explain")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "why: Close in meaning to your keywords: composing songs" in text
    assert "(by meaning only: none of its words is in the paper)" in text
    assert "feedback +" in text and "x (close to a paper you liked " in text
    assert "why: Similar to a paper you liked" in text  # picked on feedback alone


def test_rank_json_and_explain_agree_on_what_matched() -> None:
    common = ["papers", "rank", "--papers", str(EXAMPLES), "--date", "2024-03-14", "--keywords"]
    items = json.loads(run(*common, "passage ranking", "--json").stdout)
    explained = run(*common, "passage ranking", "--explain").stdout
    assert items[0]["title"].startswith("T2Ranking")
    assert all(i["matched"] == ["passage ranking"] for i in items)  # below the floor: not listed at all
    assert explained.count("why: Matches your keywords: passage ranking") + explained.count(
        "why: Close in meaning to your keywords: passage ranking"
    ) == len(items)
    assert "TabSim" not in explained  # "ranking" alone once, 0.035 in all: no match


def test_rank_window_days_limits_papers_to_the_days_before_the_issue() -> None:
    result = run(
        "papers",
        "rank",
        "--papers",
        str(EXAMPLES),
        "--date",
        "2024-03-14",
        "--window-days",
        "1",
        "--top",
        "100",
        "--json",
    )
    items = json.loads(result.stdout)
    assert items and all(i["published"].startswith("2024-03-14") for i in items)


def test_rank_warns_about_skipped_records_on_stderr(tmp_path: Path) -> None:
    result = run(
        "papers", "rank", "--papers", str(FIXTURES / "papers.jsonl"), "--date", "2024-03-14", "--json"
    )
    assert result.exit_code == 0
    warnings = result.stderr.splitlines()
    assert len(warnings) == 4
    assert warnings[0].startswith(f"Warning: {FIXTURES / 'papers.jsonl'}:4: ")
    assert json.loads(result.stdout)  # stdout stays pure JSON


def test_rank_of_a_file_in_no_known_format_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.json"
    bad.write_text("hello")
    result = run("papers", "rank", "--papers", str(bad))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {bad} is in no known papers format")
    assert len(result.stderr.strip().splitlines()) == 1


def test_fetch_hf_writes_json_lines_that_rank_can_read(server: RecordedServer, tmp_path: Path) -> None:
    server.queue("/api/daily_papers", fixture("hf_daily_2024-03-14_p0.json"))
    out = tmp_path / "fetched" / "hf.jsonl"
    result = run(
        "papers", "fetch", "--source", "hf", "--date", "2024-03-14", "--base-url", server.url, "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    assert "Fetched 2 papers in 1 requests" in result.stderr
    assert server.requests[0][1]["date"] == "2024-03-14"
    papers = load_papers([out]).papers
    assert [p.id for p in papers] == ["2403.08213", "2403.07987"]
    assert papers[0].upvotes == 42


def test_fetch_arxiv_prints_json_lines_to_stdout(server: RecordedServer) -> None:
    server.queue("/api/query", fixture("arxiv_api_page0.xml"))
    result = run("papers", "fetch", "--source", "arxiv", "--query", "abs:diffusion", "--base-url", server.url)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["2403.08213", "2403.08120"]


def test_fetch_refused_by_the_server_is_a_one_line_error(server: RecordedServer) -> None:
    server.queue("/api/daily_papers", (400, {}, b'{"error": "invalid date"}'))
    result = run("papers", "fetch", "--source", "hf", "--date", "2024-03-14", "--base-url", server.url)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: the server answered HTTP 400")


def test_fetch_with_both_date_and_week_is_bad_usage() -> None:
    result = run("papers", "fetch", "--source", "hf", "--date", "2024-03-14", "--week", "2024-W11")
    assert result.exit_code == 2
    assert "not both" in result.stderr


def test_fetch_hf_without_a_date_or_week_is_bad_usage() -> None:
    result = run("papers", "fetch", "--source", "hf")
    assert result.exit_code == 2
    assert "--date" in result.stderr


def test_papers_commands_have_help_with_an_example() -> None:
    for command in ("rank", "fetch"):
        result = run("papers", command, "--help")
        assert result.exit_code == 0
        assert "Example: newsletter papers " + command in result.stdout
