"""What a request body may be: a short form, never a file, on every route of `serve`.

Starlette spools form parts and files to temporary disk as they arrive, so a route that reads a
form without limits let one request write gigabytes. `BodyLimit` caps every request body, whether
it declares its length or streams in chunks, before any route reads it; `form_fields` is the one
way a route reads a form: text fields only, bounded in number and size.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import FormData, Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 64 * 1024  # bytes: the largest form of the site (20 fields of 2,000 characters) fits
MAX_FIELD = 2000  # characters kept of one field
MAX_FIELDS = 20


class BodyTooLarge(Exception):
    """A request body went past the cap while a route was reading it."""


class BodyLimit:
    """Answers 413 to a body over `max_bytes`: at once when Content-Length says so, else as it streams."""

    def __init__(self, app: ASGIApp, too_large: Callable[[], Response], max_bytes: int = MAX_BODY) -> None:
        self.app = app
        self.too_large = too_large
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared and (not declared.isascii() or not declared.isdigit() or int(declared) > self.max_bytes):
            await self.too_large()(scope, receive, send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise BodyTooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if started:
                raise
            await self.too_large()(scope, receive, send)


async def form_fields(request: Request) -> dict[str, str]:
    """The posted fields as bounded text; a malformed body gives none, a file part is a 413.

    One file part is let through the parser so that it is refused the same way whatever its size
    (the body cap keeps it in memory, never on disk); more would fail as malformed.
    """
    try:
        form: FormData = await request.form(max_files=1, max_fields=MAX_FIELDS, max_part_size=MAX_FIELD * 4)
    except HTTPException:
        return {}
    if any(not isinstance(value, str) for value in form.values()):
        await form.close()
        raise HTTPException(413, "no file parts")
    return {key: value[:MAX_FIELD] for key, value in form.items() if isinstance(value, str)}
