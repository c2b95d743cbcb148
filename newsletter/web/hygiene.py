"""One ASGI layer every `serve` response passes through: security headers, and redirects that never
point at whatever host a client put in its Host header. Routes added later get both for free."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Pages here are plain HTML with inline styles and same-origin forms: nothing else may load or run.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
ALWAYS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# The archive is the same for everyone; every other page carries a reader's token or data.
PUBLIC_PREFIXES = ("/archive", "/healthz")


class SecurityHeaders:
    """Adds the headers above (a route's own values win) and makes absolute redirects safe."""

    def __init__(self, app: ASGIApp, base_url: str | None = None) -> None:
        self.app = app
        base = urlsplit(base_url or "")
        self.trusted_origin = (base.scheme, base.netloc) if base.netloc else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        personal = not path.startswith(PUBLIC_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in ALWAYS.items():
                    headers.setdefault(name, value)
                if personal:
                    headers["Cache-Control"] = "no-store"
                location = headers.get("location")
                if location is not None:
                    headers["Location"] = self.safe_location(location)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def safe_location(self, location: str) -> str:
        """An absolute redirect becomes relative to this site unless it names the configured origin."""
        parts = urlsplit(location)
        if not parts.netloc and not location.startswith("//") and not location.startswith("\\"):
            return location
        if self.trusted_origin and (parts.scheme, parts.netloc) == self.trusted_origin:
            return location
        path = "/" + parts.path.lstrip("/\\")
        return path + (f"?{parts.query}" if parts.query else "")
