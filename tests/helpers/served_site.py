"""`newsletter serve` for real: the sign-up site under uvicorn with serve's own config, mail to aiosmtpd.

A test gets the site's URL, a browser-like client (it keeps the CSRF cookie) and what the SMTP
server received, so every step goes through the same sockets a reader's would.
"""

from __future__ import annotations

import contextlib
import email
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import httpx

from helpers.signup_site import field, make_site
from helpers.smtp_servers import LoopbackServer, RecordingHandler
from helpers.uvicorn_thread import serving
from newsletter.settings import Settings
from newsletter.store.subscribers import SubscriberStore
from newsletter.subscribers import open_list
from newsletter.web.app import create_app
from newsletter.web.server import ServeLimits, server_config

MAIL_WAIT = 15.0  # seconds a test waits for a mail that must arrive (never an assertion on time)


@dataclass
class ServedSite:
    """A running `serve` and its SMTP server; `client` is one reader's browser."""

    url: str
    settings: Settings
    client: httpx.Client
    smtp: RecordingHandler

    def browser(self, **headers: str) -> httpx.Client:
        """Another reader's browser (own cookies), optionally sending these headers on every request."""
        return httpx.Client(base_url=self.url, headers=headers, follow_redirects=False)

    def sign_up(
        self, address: str, *, list_name: str = "news", client: httpx.Client | None = None, **fields: str
    ) -> httpx.Response:
        """Fill in and post the sign-up form as a browser would (cookie and CSRF token)."""
        browser = client or self.client
        form = browser.get("/subscribe", params={"list": list_name}).text
        data = {
            "list": list_name,
            "csrf": field(form, "csrf"),
            "email": address,
            "name": "Ada Lovelace",
            "keywords": "diffusion models; speech",
            "frequency": "weekly",
            "website": "",
        }
        data.update(fields)
        return browser.post("/subscribe", data=data)

    def mails(self, count: int) -> list[EmailMessage]:
        """The first `count` messages the SMTP server accepted, waiting for them to arrive."""
        deadline = time.monotonic() + MAIL_WAIT
        while len(self.smtp.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        received = list(self.smtp.received)
        assert len(received) >= count, f"{len(received)} mails arrived, {count} expected"
        return [email.message_from_bytes(item.data, policy=default) for item in received]

    def mailed_to(self, address: str) -> int:
        """How many accepted messages went to `address`."""
        return sum(1 for item in list(self.smtp.received) if item.recipient == address)

    def store(self, list_name: str = "news") -> SubscriberStore:
        return open_list(self.settings.places, list_name, sync=False)


@contextlib.contextmanager
def served_site(root: Path, *, smtp: LoopbackServer | None = None, **overrides: Any) -> Iterator[ServedSite]:
    """The sign-up site of helpers.signup_site, served the way `newsletter serve` serves it."""
    server = smtp or LoopbackServer()
    owned = smtp is None
    if owned:
        server.start()
    values: dict[str, Any] = {"smtp": {"host": "127.0.0.1", "port": server.port, "security": "none"}}
    values.update(overrides)
    settings = make_site(root, **values)
    app = create_app(settings)
    for path in sorted(settings.path(settings.subscribers_dir).glob("*.csv")):
        open_list(settings.places, path.stem)  # as `serve` merges the lists kept as files before it starts
    limits = ServeLimits.from_settings(settings.serve)
    try:
        proxies = settings.serve.trusted_proxies
        config = lambda a: server_config(a, "127.0.0.1", 0, limits, trusted_proxies=proxies)  # noqa: E731
        with serving(app, config=config) as url, httpx.Client(base_url=url, follow_redirects=False) as client:
            handler = server.handler
            assert isinstance(handler, RecordingHandler)
            yield ServedSite(url, settings, client, handler)
    finally:
        if owned:
            server.stop()
