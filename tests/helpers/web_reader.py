"""A reader joining through a real `serve` over HTTP: the form, the mail, the confirm button."""

from __future__ import annotations

import re
import time
from email.message import EmailMessage
from pathlib import Path

import httpx

from helpers.signup_site import link_in, outbox


def form_fields(html: str) -> dict[str, str]:
    """The hidden and filled fields of the first form on a page."""
    return dict(re.findall(r'name="(\w+)" value="([^"]*)"', html))


def mail_to(root: Path, address: str) -> EmailMessage:
    """The newest message to `address` in the outbox, waiting for it: serve mails after it answers."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            found = [m for m in outbox(root) if address in str(m["To"])]
        except FileNotFoundError:  # the outbox is being made: its new/ is there, its cur/ not yet
            found = []
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"no mail to {address} in {root / 'outbox'}")


def sign_up_and_confirm(browser: httpx.Client, root: Path, email: str, name: str, keywords: str) -> None:
    """Fill in /subscribe as a browser does, then press the button behind the mailed confirm link."""
    fields = form_fields(browser.get("/subscribe").text)
    fields |= {"email": email, "name": name, "keywords": keywords, "frequency": "weekly"}
    assert browser.post("/subscribe", data=fields).status_code == 200
    confirm = link_in(mail_to(root, email), "/confirm")
    assert browser.post("/confirm", data=form_fields(browser.get(confirm).text)).status_code == 200
