"""The preview answers only whoever started it: a random token in the printed URL, then a cookie.

Loopback is not private: every user of the machine can connect to 127.0.0.1. So, as notebook
servers do, `preview --serve` prints a URL with a fresh random token; the first visit with
`?token=...` sets an HttpOnly, SameSite=Strict cookie and redirects to the same page without the
token (so it leaves the address bar and the history), and every request with neither the cookie
nor the token is refused with 403 before it reaches a route.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_PARAM = "token"
REFUSED = "Forbidden: open the address `newsletter preview --serve` printed, with its ?token=...\n"


def new_owner_token() -> str:
    """A fresh token for one run of the preview server (256 random bits)."""
    return secrets.token_urlsafe(32)


def cookie_name(port: int | None) -> str:
    """One cookie per port: cookies ignore ports, and two previews must not log each other out."""
    return f"newsletter-preview-{port or 0}"


def _same(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))


class OwnerOnly:
    """ASGI layer: requests carrying the owner's cookie pass; the token in a GET URL sets it."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        if len(token) < 16:
            raise ValueError("the preview's owner token must be long and random")
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        server = scope.get("server") or ("", None)
        name = cookie_name(server[1])  # the port listened on, not the one the Host header names
        if _same(request.cookies.get(name, ""), self.token):
            await self.app(scope, receive, send)
            return
        await self._answer(request, name)(scope, receive, send)

    def _answer(self, request: Request, name: str) -> Response:
        """The redirect that sets the cookie for the right token in a GET URL, else 403."""
        query = parse_qsl(request.scope["query_string"].decode("latin-1"), keep_blank_values=True)
        given = [value for key, value in query if key == TOKEN_PARAM]
        if request.method != "GET" or len(given) != 1 or not _same(given[0], self.token):
            return PlainTextResponse(REFUSED, status_code=403)
        rest = urlencode([(key, value) for key, value in query if key != TOKEN_PARAM])
        # Relative: the clean URL on whatever host the browser used (the Host header is checked
        # against loopback names by the next layer).
        response = RedirectResponse(request.url.path + (f"?{rest}" if rest else ""), status_code=303)
        response.set_cookie(name, self.token, httponly=True, samesite="strict", path="/")
        return response
