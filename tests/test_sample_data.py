"""The shipped sample data: examples/daily_papers_*.json and subscribers/example.csv."""

from __future__ import annotations

import csv
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from newsletter.statuses import Frequency
from newsletter.text import split_keywords

REPO_ROOT = Path(__file__).resolve().parents[1]
SEED = REPO_ROOT.parent / "shared/seed/daily-papers-page.txt"
EXAMPLES = REPO_ROOT / "examples"
SCRIPT = REPO_ROOT / "tools/build_sample_data.py"
SUBSCRIBERS = REPO_ROOT / "subscribers/example.csv"

FIRST_DAY = dt.date(2024, 3, 8)
LAST_DAY = dt.date(2024, 3, 14)
EXPECTED_PAPERS = 69


def example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("daily_papers_*.json"))


def load_records() -> dict[Path, list[dict[str, Any]]]:
    return {path: json.loads(path.read_text(encoding="utf-8")) for path in example_files()}


def all_records() -> list[dict[str, Any]]:
    return [record for records in load_records().values() for record in records]


def seed_pairs() -> list[tuple[str, str]]:
    """Title/abstract pairs read straight from the seed, independently of the build script."""
    if not SEED.is_file():
        pytest.skip(f"seed file not present: {SEED}")
    lines = SEED.read_text(encoding="utf-8").split("\n")
    body = [line for line in lines[lines.index("Mar 14") + 1 :] if line.strip()]
    return list(zip(body[0::2], body[1::2], strict=False))


def run_script(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_examples_hold_69_distinct_papers() -> None:
    records = all_records()
    assert len(records) == EXPECTED_PAPERS
    assert len({r["paper"]["id"] for r in records}) == EXPECTED_PAPERS
    assert len({r["title"] for r in records}) == EXPECTED_PAPERS


def test_records_have_the_daily_papers_api_shape() -> None:
    for record in all_records():
        assert set(record) == {"paper", "publishedAt", "title", "summary", "numComments", "thumbnail"}
        paper = record["paper"]
        assert {"id", "title", "summary", "authors", "publishedAt", "upvotes", "ai_keywords"} <= set(paper)
        assert set(paper) <= {
            "id",
            "title",
            "summary",
            "authors",
            "publishedAt",
            "upvotes",
            "ai_summary",
            "ai_keywords",
            "githubRepo",
        }
        assert paper["title"] == record["title"]
        assert paper["summary"] == record["summary"]
        assert paper["authors"] == [] and paper["ai_keywords"] == []
        assert paper["id"].startswith("sample-") and len(paper["id"]) == len("sample-") + 10
        assert isinstance(paper["upvotes"], int) and 0 <= paper["upvotes"] <= 120
        assert record["numComments"] == 0 and record["thumbnail"] == ""
        if "githubRepo" in paper:
            assert paper["githubRepo"].startswith("https://github.com/")
            assert not paper["githubRepo"].endswith((".", "/"))


def test_titles_and_abstracts_are_verbatim_from_the_seed() -> None:
    pairs = seed_pairs()
    assert len(pairs) == EXPECTED_PAPERS
    seed = set(pairs)
    for record in all_records():
        assert (record["title"], record["summary"]) in seed, record["title"]
    assert {(r["title"], r["summary"]) for r in all_records()} == seed


def test_dates_span_the_week_and_every_day_has_papers() -> None:
    records = load_records()
    expected_days = [FIRST_DAY + dt.timedelta(days=n) for n in range(7)]
    assert [p.name for p in records] == [f"daily_papers_{d.isoformat()}.json" for d in expected_days]
    for path, day_records in records.items():
        day = dt.date.fromisoformat(path.stem.removeprefix("daily_papers_"))
        assert day_records, f"{path.name} has no papers"
        for record in day_records:
            for stamp in (record["publishedAt"], record["paper"]["publishedAt"]):
                assert stamp.endswith(".000Z")
                parsed = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
                assert parsed.date() == day
    pairs = seed_pairs() if SEED.is_file() else None
    if pairs:
        first = records[EXAMPLES / "daily_papers_2024-03-14.json"][0]
        assert first["title"] == pairs[0][0]


def test_build_script_reproduces_committed_files(tmp_path: Path) -> None:
    if not SEED.is_file():
        pytest.skip(f"seed file not present: {SEED}")
    result = run_script(SEED, "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    built = sorted(tmp_path.glob("*.json"))
    assert [p.name for p in built] == [p.name for p in example_files()]
    for path in built:
        assert path.read_bytes() == (EXAMPLES / path.name).read_bytes(), path.name


def test_build_script_uses_the_default_seed_path(tmp_path: Path) -> None:
    if not SEED.is_file():
        pytest.skip(f"seed file not present: {SEED}")
    result = run_script("--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(list(tmp_path.glob("daily_papers_*.json"))) == 7


def test_build_script_rejects_an_odd_number_of_lines(tmp_path: Path) -> None:
    seed = tmp_path / "seed.txt"
    seed.write_text("header\n\nMar 14\n\nTitle one\n\nAbstract one\n\nTitle two\n", encoding="utf-8")
    out = tmp_path / "out"
    result = run_script(seed, "--out", out)
    assert result.returncode != 0
    assert "odd number" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_subscriber_csv() -> None:
    raw = SUBSCRIBERS.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf") and b"\r" not in raw
    rows = list(csv.DictReader(raw.decode("utf-8").splitlines()))
    header = raw.decode("utf-8").split("\n", 1)[0]
    assert header == "email,name,keywords,status,subscribed_at,unsubscribed_at"
    assert 10 <= len(rows) <= 15
    assert all(r["email"].endswith(("@example.org", "@example.com")) for r in rows)
    assert len({r["email"].lower() for r in rows}) == len(rows)
    unsubscribed = [r for r in rows if r["status"] == "unsubscribed"]
    assert len(unsubscribed) == 1 and unsubscribed[0]["unsubscribed_at"]
    assert all(r["status"] == "active" and not r["unsubscribed_at"] for r in rows if r not in unsubscribed)
    assert sum(1 for r in rows if not r["keywords"].strip()) >= 2
    assert any("," in r["name"] for r in rows)
    for r in rows:
        for stamp in (r["subscribed_at"], r["unsubscribed_at"]):
            if stamp:
                parsed = dt.datetime.fromisoformat(stamp)
                assert parsed.utcoffset() == dt.timedelta(0) and stamp.endswith("+00:00")


def test_subscriber_keywords_are_topics_in_the_seed() -> None:
    if not SEED.is_file():
        pytest.skip(f"seed file not present: {SEED}")
    seed = SEED.read_text(encoding="utf-8").lower()
    rows = list(csv.DictReader(SUBSCRIBERS.read_text(encoding="utf-8").splitlines()))
    keywords = {k for r in rows for k in split_keywords(r["keywords"])}
    assert keywords
    assert [k for k in sorted(keywords) if k.lower() not in seed] == []


def test_the_sample_config_is_named_for_the_cadence_send_uses(project: Path) -> None:
    from newsletter.cli.send import send
    from newsletter.settings import load_settings

    settings = load_settings(project / "newsletter.toml")
    default = next(p.default for p in send.params if p.name == "frequency")
    for name in (settings.title, settings.sender.name):
        named = [f.value for f in Frequency if f.value in name.lower()]
        assert named in ([], [default]), f"{name!r} names {named}, but `send` sends {default} issues"
