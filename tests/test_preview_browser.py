"""The preview page in a real browser (Debian's chromium via chromedriver): pick, see, edit, see again."""

from __future__ import annotations

import os
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers.browser import CHROMEDRIVER, CHROMIUM, needs_chromedriver
from helpers.preview_owner import OWNER_TOKEN, serving_preview
from helpers.smtp_servers import LoopbackServer, RecordingHandler

from newsletter.preview.session import PreviewSession
from newsletter.settings import load_settings

pytestmark = needs_chromedriver
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402 -- after importorskip
from selenium.webdriver.chrome.service import Service  # noqa: E402 -- only once selenium is known to be there
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

if TYPE_CHECKING:
    from selenium.webdriver import Chrome

WAIT_SECONDS = 20
# Null-safe: while a frame is redrawn its document has no body for a moment, and a wait must
# read that as "not yet", not fail on it.
FRAME = "document.querySelector('iframe.digest[data-scheme=\"light\"]')?.contentDocument"
FRAME_TEXT = f"return ({FRAME}?.body?.innerText ?? '')"
FITS = "return document.documentElement.scrollWidth <= document.documentElement.clientWidth"
RED = "rgb(179, 38, 30)"  # --bad, the colour of errors on the page
# Each digest frame on show: its scheme, left, top and width in the page, and its document's width.
SHOWN_FRAMES = """
return [...document.querySelectorAll('iframe.digest')].filter(f => f.checkVisibility()).map(f => {
  const box = f.getBoundingClientRect(), inside = f.contentDocument.documentElement.clientWidth;
  return [f.dataset.scheme, box.left, box.top + scrollY, box.width, inside];
});
"""
SHOTS = os.environ.get("SCREENSHOTS")  # a folder to keep the screenshots in, to look at them


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chrome]:
    """One Chromium for the module: starting it is the slow part."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1600,1400",
        "--hide-scrollbars",
    ):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(project: Path, browser: Chrome) -> Iterator[Chrome]:
    with serving_preview(PreviewSession(load_settings(project / "newsletter.toml")), watch=True) as base:
        browser.get(f"{base}/?token={OWNER_TOKEN}")  # as the owner opens the printed address
        yield browser


def wait_for(driver: Chrome, script: str, what: str) -> object:
    """Wait until a JavaScript expression is truthy (the browser is what waits, not the server)."""
    return WebDriverWait(driver, WAIT_SECONDS).until(lambda d: d.execute_script(script), message=what)


def click(driver: Chrome, selector: str) -> None:
    """A real click; the list may be redrawn between finding and clicking, so find it again then."""

    def clicked(d: Chrome) -> bool:
        d.find_element(By.CSS_SELECTOR, selector).click()
        return True

    WebDriverWait(driver, WAIT_SECONDS, ignored_exceptions=(StaleElementReferenceException,)).until(clicked)


def frame_text(driver: Chrome) -> str:
    return str(driver.execute_script(FRAME_TEXT) or "")


def shoot(driver: Chrome, name: str) -> None:
    """A screenshot to look at, when SCREENSHOTS names a folder."""
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(SHOTS) / f"{name}.png"))


def at_width(driver: Chrome, width: int) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 1000, "deviceScaleFactor": 1, "mobile": width < 500},
    )


def save(project: Path, name: str, edit: tuple[str, str]) -> None:
    path = project / "templates" / name
    text = path.read_text(encoding="utf-8")
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1], 1), encoding="utf-8")


def test_pick_a_reader_see_their_papers_then_template_edits_show_without_reloading(
    page: Chrome, project: Path, tmp_path: Path
) -> None:
    wait_for(page, "return document.querySelectorAll('#readers button').length > 1", "the reader list")
    search = page.find_element(By.ID, "search")
    search.send_keys("music generation")
    wait_for(page, "return document.querySelectorAll('#readers button').length === 3", "search results")
    click(page, '#readers button[data-email="alice@example.org"]')
    shown = "return document.getElementById('status').textContent.includes('alice@example.org')"
    wait_for(page, shown, "alice's digest")
    assert len(page.find_elements(By.CSS_SELECTOR, "#papers li")) == 10
    titles = page.execute_script(
        "return [...document.querySelectorAll('#papers li')].map(li => li.textContent)"
    )
    assert titles[0].startswith("GETMusic")
    wait_for(page, f"{FRAME_TEXT}.includes('Hi Alice,')", "alice's digest in the frame")
    assert titles[0][:30] in frame_text(page)
    page.save_screenshot(str(tmp_path / "picked.png"))

    page.execute_script("window.notReloaded = true")
    save(project, "digest.html", ("Hi {{ subscriber.name }},", "Howdy {{ subscriber.name }},"))
    wait_for(page, f"{FRAME_TEXT}.includes('Howdy Alice,')", "the edited template on the page")
    assert page.execute_script("return window.notReloaded") is True

    css = project / "templates" / "style.css"
    css.write_text(
        css.read_text(encoding="utf-8") + "\n.masthead-title { letter-spacing: 7px; }\n", encoding="utf-8"
    )
    spacing = (
        f"const title = {FRAME}?.querySelector('.masthead-title');"
        " return !!title && getComputedStyle(title).letterSpacing === '7px'"
    )
    wait_for(page, spacing, "the edited CSS on the page")

    save(project, "paper.html", ("{{ paper.title }}", "{{ paper.title }"))
    wait_for(page, "return !document.getElementById('error').hidden", "the template error on the page")
    error = page.find_element(By.ID, "error").text
    assert "paper.html:" in error and "template syntax error" in error
    assert page.find_elements(By.CSS_SELECTOR, "#error li.here")
    # The excerpt's long template lines scroll inside the panel; the page does not grow sideways.
    for width in (1280, 375):
        at_width(page, width)
        assert page.execute_script(FITS), f"the error panel is wider than the page at {width}px"
        shoot(page, f"preview-error-{width}")
    page.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    dot = "return getComputedStyle(document.getElementById('status'), '::before').color"
    assert page.execute_script(dot) == RED, "the status dot beside 'error' is not red"

    save(project, "paper.html", ("{{ paper.title }", "{{ paper.title }}"))
    wait_for(page, "return document.getElementById('error').hidden", "the error gone after the fix")
    assert "Howdy Alice," in frame_text(page)
    assert page.execute_script("return window.notReloaded") is True


def test_one_width_in_two_frames_then_a_switch_shows_another(page: Chrome) -> None:
    at_width(page, 1280)
    frames = "[...document.querySelectorAll('iframe.digest')]"
    drawn = f"return {frames}.every(f => f.contentDocument?.querySelector('.container'))"
    wait_for(page, drawn, "the digest in its frames")
    shown = page.execute_script(SHOWN_FRAMES)
    assert [frame[0] for frame in shown] == ["light", "dark"]
    assert all(width == 375 for _, _, _, width, _ in shown)
    assert shown[0][2] == shown[1][2] < 1000, "the two frames side by side, on the first screen"
    shoot(page, "preview-1280")
    if SHOTS:  # the page's own dark colours, to look at
        dark = {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
        page.execute_cdp_cmd("Emulation.setEmulatedMedia", dark)
        shoot(page, "preview-1280-dark")
        page.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})

    click(page, ".view button[data-width='600']")
    click(page, ".view button[data-scheme='dark']")
    [(scheme, _, top, width, inside)] = page.execute_script(SHOWN_FRAMES)
    assert (scheme, width, inside) == ("dark", 600, 600 - 2)  # less the frame's border
    assert top < 1000 and "width=600" in page.current_url and "scheme=dark" in page.current_url
    shoot(page, "preview-600-dark")

    click(page, ".view button[data-width='full']")
    click(page, ".view button[data-scheme='both']")
    full = page.execute_script(SHOWN_FRAMES)
    assert len(full) == 2 and all(width > 600 for _, _, _, width, _ in full)

    at_width(page, 375)
    assert page.execute_script(FITS), "the preview page is wider than a phone"
    shoot(page, "preview-phone")
    page.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_dark_frames_are_dark_and_light_frames_light(page: Chrome) -> None:
    wait_for(page, "return document.querySelectorAll('#papers li').length > 0", "the digest")
    drawn = (
        "const frames = [...document.querySelectorAll('iframe.digest')];"
        " return frames.length > 0 && frames.every(f => f.contentDocument?.querySelector('.container'))"
    )
    wait_for(page, drawn, "every frame drawn")
    backgrounds = page.execute_script(
        "return [...document.querySelectorAll('iframe.digest')].map(f => [f.dataset.scheme,"
        " getComputedStyle(f.contentDocument.querySelector('.container')).backgroundColor])"
    )
    colours = {scheme: {bg for s, bg in backgrounds if s == scheme} for scheme in ("light", "dark")}
    assert colours["light"] == {"rgb(255, 255, 255)"}, backgrounds
    assert colours["dark"] == {"rgb(31, 41, 51)"}, backgrounds  # #1f2933 from style.css's dark rules


def test_send_me_this_from_the_page_delivers_the_shown_digest(
    project: Path, browser: Chrome, tmp_path: Path
) -> None:
    with LoopbackServer(RecordingHandler()) as smtp:
        config = project / "newsletter.toml"
        text = config.read_text().replace('host = "embedded"', f'host = "127.0.0.1"\nport = {smtp.port}')
        text += '\n[preview]\nsend_to = ["designer@example.net"]\n'
        config.write_text(text.replace("port = 587\n", ""))
        with serving_preview(PreviewSession(load_settings(config))) as base:
            browser.get(f"{base}/?token={OWNER_TOKEN}")
            wait_for(browser, "return !document.getElementById('sendbutton').disabled", "the send form")
            click(browser, '#readers button[data-email="alice@example.org"]')
            wait_for(browser, f"{FRAME_TEXT}.includes('Hi Alice,')", "alice's digest in the frame")
            first_title = browser.execute_script("return document.querySelector('#papers li').textContent")
            browser.find_element(By.ID, "sendto").send_keys("designer@example.net")
            click(browser, "#sendbutton")
            done = "return document.getElementById('sendresult').className === 'good'"
            wait_for(browser, done, "the page saying the copy was sent")
            browser.save_screenshot(str(tmp_path / "sent.png"))
        received = smtp.handler.received
        assert [r.recipient for r in received] == ["designer@example.net"]
        sent = message_from_bytes(received[0].data, policy=policy.default)
        assert sent["To"] == "designer@example.net"
        plain = sent.get_body(("plain",))
        assert plain is not None
        # Alice's papers, as `send --to` sends them: addressed to the designer under no one's name.
        text = " ".join(plain.get_content().split())
        assert first_title[:30] in text and "Hello," in text and "Alice" not in text
        assert not (project / "newsletter.db").exists()  # a test copy is never recorded
