"""The Starlette app of `newsletter serve`: its routes, the one-click unsubscribe, and the archive mount."""

from __future__ import annotations

import contextlib
import html
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from ..errors import SubscriberError
from ..mail.tokens import CONFIRM_PATH, MANAGE_PATH, UNSUBSCRIBE_PATH, TokenSigner, verify_unsubscribe
from ..safety.listnames import is_list_name
from ..safety.secretkey import require_strong_secret
from ..settings import Settings
from ..subscribers import SubscriberStore
from ..text import strip_forbidden_chars
from .feedback import feedback_routes
from .hygiene import SecurityHeaders
from .routing import one_route_per_path
from .selfservice import SUBSCRIBE_PATH, SelfService

log = logging.getLogger(__name__)
ARCHIVE_PATH = "/archive"
# The token is in the URL: keep it out of search engines (caches, Referer and the rest: hygiene.py).
HEADERS = {"X-Robots-Tag": "noindex"}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}}
button{{font-size:1rem;padding:.6rem 1.2rem;border:0;border-radius:.3rem;background:#b3261e;color:#fff;
cursor:pointer}}</style>
</head><body><h1>{title}</h1>{body}</body></html>
"""


class Unsubscribe:
    """Checks the token, then changes nothing (GET) or unsubscribes (POST)."""

    def __init__(self, settings: Settings, local_trial: bool = False) -> None:
        self.pages: SelfService | None = None  # set by create_app: pages in the emails' look
        self.settings = settings
        # Anyone on the internet can try tokens here: a guessable key would let them forge any.
        # A local trial (loopback only) answers links signed with the known stand-in instead.
        if not (local_trial and settings.secret):
            require_strong_secret(settings.secret, "`newsletter serve`", settings.source_label)
        self.tokens = TokenSigner.from_settings(settings)

    def _pages(self) -> SelfService:
        if self.pages is None:
            raise RuntimeError("Unsubscribe.pages is set by create_app")
        return self.pages

    def _checked(self, request: Request, token: str = "") -> tuple[str, str] | HTMLResponse:
        """(list, email) when the link is genuine, else the 4xx page to answer with."""
        query = request.query_params
        token = token or query.get("t", "")
        if token:
            found = verify_unsubscribe(self.tokens, token)
        else:
            # Links minted before opaque tokens: list, address and an HMAC in the query.
            list_name, email, legacy = query.get("list", ""), query.get("email", ""), query.get("token", "")
            if not (list_name and email and legacy):
                return page(
                    "Incomplete link",
                    "<p>This unsubscribe link is missing a part. "
                    "Please use the full link from the email.</p>",
                    400,
                )
            found = verify_unsubscribe(self.tokens, legacy, list_name, email)
        return _not_valid() if found is None else found

    async def confirm(self, request: Request) -> HTMLResponse:
        """GET: show the button, never change anything (mail scanners follow links)."""
        checked = self._checked(request)
        if isinstance(checked, HTMLResponse):
            return checked
        _, email = checked
        # Relative to this very URL, so it still works behind a proxy that adds a path prefix. Read
        # from the raw request line: request.url is rebuilt with the client's Host header.
        action = "?" + request.scope["query_string"].decode("latin-1")
        # The emails' look, and the newsletter's title rather than the internal list name.
        return self._pages().page("web/unsubscribe.html", "Unsubscribe", action=action, email=email)

    async def unsubscribe(self, request: Request) -> HTMLResponse:
        """POST: the one-click unsubscribe; repeatable, answers 200 and never redirects."""
        token = ""
        with contextlib.suppress(HTTPException):  # a mangled body does not matter: the token decides
            form = await request.form()  # List-Unsubscribe=One-Click, urlencoded or multipart
            value = form.get("t")
            token = value if isinstance(value, str) else ""
        checked = self._checked(request, token)
        if isinstance(checked, HTMLResponse):
            return checked
        list_name, email = checked
        store = SubscriberStore(self.settings.list_path(list_name))
        if not store.exists():
            log.error("unsubscribe for an unknown list: %s", list_name)
            return page("Unknown list", "<p>This list is not known here. Nothing was changed.</p>", 404)
        try:
            # One journal record: O(1) however long the list, and readable even when the CSV is not.
            await run_in_threadpool(store.record_unsubscribe, email)
        except SubscriberError as exc:
            return _failure(store, exc)
        # A grown journal is folded into the CSV after answering (in a worker thread), not before.
        tasks = BackgroundTask(store.compact, False) if store.needs_compaction() else None
        log.info("unsubscribe from %s (recorded)", list_name)
        answer = self._pages().message(
            "Unsubscribed",
            f"{email} will get no more {self.settings.title} emails.",
            link={"url": f"{SUBSCRIBE_PATH}?list={list_name}", "text": "Changed your mind? Subscribe again"},
        )
        answer.background = tasks
        return answer


def _not_valid() -> HTMLResponse:
    return page(
        "Link not valid",
        "<p>This unsubscribe link is not valid. Nothing was changed. "
        "Please use the exact link from the email.</p>",
        403,
    )


def _failure(store: SubscriberStore, exc: SubscriberError) -> HTMLResponse:
    """The page for a change that could not be made: unknown list, or a list we cannot write now."""
    if not store.path.is_file():
        log.error("unsubscribe for an unknown list: %s", exc.message)
        return page("Unknown list", "<p>This list is not known here. Nothing was changed.</p>", 404)
    log.error("unsubscribe from %s failed: %s", store.name, exc.message)
    return page(
        "Please try again", "<p>We could not record this right now. Please try again in a minute.</p>", 503
    )


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    """A small self-contained HTML page with the privacy headers every answer here needs."""
    text = strip_forbidden_chars(PAGE.format(title=html.escape(title), body=body))
    return HTMLResponse(text, status_code=status, headers=HEADERS)


async def health(request: Request) -> PlainTextResponse:
    """For load balancers and the tests' wait-until-up loop."""
    return PlainTextResponse("ok")


