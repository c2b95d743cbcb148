"""The one header policy of `serve` (and of the preview server), and the ASGI layer that applies it.

Every answer passes through `SecurityHeaders`: pages, redirects, 404s and 405s, the static archive
and routes added later alike, so no page sets these headers itself. A page may add to the
Content-Security-Policy (its own header is read as additions, e.g. a hash for an inline style),
but frame-ancestors and base-uri stay 'none' whatever it says. Absolute redirects never point at
whatever host a client put in its Host header.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Directives = Mapping[str, tuple[str, ...]]
# No other site may frame a page (clickjacking a button) or re-point its relative links.
LOCKED: Directives = {"frame-ancestors": ("'none'",), "base-uri": ("'none'",)}
# Pages here are plain HTML with inline styles and same-origin forms: nothing else may load or run.
SITE_CSP: Directives = {
    "default-src": ("'none'",),
    "style-src": ("'unsafe-inline'",),
    "img-src": ("'self'", "https:", "data:"),
    "form-action": ("'self'",),
    **LOCKED,
}
EVERY_ANSWER = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a token in the URL must not leave in a Referer
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
}
# A page that carries a reader's token or data: no cache keeps it, no search engine lists it.
PERSONAL = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}


@dataclass(frozen=True)
class HeaderPolicy:
    """Which headers one server's answers carry: the CSP, the ones above, and which paths are public."""

    csp: Directives
    public: tuple[str, ...] = ()  # path prefixes the same for everyone (no no-store, no noindex)

    def headers(self, path: str, page_csp: str = "") -> dict[str, str]:
        """The headers for an answer at `path` whose page asked for `page_csp` in addition."""
        headers = {"Content-Security-Policy": content_security_policy(self.csp, page_csp), **EVERY_ANSWER}
        if not any(path == prefix or path.startswith(prefix + "/") for prefix in self.public):
            headers.update(PERSONAL)
        return headers


# The archive is the same for everyone; every other page of `serve` carries a reader's token or data.
SITE = HeaderPolicy(SITE_CSP, public=("/archive", "/healthz"))
# The preview's page runs its own inline script over the API; all it shows is personal.
PREVIEW = HeaderPolicy(LOCKED)


def content_security_policy(base: Directives, added: str = "") -> str:
    """`base` with the sources a page adds; a page never changes frame-ancestors or base-uri."""
    merged = {name: list(sources) for name, sources in base.items()}
    for part in added.split(";"):
        words = part.split()
        name = words[0].lower() if words else ""
        if not name or name in LOCKED:
            continue
        kept = [s for s in merged.get(name, []) if s != "'none'"]  # 'none' beside other sources is void
        merged[name] = list(dict.fromkeys(kept + words[1:])) or ["'none'"]
    for name, sources in LOCKED.items():
        merged[name] = list(sources)
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in merged.items())


class SecurityHeaders:
    """Puts the policy's headers on every answer (over a route's own) and makes absolute redirects safe."""

    def __init__(self, app: ASGIApp, base_url: str | None = None, policy: HeaderPolicy = SITE) -> None:
        self.app = app
        self.policy = policy
        base = urlsplit(base_url or "")
        self.trusted_origin = (base.scheme, base.netloc) if base.netloc else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                added = headers.get("content-security-policy", "")
                for name, value in self.policy.headers(path, added).items():
                    headers[name] = value
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
