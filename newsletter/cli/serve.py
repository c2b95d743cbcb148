"""`newsletter serve`: the one-click unsubscribe endpoint (and whatever else is mounted on it)."""

from __future__ import annotations

import click

from ..delivery.channel import outbox_shown
from ..errors import NewsletterError
from ..listening import check_can_listen
from ..pipeline.issue import LOCAL_PORT, LOCAL_SECRET
from ..settings import Settings, is_loopback_host
from ..web.app import create_app
from ..web.server import ServeLimits, server_config
from .app import AppContext, pass_app


@click.command("serve")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0 for every interface, usually behind a TLS proxy).",
)
@click.option(
    "--port",
    default=LOCAL_PORT,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port (the default is the one a local trial's links point at).",
)
@pass_app
def serve(app: AppContext, host: str, port: int) -> None:
    """Sign-up, confirm, preferences and unsubscribe pages, and the archive.

    /subscribe?list=NAME is the sign-up form (double opt-in: a confirmation mail goes out at
    once through the configured SMTP server); every digest links to /manage and /unsubscribe
    (RFC 8058 one-click). Needs NEWSLETTER_SECRET, the same one the digests were sent with.

    Example: newsletter serve --host 0.0.0.0 --port 8080
    """
    import uvicorn  # only this command needs the server

    settings = app.settings
    trial = settings.config_file is not None and not (settings.secret or settings.base_url)
    trial = trial and is_loopback_host(host)
    if trial:
        # A local trial: the outbox's links were signed with the stand-in secret and point here.
        settings = settings.model_copy(update={"secret": LOCAL_SECRET})
        click.echo(
            "Warning: NEWSLETTER_SECRET and NEWSLETTER_BASE_URL are not set: answering the links of "
            "local trials (the embedded outbox) only; set both before serving real mail's links",
            err=True,
        )
    web_app = create_app(settings, local_trial=trial)
    _sync_lists(settings)
    check_can_listen(host, port)
    click.echo(
        f"Serving http://{host}:{port}/subscribe?list={settings.default_list} and the links in every "
        "digest (Ctrl-C to stop)",
        err=True,
    )
    outbox = outbox_shown(settings)
    if outbox is not None:
        click.echo(f"Confirmation mail goes to the embedded outbox: open it in {outbox}", err=True)
    limits = ServeLimits.from_settings(settings.serve)
    proxies = settings.serve.trusted_proxies
    config = server_config(web_app, host, port, limits, trusted_proxies=proxies, verbose=app.verbose)
    uvicorn.Server(config).run()


def _sync_lists(settings: Settings) -> None:
    """Merge the lists kept as files before the first request (requests never read the files)."""
    from ..safety.listnames import is_list_name
    from ..subscribers import open_list

    folder = settings.path(settings.subscribers_dir)
    for path in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
        if is_list_name(path.stem):
            try:
                open_list(settings.places, path.stem)
            except NewsletterError as exc:  # the list is served as last synced
                click.echo(f"Warning: {exc.message}", err=True)
