"""`newsletter preview`: write one subscriber's digest to files, to look at before sending."""

from __future__ import annotations

import webbrowser
from datetime import date
from pathlib import Path

import click

from ..pipeline.preview import build_preview, write_preview
from .app import AppContext, pass_app
from .options import parse_date


@click.command()
@click.option(
    "--papers",
    "papers",
    multiple=True,
    type=click.Path(path_type=Path, exists=True),
    help="Papers file or folder (repeatable); default: `papers` in settings.",
)
@click.option("--list", "list_name", help="Subscriber list name (subscribers/NAME.csv).")
@click.option(
    "--subscriber",
    "email",
    metavar="EMAIL",
    help="Preview this subscriber's digest (default: a reader with no keywords).",
)
@click.option(
    "--date", "issue_date", callback=parse_date, help="Issue date YYYY-MM-DD (default: settings, else today)."
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("preview"),
    show_default=True,
    help="Folder for the .html, .txt and .eml files.",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the HTML in the web browser.")
@pass_app
def preview(
    app: AppContext,
    papers: tuple[Path, ...],
    list_name: str | None,
    email: str | None,
    issue_date: date | None,
    out_dir: Path,
    open_browser: bool,
) -> None:
    """Write exactly what one subscriber would get: NAME.html, NAME.txt and NAME.eml.

    Nothing is sent and nothing is recorded.

    Example: newsletter preview --subscriber alice@example.org --open
    """
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
