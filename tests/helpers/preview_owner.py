"""The preview server for one test, and the cookie its owner's browser holds after the first visit."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import urlsplit

from helpers.uvicorn_thread import serving
from newsletter.preview.app import create_preview_app
from newsletter.preview.owner import cookie_name
from newsletter.preview.session import PreviewSession

OWNER_TOKEN = "preview-owner-token-for-the-tests-Vq3ZrT8kLm"


def owner_headers(url: str) -> dict[str, str]:
    """The Cookie header the owner's browser sends to the preview at `url`."""
    return {"Cookie": f"{cookie_name(urlsplit(url).port)}={OWNER_TOKEN}"}


@contextlib.contextmanager
def serving_preview(session: PreviewSession, *, watch: bool = False) -> Iterator[str]:
    """A real preview server over `session` that answers OWNER_TOKEN; yields its base URL."""
    app = create_preview_app(session, owner_token=OWNER_TOKEN, watch=watch)
    with serving(app, app.state.api.close) as url:
        yield url
