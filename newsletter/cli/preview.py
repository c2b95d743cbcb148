"""`newsletter preview`: write one subscriber's digest to files, to look at before sending."""

from __future__ import annotations

import webbrowser
from datetime import date
from pathlib import Path

import click

from ..pipeline.previewfiles import build_preview, write_preview
from ..pipeline.replay import replay_delivery
from .app import AppContext, pass_app
from .options import issue_date_option, issue_option, list_option, papers_option


@click.command()
@papers_option
@list_option
@click.option(
    "--subscriber",
    "email",
    metavar="EMAIL",
    help="Preview this subscriber's digest (default: a reader with no keywords).",
)
@issue_date_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("preview"),
    show_default=True,
    help="Folder for the .html, .txt and .eml files.",
)
@click.option(
    "--open", "open_browser", is_flag=True, help="Open the HTML (or the --serve page) in the browser."
)
@issue_option(help="Rebuild what --subscriber was sent in this past issue, from the ledger.", past=True)
@click.option("--serve", is_flag=True, help="Serve a live preview page that follows template edits.")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address for --serve (keep it on loopback)."
)
@click.option(
    "--port", default=8040, show_default=True, type=click.IntRange(0, 65535), help="Port for --serve."
)
@pass_app
def preview(
    app: AppContext,
    *,
    papers: tuple[Path, ...],
    list_name: str | None,
    email: str | None,
    issue_date: date | None,
    out_dir: Path,
    open_browser: bool,
    issue_id: str | None,
    serve: bool,
    host: str,
    port: int,
) -> None:
    """Write exactly what one subscriber would get: NAME.html, NAME.txt and NAME.eml.

    Nothing is sent and nothing is recorded. With --issue, what they were sent in that past
    issue (papers, order and templates as the ledger recorded them). With --serve, a local page
    with every reader and issue, phone/desktop and light/dark frames, reloading on every save.

    Example: newsletter preview --subscriber alice@example.org --open

    Example: newsletter preview --serve

    Example: newsletter preview --issue 2026-W47 --subscriber alice@example.org
    """
    if serve:
        from ..preview.server import serve_preview  # uvicorn is imported only when serving

        say = lambda line: click.echo(line, err=True)  # noqa: E731 -- one-line adapter for click.echo
        serve_preview(app.settings, host, port, open_browser=open_browser, verbose=app.verbose, say=say)
        return
    if issue_id is not None:
        replayed = replay_delivery(app.settings, list_name, issue_id, email)
        for note in replayed.notes:
            click.echo(note, err=True)
        result = replayed.result
    else:
        result = build_preview(app.settings, list_name, email, issue_date, papers)
    for problem in result.problems:
        click.echo(f"Warning: {problem}", err=True)
    paths = write_preview(result, out_dir)
    who = email or "a reader with no keywords"
    click.echo(
        f"Issue {result.issue.issue_id} for {who}: {len(result.paper_ids)} papers, "
        f'subject "{result.digest.subject}"'
    )
    for path in paths:
        click.echo(f"  {path}")
    if open_browser and not webbrowser.open(paths[0].resolve().as_uri()):
        click.echo(f"No browser found here; open {paths[0]} in one yourself.", err=True)
