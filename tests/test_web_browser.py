"""A real browser on a real `serve`: sign up, confirm from the outbox, tune, get the issue, leave."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import uvicorn
from helpers.browser import CHROMEDRIVER as DRIVER
from helpers.browser import CHROMIUM, needs_chromedriver
from helpers.lists import store_of
from helpers.signup_site import make_site, outbox, text_part

from newsletter.mail.tokens import Purpose, TokenSigner, purpose_url
from newsletter.pipeline.issue import prepare_issue
from newsletter.pipeline.send import SendOptions, run_send
from newsletter.settings import Settings
from newsletter.statuses import SubscriberStatus
from newsletter.web.app import create_app
from newsletter.web.archive import build_site, snapshot_issue

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = needs_chromedriver
SHOTS = os.environ.get("SCREENSHOTS")  # a folder to keep the screenshots in, to look at them


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Settings, str]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = make_site(tmp_path, base_url=base_url)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.02)
    yield settings, base_url
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,1400"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    yield driver
    driver.quit()


def look(driver: WebDriver, name: str) -> None:
    """Screenshots at desktop and phone width; on a phone the page must not scroll sideways."""
    for width in (1100, 375):
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 1400, "deviceScaleFactor": 1, "mobile": width < 500},
        )
        scroll = driver.execute_script("return document.documentElement.scrollWidth")
        assert scroll <= width, f"{name} scrolls sideways at {width}px ({scroll}px wide)"
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            for scheme in ("light", "dark"):
                media = {"features": [{"name": "prefers-color-scheme", "value": scheme}]}
                driver.execute_cdp_cmd("Emulation.setEmulatedMedia", media)
                driver.save_screenshot(str(Path(SHOTS) / f"{name}-{width}-{scheme}.png"))
            driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def heading(driver: WebDriver) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.TAG_NAME, "h1").text)


NEW_PAGE = "return window.__oldPage === undefined && document.readyState === 'complete'"


def submit(driver: WebDriver, selector: str) -> None:
    """Press a button and wait until the page it posts to has loaded.

    The old page is marked first and the wait is for a loaded document without the mark. Asking
    an element of the old page whether it went stale races with the navigation: chromedriver
    then sometimes answers "Node with given id does not belong to the document" instead.
    """
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    driver.execute_script("window.__oldPage = true")
    driver.find_element(By.CSS_SELECTOR, selector).click()
    WebDriverWait(driver, 20, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script(NEW_PAGE), message=f"the page {selector} posts to"
    )


def link(message: EmailMessage, path: str) -> str:
    found = re.search(rf"https?://\S+{re.escape(path)}\?t=[\w-]+", text_part(message))
    assert found, text_part(message)
    return found.group(0)


def test_a_reader_signs_up_confirms_tunes_gets_the_issue_and_leaves(
    site: tuple[Settings, str], browser: WebDriver
) -> None:
    from selenium.webdriver.common.by import By

    settings, base_url = site
    driver = browser
    root = settings.config_dir
    reader = "grace@example.org"

    driver.get(f"{base_url}/subscribe?list=news")
    assert heading(driver) == "Subscribe to Lab Papers"
    look(driver, "1-subscribe")
    find = driver.find_element
    find(By.ID, "email").send_keys(reader)
    find(By.ID, "name").send_keys("Grace Hopper")
    find(By.ID, "keywords").send_keys("image generation")  # matches papers of the sample week
    find(By.CSS_SELECTOR, "input[name=frequency][value=weekly]").click()
    submit(driver, "button[type=submit]")
    assert heading(driver) == "Check your inbox"
    look(driver, "2-check-inbox")
    row = store_of(settings.list_path("news")).get(reader)
    assert row is not None and row.status is SubscriberStatus.PENDING

    deadline = time.monotonic() + 20  # the mail leaves right after the page is answered
    while not outbox(root) and time.monotonic() < deadline:
        time.sleep(0.05)
    [confirmation] = outbox(root)
    driver.get(link(confirmation, "/confirm"))
    assert heading(driver) == "Confirm your subscription"
    look(driver, "3-confirm")
    submit(driver, "button[type=submit]")
    assert heading(driver) == "You\u2019re subscribed"
    assert find(By.TAG_NAME, "main").text.lower().count("subscribed") == 1
    first_titles = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".paper h3")]
    assert first_titles, "the papers this week's issue would have sent"
    look(driver, "4-subscribed")

    keywords = find(By.ID, "keywords")
    keywords.clear()
    keywords.send_keys("reinforcement learning")
    submit(driver, "button[value=save]")
    assert "Saved" in find(By.CSS_SELECTOR, ".ok").text
    new_titles = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".paper h3")]
    assert new_titles and new_titles != first_titles
    look(driver, "5-manage-saved")
    driver.get(link(confirmation, "/confirm"))  # the confirmation mail's link, clicked again
    assert heading(driver) == "Already confirmed" and not driver.find_elements(By.TAG_NAME, "button")
    look(driver, "5b-already-confirmed")

    report = run_send(settings, SendOptions(list_name="news"))
    assert report.sent >= 1
    [digest] = [m for m in outbox(root) if m["To"].addresses[0].addr_spec == reader and m["List-Id"]]
    body = text_part(digest)
    assert new_titles[0].split(":")[0][:30] in " ".join(body.split())
    assert "reinforcement learning" in body

    driver.get(link(digest, "/manage"))
    assert heading(driver) == "Your subscription"
    assert find(By.ID, "keywords").get_attribute("value") == "reinforcement learning"

    driver.get(link(digest, "/unsubscribe"))
    look(driver, "6-unsubscribe")
    submit(driver, "button[type=submit]")
    assert heading(driver) == "Unsubscribed"
    assert not store_of(settings.list_path("news")).is_active(reader)


LOOK = """
const style = (selector, property) => {
  const found = document.querySelector(selector);
  return found ? getComputedStyle(found)[property] : null;
};
const text = (selector) => document.querySelector(selector) && document.querySelector(selector).textContent;
return [style("body", "backgroundColor"), style(".box", "backgroundColor"), style(".box", "maxWidth"),
        style(".masthead", "color"), style("h1", "fontSize"), style("h1", "fontFamily"),
        style(".footer", "color"), text(".footer"), text(".masthead")];
