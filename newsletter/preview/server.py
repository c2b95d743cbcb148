"""Run the preview page under uvicorn, on loopback unless told otherwise."""

from __future__ import annotations

import webbrowser
from collections.abc import Callable
from types import FrameType

import uvicorn

from ..listening import check_can_listen
from ..settings import Settings, is_loopback_host
from .app import create_preview_app
from .owner import TOKEN_PARAM, new_owner_token
from .session import PreviewSession

GRACE_SECONDS = 1  # whatever is still open this long after Ctrl-C is cut


class PreviewServer(uvicorn.Server):
    """uvicorn, telling the page's event streams to end as soon as Ctrl-C arrives (they never end
    by themselves, so a plain graceful shutdown would wait for them and then print a traceback)."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.on_exit()
        super().handle_exit(sig, frame)


def serve_preview(
    settings: Settings,
    host: str,
    port: int,
    *,
    open_browser: bool = False,
    verbose: bool = False,
    say: Callable[[str], None] = print,
) -> None:
    """Serve until Ctrl-C; the page rebuilds whenever a template, the CSS or the config is saved."""
    loopback = is_loopback_host(host)
    if not loopback:
        say(
            f"Warning: the preview page shows subscriber addresses; on {host} it is reachable from "
            "other machines, and only the token in its address keeps them out (plain http)"
        )
    check_can_listen(host, port)
    token = new_owner_token()
    app = create_preview_app(PreviewSession(settings), owner_token=token, loopback_only=loopback)
    # The token is the login: only whoever sees this line (the terminal's owner) can open the page.
    url = f"http://{'localhost' if loopback else host}:{port}/?{TOKEN_PARAM}={token}"
    say(f"Preview on {url} (rebuilds on every save of a template, the CSS or the config; Ctrl-C stops)")
    if open_browser:
        webbrowser.open(url)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info" if verbose else "warning",
        timeout_graceful_shutdown=GRACE_SECONDS,
    )
    PreviewServer(config, app.state.api.close).run()
