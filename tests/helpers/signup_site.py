"""A small project for the self-service tests: a list, the sample papers, an embedded outbox."""

from __future__ import annotations

import email
import mailbox
import re
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from newsletter.settings import Settings

if TYPE_CHECKING:
    from httpx2 import Response  # what Starlette's TestClient answers with
    from starlette.testclient import TestClient

REPO = Path(__file__).resolve().parents[2]
SECRET = "signup-test-secret-0123456789-0123456789"
LIST = (
    "email,name,keywords,status,subscribed_at,unsubscribed_at\n"
    "alice@example.org,Alice,diffusion models,active,2026-11-01T10:00:00+00:00,\n"
    "uma@example.org,Uma,,unsubscribed,2026-10-01T10:00:00+00:00,2026-10-20T10:00:00+00:00\n"
    "bob@example.org,Bob,,bounced,2026-10-01T10:00:00+00:00,\n"
)


def make_site(root: Path, **overrides: object) -> Settings:
    """A project folder with list `news` and the shipped sample papers (issue of 2024-03-14)."""
    folder = root / "subscribers"
    folder.mkdir(exist_ok=True)
    (folder / "news.csv").write_text(LIST, encoding="utf-8")
    values: dict[str, object] = {
        "secret": SECRET,
        "title": "Lab Papers",
        "subscribers_dir": folder,
        "papers": [REPO / "examples"],
        "issue_date": "2024-03-14",
        "default_list": "news",
        "templates_dir": REPO / "templates",
        "config_dir": root,
        "smtp": {"host": "embedded", "outbox": root / "outbox"},
        "sender": {"name": "Lab Papers", "address": "digest@example.org"},
    }
    values.update(overrides)
    return Settings.model_validate(values)


def outbox(root: Path) -> list[EmailMessage]:
    """Every message filed in the site's outbox, oldest first."""
    folder = root / "outbox"
    if not folder.exists():
        return []
    box = mailbox.Maildir(folder, factory=None, create=False)
    messages = [email.message_from_bytes(box.get_bytes(key), policy=default) for key in box.iterkeys()]
    return sorted(messages, key=lambda m: m["Date"].datetime if m["Date"] else 0)


def text_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "the message has no text part"
    return str(part.get_content())


def link_in(message: EmailMessage, path: str) -> str:
    """The path and query of the first link to `path` in a message's text part."""
    found = re.search(rf"https?://\S+{re.escape(path)}\?t=[\w-]+", text_part(message))
    assert found, f"no {path} link in:\n{text_part(message)}"
    parts = urlsplit(found.group(0))
    return f"{parts.path}?{parts.query}"


def field(html: str, name: str) -> str:
    """The value of a form field in a page."""
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no field {name}"
    return found.group(1)


def sign_up(client: TestClient, email: str, **extra: str) -> Response:
    """Fill in and post the sign-up form of list `news` as a browser would (cookie and CSRF token)."""
    form = client.get("/subscribe?list=news").text
    data = {
        "list": "news",
        "csrf": field(form, "csrf"),
        "email": email,
        "name": "Ada Lovelace",
        "keywords": "diffusion models; speech",
        "frequency": "weekly",
        "website": "",
    }
    data.update(extra)
    return client.post("/subscribe", data=data)
