"""The Starlette app of `newsletter serve`: its routes, the one-click unsubscribe, and the archive mount."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from ..errors import NewsletterError
from ..mail.tokens import CONFIRM_PATH, MANAGE_PATH, UNSUBSCRIBE_PATH, TokenSigner, verify_unsubscribe
from ..safety.listnames import is_list_name
from ..safety.secretkey import require_strong_secret
from ..settings import Settings
from ..store.subscribers import UnknownListError
from ..subscribers import known_list, open_list
from .bodies import BodyLimit, form_fields
from .feedback import feedback_routes
from .hygiene import SITE, SecurityHeaders
from .pages import SitePages
from .routing import one_route_per_path
from .selfservice import SUBSCRIBE_PATH, SelfService

log = logging.getLogger(__name__)
ARCHIVE_PATH = "/archive"


class Unsubscribe:
    """Checks the token, then changes nothing (GET) or unsubscribes (POST)."""

    def __init__(self, settings: Settings, pages: SitePages, local_trial: bool = False) -> None:
        self.pages = pages
        self.settings = settings
        # Anyone on the internet can try tokens here: a guessable key would let them forge any.
        # A local trial (loopback only) answers links signed with the known stand-in instead.
        if not (local_trial and settings.secret):
            require_strong_secret(settings.secret, "`newsletter serve`", settings.source_label)
        self.tokens = TokenSigner.from_settings(settings)

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
                return self.pages.incomplete()
            found = verify_unsubscribe(self.tokens, legacy, list_name, email)
        return self.pages.not_valid() if found is None else found

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
        return self.pages.page("web/unsubscribe.html", "Unsubscribe", action=action, email=email)

    async def unsubscribe(self, request: Request) -> HTMLResponse:
        """POST: the one-click unsubscribe; repeatable, answers 200 and never redirects."""
        # List-Unsubscribe=One-Click, urlencoded or multipart; a mangled body is no matter: the token decides
        token = (await form_fields(request)).get("t", "")
        checked = self._checked(request, token)
        if isinstance(checked, HTMLResponse):
            return checked
        list_name, email = checked
        try:
            known = await run_in_threadpool(_unsubscribe, self.settings, list_name, email)
        except NewsletterError as exc:  # the database cannot be written now, or the file read
            log.error("unsubscribe from %s failed: %s", list_name, exc.message)
            return self.pages.try_again()
        if not known:
            log.error("unsubscribe for an unknown list: %s", list_name)
            return self.pages.unknown_list()
        log.info("unsubscribe from %s (recorded)", list_name)
        return self.pages.unsubscribed(self.tokens, list_name, email)


def _unsubscribe(settings: Settings, list_name: str, email: str) -> bool:
    """One short transaction, O(1) however long the list; False when there is no such list."""
    try:
        open_list(settings.places, list_name, sync=False).unsubscribe(email)
    except UnknownListError:
        store = known_list(settings.places, list_name)  # a list kept as a file, not read in yet
        if store is None:
            return False
        store.unsubscribe(email)
    return True


async def health(request: Request) -> PlainTextResponse:
    """For load balancers and the tests' wait-until-up loop."""
    return PlainTextResponse("ok")


class ArchiveFiles:
    """The static archive `newsletter archive` writes; looked for per request, so it may come later."""

    def __init__(self, folder: Path, pages: SitePages) -> None:
        self.folder = folder
        self.pages = pages
        self.files: StaticFiles | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD"):
            # StaticFiles answers 405 without the Allow header that HTTP requires with it.
            refused = self.pages.message("Not possible here", "The archive can only be read.", status=405)
            refused.headers["Allow"] = "GET, HEAD"
            await refused(scope, receive, send)
            return
        if self.files is None:
            if not self.folder.is_dir():
                missing = self.pages.message(
                    "No archive yet", "No issues have been archived here yet.", status=404
                )
                await missing(scope, receive, send)
                return
            self.files = StaticFiles(directory=self.folder, html=True)
        await self.files(scope, receive, send)


def create_app(settings: Settings, *, local_trial: bool = False) -> Starlette:
    """The ASGI app for `newsletter serve`: unsubscribe, health check and the archive; more can be mounted.

    `local_trial` (loopback, the stand-in secret) is the one case where a weak secret is accepted.
    """
    pages = SitePages(settings)
    handler = Unsubscribe(settings, pages, local_trial)
    selfservice = SelfService(settings, is_list_name, pages)
    routes: list[BaseRoute] = [
        Route(UNSUBSCRIBE_PATH, handler.confirm, methods=["GET"]),
        Route(UNSUBSCRIBE_PATH, handler.unsubscribe, methods=["POST"]),
        Route("/", selfservice.home, methods=["GET"]),
        Route(SUBSCRIBE_PATH, selfservice.subscribe_form, methods=["GET"]),
        Route(SUBSCRIBE_PATH, selfservice.subscribe, methods=["POST"]),
        Route(CONFIRM_PATH, selfservice.confirm_form, methods=["GET"]),
        Route(CONFIRM_PATH, selfservice.confirm, methods=["POST"]),
        Route(MANAGE_PATH, selfservice.manage_form, methods=["GET"]),
        Route(MANAGE_PATH, selfservice.manage, methods=["POST"]),
        Route("/healthz", health, methods=["GET"]),
        *feedback_routes(settings, handler.tokens, pages),
        Mount(ARCHIVE_PATH, app=ArchiveFiles(settings.path(settings.archive_dir), pages), name="archive"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            selfservice.mailer.stop()  # the embedded outbox server, if a sign-up started it

    async def server_error(request: Request, exc: Exception) -> HTMLResponse:
        # Starlette answers a crash outside every middleware, so the policy is put on here too.
        answer = pages.error(500)
        answer.headers.update(SITE.headers(request.url.path))
        return answer

    # One layer for every route, those added later included: the header policy, safe redirects;
    # and every page the router itself answers (404, 405) in the site's look.
    app = Starlette(
        routes=one_route_per_path(routes),
        lifespan=lifespan,
        middleware=[
            Middleware(SecurityHeaders, base_url=settings.base_url, policy=SITE),
            Middleware(BodyLimit, too_large=partial(pages.error, 413)),  # inside: its 413 gets the headers
        ],
        exception_handlers={HTTPException: pages.http_error, 500: server_error},
    )
    app.state.settings = settings
    app.state.pages = pages
    app.state.selfservice = selfservice
    return app