"""


def test_feedback_invalid_link_and_missing_pages_look_like_the_sign_up_page(
    site: tuple[Settings, str], browser: WebDriver
) -> None:
    settings, base_url = site
    driver = browser
    signer = TokenSigner(str(settings.secret))
    feedback = purpose_url(signer, base_url, Purpose.FEEDBACK, "news", "alice@example.org", item="2403.00001")
    from selenium.webdriver.common.by import By

    driver.get(purpose_url(signer, base_url, Purpose.UNSUBSCRIBE, "news", "alice@example.org"))
    unsubscribe_colour = driver.find_element(By.CSS_SELECTOR, "button.danger").value_of_css_property(
        "background-color"
    )
    driver.get(f"{base_url}/subscribe?list=news")
    sign_up = driver.execute_script(LOOK)
    assert sign_up[-1] == "Lab Papers" and None not in sign_up
    assert "Lab Papers" in sign_up[-2], "the footer names the sender"
    pages = {
        "7-feedback": (f"{feedback}&v=less", "Fewer papers like this one?"),
        "7-feedback-more": (f"{feedback}&v=more", "More papers like this one?"),
        "8-link-not-valid": (f"{base_url}/unsubscribe?t=forged", "Link not valid"),
        "9-incomplete-link": (f"{base_url}/unsubscribe?list=news", "Incomplete link"),
        "10-page-not-found": (f"{base_url}/no-such-page", "Page not found"),
    }
    for name, (url, title) in pages.items():
        driver.get(url)
        assert heading(driver) == title
        assert driver.execute_script(LOOK) == sign_up, f"{name} does not look like the sign-up page"
        look(driver, name)
        if name.startswith("7-feedback"):
            button = driver.find_element(By.CSS_SELECTOR, "button[type=submit]")
            assert button.value_of_css_property("background-color") != unsubscribe_colour, (
                f"{name}'s button has the unsubscribe button's colour"
            )


# How many lines the text `2024-W11` of the page's h1 is laid out on.
ISSUE_ID_LINES = """
const walker = document.createTreeWalker(document.querySelector("h1"), NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  const at = node.textContent.indexOf(arguments[0]);
  if (at < 0) continue;
  const range = document.createRange();
  range.setStart(node, at);
  range.setEnd(node, at + arguments[0].length);
  return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;
}
return 0;
"""


def test_home_and_archive_pages_fit_a_phone_and_lead_to_each_other(
    site: tuple[Settings, str], browser: WebDriver
) -> None:
    from selenium.webdriver.common.by import By

    settings, base_url = site
    driver = browser
    snapshot_issue(settings, prepare_issue(settings, require_papers=True))
    build_site(settings)

    driver.get(f"{base_url}/")
    assert heading(driver) == "Subscribe to Lab Papers"
    assert driver.find_elements(By.ID, "email")
    look(driver, "11-home")
    driver.find_element(By.PARTIAL_LINK_TEXT, "past issues").click()
    look(driver, "12-archive-index")
    driver.find_element(By.LINK_TEXT, "2024-W11").click()
    look(driver, "13-archive-issue")
    for width in range(240, 420, 4):  # wherever the line ends, the issue id is never cut at its hyphen
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": True},
        )
        assert driver.execute_script(ISSUE_ID_LINES, "2024-W11") == 1, f"2024-W11 wraps at {width}px"
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    driver.find_element(By.LINK_TEXT, "Get it by email").click()
    assert heading(driver) == "Subscribe to Lab Papers"
