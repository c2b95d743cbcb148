"""The feedback page through a real server and a real browser: a visit records nothing, the button does."""

from __future__ import annotations

import html
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest
from helpers.browser import CHROMIUM
from helpers.uvicorn_thread import serving
from sqlalchemy import select

from newsletter.mail.tokens import Purpose, TokenSigner, purpose_url
from newsletter.ranking.feedback import Verdict
from newsletter.ranking.feedbackstore import FeedbackStore
from newsletter.settings import Settings
from newsletter.store.schema import feedback
from newsletter.web.app import create_app

SECRET = "feedback-server-secret-Zq7mW4xR8vB1nT6kP3yH"  # serve needs a strong one


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    (tmp_path / "subscribers").mkdir()
    return Settings(
        secret=SECRET,
        subscribers_dir=tmp_path / "subscribers",
        config_dir=tmp_path,
        database_url=database_url,
    )


@pytest.fixture
def base_url(settings: Settings) -> Iterator[str]:
    with serving(create_app(settings)) as url:
        yield url


def verdicts(store: FeedbackStore) -> list[tuple[str, ...]]:
    """Every stored verdict, remembered paper or not."""
    with store.db.read() as conn:
        rows = conn.execute(
            select(feedback.c.list, feedback.c.email, feedback.c.paper_id, feedback.c.verdict)
        )
        return [tuple(row) for row in rows]


def post(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST")) as answer:
            return int(answer.status), answer.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium; .ci/run installs it")
def test_a_browser_visit_records_nothing_and_the_pages_button_records_once(
    settings: Settings, base_url: str, tmp_path: Path
) -> None:
    signer = TokenSigner(SECRET)
    link = purpose_url(signer, base_url, Purpose.FEEDBACK, "news", "ada@example.org", item="2403.001")
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", f"{link}&v=less",
    ]  # fmt: skip
    shown = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False).stdout
    assert "Fewer papers like this one?" in shown and "<button" in shown
    assert '<main class="box">' in shown and '<p class="masthead">' in shown  # the sign-up pages' look
    store = FeedbackStore.open(settings)
    assert not verdicts(store)  # the visit changed nothing

    form = re.search(r'<form method="post" action="([^"]+)"', shown)
    assert form is not None
    action = html.unescape(form.group(1))
    status, page = post(urljoin(f"{link}&v=less", action))
    assert status == 200 and "move down" in page
    assert verdicts(store) == [("news", "ada@example.org", "2403.001", Verdict.LESS.value)]
