"""One route per path, so a 405 answer lists every method the path really takes.

Starlette answers a request whose path matches but whose method does not from the first
route with that path, and its Allow header lists only that route's methods: with GET and
POST as two routes, a PUT was told `Allow: GET, HEAD`. Merging them fixes that for every
route, including ones added later.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send


class _ByMethod:
    """The ASGI app of one path: hands each request to the route that takes its method."""

    def __init__(self, apps: dict[str, ASGIApp]) -> None:
        self.apps = apps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.apps[scope["method"]](scope, receive, send)


def one_route_per_path(routes: list[BaseRoute]) -> list[BaseRoute]:
    """Routes that share a path become one route taking all their methods; others are kept as they are."""
    by_path: dict[str, list[Route]] = {}
    for route in routes:
        if isinstance(route, Route) and route.methods:
            by_path.setdefault(route.path, []).append(route)
    merged: list[BaseRoute] = []
    for route in routes:
        if not (isinstance(route, Route) and route.methods):
            merged.append(route)
            continue
        group = by_path[route.path]
        if route is not group[0]:
            continue  # folded into the first route of its path
        if len(group) == 1:
            merged.append(route)
            continue
        apps: dict[str, ASGIApp] = {}
        for member in group:
            for method in sorted(member.methods or ()):
                apps.setdefault(method, member.app)
        merged.append(Route(route.path, _ByMethod(apps), methods=sorted(apps), name=route.name))
    return merged
