"""Sources named in settings: `send` and `preview` fetch an issue's papers once, from a local mirror."""

from __future__ import annotations

import email
import email.policy
import json
import mailbox
import stat
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers.http_servers import LocalHttpServer, Reply

from newsletter.cli import main
from newsletter.subscribers import SubscriberStore

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sources"
WINDOW = [f"2024-03-{day:02d}" for day in range(8, 15)]  # the 7 days ending on the issue date


class PapersMirror(LocalHttpServer):
    """A local stand-in for huggingface.co and export.arxiv.org that counts what it is asked."""

    def __init__(self) -> None:
        self.mode = "recorded"  # or "empty", or "missing"
        super().__init__(self.answer)

    def answer(self, path: str, query: dict[str, str]) -> Reply:
        if self.mode == "missing":
            return 404, {}, b"not found"
        if path == "/api/daily_papers":
            recorded = EXAMPLES / f"daily_papers_{query.get('date')}.json"
            if self.mode == "empty" or not recorded.is_file() or query.get("p", "0") != "0":
                return 200, {}, b"[]"
            return 200, {}, recorded.read_bytes()
        if path == "/api/query":
            return 200, {}, (FIXTURES / "arxiv_api_page0.xml").read_bytes()
        return 404, {}, b"not found"

    def days_asked(self) -> list[str]:
        return sorted(q["date"] for p, q in self.requests if p == "/api/daily_papers")


@pytest.fixture
def mirror() -> Iterator[PapersMirror]:
    server = PapersMirror()
    server.start()
    yield server
    server.stop()


def use_sources(project: Path, mirror: PapersMirror, *sources: str) -> None:
    """Replace the shipped `papers` with [[sources]] pointing at the mirror, as a deployment would."""
    config = project / "newsletter.toml"
    text = config.read_text(encoding="utf-8")
    assert 'papers = ["examples/"]' in text
    text = text.replace('papers = ["examples/"]', "papers = []")
    for kind in sources:
        query = 'query = "abs:diffusion"\n' if kind == "arxiv" else ""
        text += f'\n[[sources]]\nkind = "{kind}"\n{query}base_url = "{mirror.url}"\n'
    config.write_text(text, encoding="utf-8")


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def outbox_messages(project: Path) -> list[EmailMessage]:
    box = mailbox.Maildir(project / "outbox", create=False)
    return [email.message_from_bytes(box.get_bytes(k), policy=email.policy.default) for k in box.iterkeys()]


def active_count(project: Path) -> int:
    return sum(1 for s in SubscriberStore(project / "subscribers" / "example.csv").read() if s.is_active)


def jsonl_ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()]


def test_send_fetches_each_day_of_the_issue_window_and_caches_the_papers(
    project: Path,
    mirror: PapersMirror,
) -> None:
    use_sources(project, mirror, "hf")

    result = run("send", "--json")

    assert result.exit_code == 0, result.output
    assert mirror.days_asked() == WINDOW
    cached = project / "papers-cache" / "2024-W11" / "00-hf.jsonl"
    recorded_ids = {
        r["paper"]["id"]
        for day in WINDOW
        for r in json.loads((EXAMPLES / f"daily_papers_{day}.json").read_text(encoding="utf-8"))
    }
    assert set(jsonl_ids(cached)) == recorded_ids
    # The cache is the owner's alone, whatever the umask (issue 12, item 11).
    modes = [stat.S_IMODE(p.stat().st_mode) for p in (cached, cached.parent, cached.parent.parent)]
    assert modes == [0o600, 0o700, 0o700]
    assert json.loads(result.stdout)["sent"] == active_count(project)
    assert len(outbox_messages(project)) == active_count(project)


def test_second_run_of_the_same_issue_reuses_the_cache_without_fetching(
    project: Path,
    mirror: PapersMirror,
) -> None:
    use_sources(project, mirror, "hf")
    first = run("preview", "--out", "preview")
    assert first.exit_code == 0, first.output
    asked = len(mirror.requests)
    cached = project / "papers-cache" / "2024-W11" / "00-hf.jsonl"
    before = cached.read_bytes()

    again = run("preview", "--out", "preview")
    sent = run("send")

    assert again.exit_code == 0 and sent.exit_code == 0, again.output + sent.output
    assert len(mirror.requests) == asked == len(WINDOW)
    assert cached.read_bytes() == before
    assert len(outbox_messages(project)) == active_count(project)


def test_preview_and_send_of_the_same_issue_pick_from_the_same_papers(
    project: Path,
    mirror: PapersMirror,
) -> None:
    use_sources(project, mirror, "hf")
    run("preview", "--out", "preview")
    cached = project / "papers-cache" / "2024-W11" / "00-hf.jsonl"
    # What a resumed run must see is the cached file, even if the live feed changed meanwhile.
    kept = cached.read_text(encoding="utf-8").splitlines()[:3]
    cached.write_text("\n".join(kept) + "\n", encoding="utf-8")

    ranked = run("papers", "rank", "--papers", str(cached), "--date", "2024-03-14", "--json")
    result = run("preview", "--out", "preview")

    assert result.exit_code == 0, result.output
    assert len(json.loads(ranked.stdout)) == 3
    assert "3 papers" in result.stdout


