"""The preview server's HTTP side: one page, a small JSON API and an event stream for live reload.

It serves on loopback and answers only its owner (owner.py: the token printed at start, then a
cookie); requests must name a loopback host (no DNS rebinding), and the one action with an
effect ("send me this") needs a header that a page from another site cannot send without the
browser asking first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..errors import NewsletterError
from ..web.hygiene import PREVIEW, SecurityHeaders
from .errors import describe_error
from .owner import OwnerOnly
from .session import PreviewSession, Selection
from .spam import spam_verdict, spamassassin_path
from .watch import ChangeFeed, follow_changes

log = logging.getLogger(__name__)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
ACTION_HEADER = "X-Newsletter-Preview"  # custom header: cross-site pages cannot send it unasked
KEEPALIVE_SECONDS = 15.0
SENT_PREFIX = "sent:"
_LIST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def _page() -> str:
    return resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")


def _selection(params: Any) -> Selection:
    """The page's choice from query or JSON fields, bounded and checked."""
    list_name = str(params.get("list") or "")[:100] or None
    if list_name is not None and not _LIST.match(list_name):
        raise NewsletterError(f"list name {list_name!r} is not allowed", fix="pick a list from the menu")
    email = str(params.get("subscriber") or "").strip()[:320] or None
    issue = str(params.get("issue") or "").strip()[:70]
    as_sent = issue.startswith(SENT_PREFIX)  # "sent:ID": the issue as the ledger recorded it
    issue = issue.removeprefix(SENT_PREFIX)
    return Selection(list_name=list_name, email=email, issue_id=issue or None, as_sent=as_sent)