class ArchiveFiles:
    """The static archive `newsletter archive` writes; looked for per request, so it may come later."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: StaticFiles | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD"):
            # StaticFiles answers 405 without the Allow header that HTTP requires with it.
            refused = page("Method not allowed", "<p>The archive can only be read.</p>", 405)
            refused.headers["Allow"] = "GET, HEAD"
            await refused(scope, receive, send)
            return
        if self.files is None:
            if not self.folder.is_dir():
                missing = page("No archive yet", "<p>No issues have been archived here yet.</p>", 404)
                await missing(scope, receive, send)
                return
            self.files = StaticFiles(directory=self.folder, html=True)
        await self.files(scope, receive, send)


def create_app(settings: Settings, *, local_trial: bool = False) -> Starlette:
    """The ASGI app for `newsletter serve`: unsubscribe, health check and the archive; more can be mounted.

    `local_trial` (loopback, the stand-in secret) is the one case where a weak secret is accepted.
    """
    handler = Unsubscribe(settings, local_trial)
    pages = SelfService(settings, is_list_name)
    handler.pages = pages
    routes: list[BaseRoute] = [
        Route(UNSUBSCRIBE_PATH, handler.confirm, methods=["GET"]),
        Route(UNSUBSCRIBE_PATH, handler.unsubscribe, methods=["POST"]),
        Route(SUBSCRIBE_PATH, pages.subscribe_form, methods=["GET"]),
        Route(SUBSCRIBE_PATH, pages.subscribe, methods=["POST"]),
        Route(CONFIRM_PATH, pages.confirm_form, methods=["GET"]),
        Route(CONFIRM_PATH, pages.confirm, methods=["POST"]),
        Route(MANAGE_PATH, pages.manage_form, methods=["GET"]),
        Route(MANAGE_PATH, pages.manage, methods=["POST"]),
        Route("/healthz", health, methods=["GET"]),
        *feedback_routes(settings, handler.tokens, page),
        Mount(ARCHIVE_PATH, app=ArchiveFiles(settings.path(settings.archive_dir)), name="archive"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            pages.mailer.stop()  # the embedded outbox server, if a sign-up started it

    # One layer for every route, those added later included: security headers, safe redirects.
    app = Starlette(
        routes=one_route_per_path(routes),
        lifespan=lifespan,
        middleware=[Middleware(SecurityHeaders, base_url=settings.base_url)],
    )
    app.state.settings = settings
    app.state.pages = pages
    return app