def test_empty_answer_is_not_cached_so_the_next_run_fetches_again(
    project: Path,
    mirror: PapersMirror,
) -> None:
    use_sources(project, mirror, "hf")
    mirror.mode = "empty"

    first = run("preview", "--out", "preview")

    assert first.exit_code == 1
    assert "source 1 (hf) returned no papers for 2024-W11" in first.output
    assert "Error: the configured sources returned no papers for 2024-W11" in first.output
    assert not (project / "papers-cache" / "2024-W11" / "00-hf.jsonl").exists()
    assert mirror.days_asked() == WINDOW

    mirror.mode = "recorded"
    second = run("preview", "--out", "preview")

    assert second.exit_code == 0, second.output
    assert mirror.days_asked() == sorted(WINDOW * 2)
    assert (project / "papers-cache" / "2024-W11" / "00-hf.jsonl").is_file()


def test_unreachable_source_stops_send_with_a_one_line_error_and_sends_nothing(
    project: Path,
    mirror: PapersMirror,
) -> None:
    use_sources(project, mirror, "hf")
    mirror.mode = "missing"

    result = run("send")

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.startswith("Error: ") and "HTTP 404" in result.output
    assert f"{mirror.url}/api/daily_papers" in result.output
    assert not (project / "outbox").exists() or outbox_messages(project) == []
    assert (
        not (project / "papers-cache" / "2024-W11").exists()
        or list((project / "papers-cache" / "2024-W11").iterdir()) == []
    )


def test_papers_option_overrides_the_configured_sources(project: Path, mirror: PapersMirror) -> None:
    use_sources(project, mirror, "hf")

    result = run("send", "--papers", "examples/")

    assert result.exit_code == 0, result.output
    assert mirror.requests == []
    assert not (project / "papers-cache").exists()


def test_each_source_gets_its_own_numbered_cache_file(project: Path, mirror: PapersMirror) -> None:
    use_sources(project, mirror, "hf", "arxiv")

    result = run("preview", "--out", "preview")

    assert result.exit_code == 0, result.output
    folder = project / "papers-cache" / "2024-W11"
    assert sorted(p.name for p in folder.iterdir()) == ["00-hf.jsonl", "01-arxiv.jsonl"]
    assert jsonl_ids(folder / "01-arxiv.jsonl")[0] == "2403.08213"
    arxiv_asked = [q for p, q in mirror.requests if p == "/api/query"]
    assert len(arxiv_asked) == 1
    assert "abs:diffusion" in arxiv_asked[0]["search_query"]
    assert "submittedDate:[202403080000 TO 202403142359]" in arxiv_asked[0]["search_query"]


def test_another_issue_fetches_its_own_window(project: Path, mirror: PapersMirror) -> None:
    use_sources(project, mirror, "hf")
    run("preview", "--out", "preview")

    result = run("preview", "--out", "preview", "--date", "2024-03-10")

    assert result.exit_code == 0, result.output
    assert (project / "papers-cache" / "2024-W10" / "00-hf.jsonl").is_file()
    assert mirror.days_asked() == sorted(WINDOW + [f"2024-03-{d:02d}" for d in range(4, 11)])


def view_in_browser_links(message: EmailMessage) -> tuple[str, str]:
    html, text = message.get_body(("html",)), message.get_body(("plain",))
    assert html is not None and text is not None
    return html.get_content(), text.get_content()


def test_email_links_to_its_archive_page_when_base_url_is_set(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "https://papers.example.org/")

    result = run("send")

    assert result.exit_code == 0, result.output
    page = "https://papers.example.org/archive/2024-W11.html"
    for message in outbox_messages(project):
        html, text = view_in_browser_links(message)
        assert f'<a href="{page}"' in html and "View in browser" in html
        assert f"View in browser: {page}" in text


def test_email_has_no_view_in_browser_link_without_base_url(project: Path) -> None:
    result = run("send")

    assert result.exit_code == 0, result.output
    for message in outbox_messages(project):
        html, text = view_in_browser_links(message)
        assert "View in browser" not in html and "View in browser" not in text


def test_cron_line_archive_then_send_fetches_the_issue_once(project: Path, mirror: PapersMirror) -> None:
    use_sources(project, mirror, "hf")

    archived = run("archive", "--date", "2024-03-14")
    sent = run("send", "--date", "2024-03-14")

    assert archived.exit_code == 0 and sent.exit_code == 0, archived.output + sent.output
    assert mirror.days_asked() == WINDOW
    snapshot = json.loads((project / "archive" / "issues" / "2024-W11.json").read_text(encoding="utf-8"))
    cached = set(jsonl_ids(project / "papers-cache" / "2024-W11" / "00-hf.jsonl"))
    assert snapshot["papers"] and {p["id"] for p in snapshot["papers"]} <= cached