def _json(data: object, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


def _failure(exc: Exception) -> JSONResponse:
    """Any error while building: shown on the page, the server keeps running."""
    if isinstance(exc, NewsletterError):
        return _json(describe_error(exc))
    log.exception("unexpected error in the preview")
    wrapped = NewsletterError(f"unexpected {type(exc).__name__}: {exc}", fix="see the server's log")
    return _json(describe_error(wrapped))


class PreviewApi:
    """The routes, over one session and one change feed."""

    def __init__(self, session: PreviewSession, feed: ChangeFeed) -> None:
        self.session = session
        self.feed = feed
        self.page = _page()
        self.closing: asyncio.Event | None = None  # made in the lifespan, on the server's loop
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self) -> None:
        self.closing = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def close(self) -> None:
        """End every event stream now (safe from a signal handler): they never end by themselves."""
        if self.closing is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self.closing.set)

    async def index(self, request: Request) -> HTMLResponse:
        return HTMLResponse(self.page)

    async def state(self, request: Request) -> JSONResponse:
        """Lists, issues (current + ledger), and which optional parts are on."""
        try:
            selection = _selection(request.query_params)
            lists = await run_in_threadpool(self.session.lists)
            list_name = selection.list_name or lists[0]
            current = await run_in_threadpool(self.session.current_issue, list_name)
            past = await run_in_threadpool(self.session.issues, list_name)
            send_to = self.session.send_to()
        except Exception as exc:
            return _failure(exc)
        return _json(
            {
                "ok": True,
                "lists": lists,
                "list": list_name,
                "current": current,
                "issues": [
                    {"id": r.issue, "channel": r.channel, "readers": r.readers, "delivered": r.delivered}
                    for r in past
                ],
                "smtp": self.session.smtp_ready(),
                "send_to": send_to,
                "spamassassin": spamassassin_path() is not None,
                "version": self.session.version,
            }
        )

    async def subscribers(self, request: Request) -> JSONResponse:
        query = request.query_params.get("q", "")[:200]
        try:
            selection = _selection(request.query_params)
            found = await run_in_threadpool(self.session.search, selection.list_name, query)
        except Exception as exc:
            return _failure(exc)
        return _json(
            [{"email": s.email, "name": s.name, "keywords": s.keywords, "status": s.status} for s in found]
        )

    async def message(self, request: Request) -> JSONResponse:
        try:
            shown = await run_in_threadpool(self.session.show, _selection(request.query_params))
        except Exception as exc:
            return _failure(exc)
        data = shown.as_json()
        data["version"] = self.session.version
        return _json(data)

    async def eml(self, request: Request) -> Response:
        """The raw message, as a download (or inline text with ?view=1)."""
        try:
            result = await run_in_threadpool(self.session.message, _selection(request.query_params))
        except Exception as exc:
            return _failure(exc)
        name = f"{result.file_stem}-{result.issue.issue_id}.eml"
        inline = request.query_params.get("view") == "1"
        headers = {}
        if not inline:
            headers["Content-Disposition"] = f'attachment; filename="{name}"'
        media = "text/plain; charset=utf-8" if inline else "message/rfc822"
        return Response(result.message, media_type=media, headers=headers)

    async def spam(self, request: Request) -> JSONResponse:
        try:
            result = await run_in_threadpool(self.session.message, _selection(request.query_params))
        except Exception as exc:
            return _failure(exc)
        verdict = await run_in_threadpool(spam_verdict, result.message)
        return _json({"ok": True, **verdict.as_dict()})

    async def send(self, request: Request) -> JSONResponse:
        """'Send me this': the shown message to one configured address, as `send --to` sends it."""
        if request.headers.get(ACTION_HEADER) != "1":
            return _json({"ok": False, "error": {"message": f"missing {ACTION_HEADER} header"}}, 403)
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            return _json({"ok": False, "error": {"message": "the request body is not a JSON object"}}, 400)
        try:
            to = str(body.get("to") or "")[:320]
            report = await run_in_threadpool(self.session.send_copy, _selection(body), to)
        except Exception as exc:
            return _failure(exc)
        delivered = report.sent == 1
        text = f"Sent to {to} via {report.server}." if delivered else report.summary()
        return _json({"ok": delivered, "message": text, "report": report.as_dict()})

    async def events(self, request: Request) -> StreamingResponse:
        """Server-sent events: one 'reload' per change, a comment now and then to keep it open."""

        closing = self.closing or asyncio.Event()

        async def stream() -> AsyncIterator[str]:
            async with self.feed.subscription() as queue:
                yield f"retry: 500\nevent: hello\ndata: {self.session.version}\n\n"
                ended = asyncio.ensure_future(closing.wait())
                news: asyncio.Future[int] | None = None
                try:
                    while not closing.is_set():
                        news = asyncio.ensure_future(queue.get())
                        await asyncio.wait(
                            {news, ended}, timeout=KEEPALIVE_SECONDS, return_when="FIRST_COMPLETED"
                        )
                        if not news.done():
                            news.cancel()
                            yield ": keepalive\n\n"
                            continue
                        yield f"event: reload\ndata: {news.result()}\n\n"
                finally:
                    # Cut by Ctrl-C or a closed tab: a task left waiting here would be collected
                    # pending, and asyncio prints "Task was destroyed but it is pending!".
                    await _ended(ended, news)

        headers = {"X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


async def _ended(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel the tasks and wait until they have ended, even while this task is being cancelled."""
    waiting = [task for task in tasks if task is not None and not task.done()]
    for task in waiting:
        task.cancel()
    if waiting:
        await asyncio.shield(asyncio.wait(waiting))


def create_preview_app(
    session: PreviewSession, *, owner_token: str, loopback_only: bool = True, watch: bool = True
) -> Starlette:
    """The ASGI app for `newsletter preview --serve`, answering only requests with `owner_token`."""
    feed = ChangeFeed()
    api = PreviewApi(session, feed)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = asyncio.Event()
        api.open()
        task = asyncio.create_task(follow_changes(session, feed, stop)) if watch else None
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    routes = [
        Route("/", api.index, methods=["GET"]),
        Route("/api/state", api.state, methods=["GET"]),
        Route("/api/subscribers", api.subscribers, methods=["GET"]),
        Route("/api/message", api.message, methods=["GET"]),
        Route("/api/eml", api.eml, methods=["GET"]),
        Route("/api/spam", api.spam, methods=["GET"]),
        Route("/api/send", api.send, methods=["POST"]),
        Route("/events", api.events, methods=["GET"]),
    ]
    hosts = list(LOOPBACK_HOSTS) if loopback_only else ["*"]
    # The header policy is hygiene.py's, as for `serve`: it covers the refused hosts too.
    middleware = [
        Middleware(SecurityHeaders, policy=PREVIEW),
        Middleware(TrustedHostMiddleware, allowed_hosts=hosts),
        Middleware(OwnerOnly, token=owner_token),
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.session = session
    app.state.feed = feed
    app.state.api = api
    return app
