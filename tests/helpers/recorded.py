"""A local HTTP server that replays recorded API answers, for the fetch and `papers fetch` tests."""

from __future__ import annotations

from pathlib import Path

from .http_servers import LocalHttpServer, Reply

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sources"


class RecordedServer(LocalHttpServer):
    """Serves queued replies per path (last one repeats) and records every request it saw."""

    def __init__(self) -> None:
        self.replies: dict[str, list[Reply]] = {}
        super().__init__(self.next_reply)

    def queue(self, path: str, *replies: Reply) -> None:
        self.replies.setdefault(path, []).extend(replies)

    def next_reply(self, path: str, query: dict[str, str]) -> Reply:
        key = f"{path}?p={query['p']}" if "p" in query and f"{path}?p={query['p']}" in self.replies else path
        if "start" in query and f"{path}?start={query['start']}" in self.replies:
            key = f"{path}?start={query['start']}"
        queue = self.replies.get(key)
        if not queue:
            return 404, {}, b"not found"
        return queue.pop(0) if len(queue) > 1 else queue[0]


def fixture(name: str, status: int = 200, **headers: str) -> Reply:
    return status, {"Content-Type": "application/json", **headers}, (FIXTURES / name).read_bytes()
