"""A real browser (Debian's headless Chromium) lays out the preview on a phone and a desktop."""

from __future__ import annotations

import email
import email.policy
import html as html_lib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers.browser import CHROMIUM, needs_chromium
from helpers.samples import (
    UNSUBSCRIBE,
    Pick,
    alice,
    make_issue,
    make_paper,
    make_settings,
)

from newsletter.mail.notices import Notice, NoticeComposer
from newsletter.pipeline.previewfiles import build_preview
from newsletter.render.digest import DigestRenderer
from newsletter.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
pytestmark = needs_chromium
WIDTHS = (375, 800)

# Headless Chromium will not make a window narrower than 500 px, so the digest is loaded into a
# srcdoc iframe of the exact width (a same-origin viewport of its own: media queries see that
# width); the host page measures it and stores the result on <html>, where --dump-dom shows it.
HOST = """<!DOCTYPE html><html><body style="margin:0">
<iframe id="digest" style="width:WIDTHpx;height:1200px;border:0"></iframe>
<script>
var frame = document.getElementById('digest');
frame.onload = function () {
  var doc = frame.contentDocument, root = doc.documentElement;
  var out = {viewport: root.clientWidth, titles: [],
             scroll: Math.max(root.scrollWidth, doc.body.scrollWidth)};
  doc.querySelectorAll('.card-title').forEach(function (el) {
    var r = el.getBoundingClientRect();
    out.titles.push({text: el.textContent, left: r.left, right: r.right, width: r.width, height: r.height,
                     visible: el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true})});
  });
  document.documentElement.setAttribute('data-measure', JSON.stringify(out));
};
frame.srcdoc = DOCUMENT;
</script></body></html>"""


def measure(html: str, width: int, tmp_path: Path) -> dict[str, Any]:
    """Lay the page out in headless Chromium at `width` px and return the measurements."""
    assert CHROMIUM is not None  # needs_chromium skips this module without it
    page = tmp_path / f"host-{width}.html"
    document = json.dumps(html).replace("</", "<\\/")
    page.write_text(HOST.replace("WIDTH", str(width)).replace("DOCUMENT", document), encoding="utf-8")
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / f'profile-{width}'}",
        "--window-size=1000,1400",
        "--virtual-time-budget=3000",
        "--dump-dom",
        page.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    found = re.search(r'data-measure="([^"]*)"', result.stdout)
    assert found, f"no measurement in Chromium's output: {result.stderr[-2000:]}"
    measurements: dict[str, Any] = json.loads(html_lib.unescape(found.group(1)))
    return measurements


def assert_fits(html: str, titles: int, width: int, tmp_path: Path) -> None:
    data = measure(html, width, tmp_path)
    assert data["viewport"] == width
    assert data["scroll"] <= width, f"horizontal overflow at {width}px: {data['scroll']}px wide"
    assert len(data["titles"]) == titles
    for title in data["titles"]:
        assert title["visible"] and title["width"] > 0 and title["height"] > 0, title
        assert title["left"] >= 0 and title["right"] <= width, f"title cut off at {width}px: {title}"


@pytest.mark.parametrize("width", WIDTHS)
def test_sample_preview_fits_the_screen_and_shows_every_title(width: int, tmp_path: Path) -> None:
    settings = load_settings(REPO / "newsletter.toml")
    result = build_preview(settings, None, "alice@example.org", None)
    assert result.paper_ids
    assert_fits(result.digest.html, len(result.paper_ids), width, tmp_path)


@pytest.mark.parametrize("width", WIDTHS)
def test_long_unbroken_titles_and_links_still_fit(width: int, tmp_path: Path) -> None:
    long_word = "Supercalifragilistic" * 6
    picks = [
        Pick(
            make_paper(
                i,
                title=f"{long_word} diffusion models {i}",
                abstract=f"{long_word}. " * 4,
                authors=[long_word],
            ),
            1.0,
            ["diffusion models"],
        )
        for i in range(3)
    ]
    digest = DigestRenderer(make_settings(), make_issue()).render(alice(), picks, UNSUBSCRIBE + "x" * 80)
    assert_fits(digest.html, 3, width, tmp_path)


@pytest.mark.parametrize("width", WIDTHS)
def test_empty_digest_fits_the_screen(width: int, tmp_path: Path) -> None:
    digest = DigestRenderer(make_settings(), make_issue()).render(alice(), [], UNSUBSCRIBE)
    assert_fits(digest.html, 0, width, tmp_path)


@pytest.mark.parametrize(
    "notice",
    [
        Notice("reader@example.org", confirm_url="https://papers.example.org/confirm?t=" + "x" * 120),
        Notice("reader@example.org", manage_url="https://papers.example.org/manage?t=" + "y" * 120),
    ],
    ids=["confirm", "already-subscribed"],
)
def test_confirmation_mail_fits_a_phone(notice: Notice, tmp_path: Path) -> None:
    """The first mail a reader sees: fluid like the digest, never 600 px wide on a 375 px screen."""
    composed = NoticeComposer(make_settings(tmp_path)).compose(notice)
    message = email.message_from_bytes(composed.data, policy=email.policy.default)
    html_part = message.get_body(("html",))
    assert html_part is not None
    assert_fits(html_part.get_content(), 0, 375, tmp_path)


def test_the_overflow_check_catches_a_page_that_overflows(tmp_path: Path) -> None:
    html = '<!DOCTYPE html><html><body><div style="width:1000px">wide</div></body></html>'
    data = measure(html, 375, tmp_path)
    assert data["scroll"] > 375
