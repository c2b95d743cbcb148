"""`newsletter preview` writes exactly what one subscriber would get, and sends nothing."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.samples import on_screen

from newsletter.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config using the shipped sample papers and subscribers, everything else in tmp_path."""
    path = tmp_path / "newsletter.toml"
    path.write_text(
        f"""title = "Daily Papers Digest"
issue_date = 2024-03-14
papers = ["{REPO / "examples"}"]
subscribers_dir = "{REPO / "subscribers"}"
ledger = "newsletter.db"

[sender]
name = "Daily Papers Digest"
address = "digest@example.org"
postal_address = "Reading Group, 1 Example Street, Example City"
""",
        encoding="utf-8",
    )
    return path


def run(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--config", str(config), "preview", *args])
    return result.exit_code, result.output


def parts(eml: Path) -> dict[str, str]:
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message.get_content_type() == "multipart/alternative"
    # MIME bodies travel with CRLF line ends; the files keep the platform's.
    return {
        part.get_content_type(): part.get_content().replace("\r\n", "\n") for part in message.iter_parts()
    }


def test_preview_writes_html_text_and_the_full_message_for_a_subscriber(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, output = run(config, "--subscriber", "alice@example.org", "--out", str(out))
    assert code == 0, output
    html, text, eml = (out / f"alice_example.org{ext}" for ext in (".html", ".txt", ".eml"))
    assert "Issue 2024-W11 for alice@example.org: 10 papers" in output
    body = parts(eml)
    # The message's HTML part is 7bit (references for what is beyond ASCII): the same page.
    assert on_screen(body["text/html"]) == on_screen(html.read_text(encoding="utf-8"))
    assert body["text/plain"] == text.read_text(encoding="utf-8")
    assert "Hi Alice," in body["text/plain"]  # the first name, not "Hi Alice Moreau,"
    assert "diffusion models, music generation" in body["text/plain"]
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["To"] == "Alice Moreau <alice@example.org>" and message["Message-ID"]


def test_preview_without_subscriber_shows_the_top_papers_for_no_keywords(
    config: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code, output = run(config, "--out", str(out))
    assert code == 0, output
    text = (out / "preview.txt").read_text(encoding="utf-8")
    assert "the week's top papers" in text and "Hello," in text
    assert (out / "preview.html").is_file() and (out / "preview.eml").is_file()


def test_preview_of_unknown_subscriber_is_a_one_line_error(config: Path, tmp_path: Path) -> None:
    code, output = run(config, "--subscriber", "nobody@example.org", "--out", str(tmp_path / "out"))
    assert code == 1
    assert output.startswith("Error: no subscriber nobody@example.org in list 'example'")
    assert not (tmp_path / "out").exists()


def test_preview_touches_neither_ledger_nor_outbox(config: Path, tmp_path: Path) -> None:
    run(config, "--subscriber", "alice@example.org", "--out", str(tmp_path / "out"))
    assert not (tmp_path / "newsletter.db").exists() and not (tmp_path / "outbox").exists()


def test_preview_date_option_selects_the_issue(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, output = run(config, "--date", "2024-03-20", "--out", str(out))
    assert code == 0, output
    assert "Issue 2024-W12" in output


def test_preview_open_hands_the_html_file_to_the_browser(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []

    def open_in_browser(url: str, *args: object, **kwargs: object) -> bool:
        opened.append(url)
        return True

    monkeypatch.setattr("webbrowser.open", open_in_browser)
    code, output = run(config, "--out", str(tmp_path / "out"), "--open")
    assert code == 0, output
    assert opened == [(tmp_path / "out" / "preview.html").resolve().as_uri()]


def test_preview_of_a_bad_date_is_a_usage_error(config: Path) -> None:
    code, output = run(config, "--date", "14/03/2024")
    assert code == 2 and "is not a date" in output
