"""`newsletter archive`: the static web archive of past issues."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from ..pipeline.issue import prepare_issue
from ..web.archive import build_site, snapshot_issue
from .app import AppContext, pass_app
from .options import issue_date_option, issue_option, papers_option


@click.command()
@papers_option
@issue_date_option
@issue_option()
@click.option("--rebuild-only", is_flag=True, help="Only re-render the pages of issues already archived.")
@pass_app
def archive(
    app: AppContext,
    papers: tuple[Path, ...],
    issue_date: date | None,
    issue_id: str | None,
    rebuild_only: bool,
) -> None:
    """Add an issue to the web archive and rebuild its pages, index and Atom feed.

    `newsletter serve` serves the archive under /archive/; emails link to their issue's page.

    Example: newsletter archive --date 2024-03-14
    """
    settings = app.settings
    if not rebuild_only:
        issue = prepare_issue(
            settings, issue_date=issue_date, issue_id=issue_id, papers=papers, require_papers=True
        )
        for problem in issue.problems:
            click.echo(f"Warning: {problem}", err=True)
        snapshot_issue(settings, issue)
    written = build_site(settings)
    click.echo(
        f"Archive: {len(written) - 2} issue page(s), index.html and feed.xml"
        f" in {settings.path(settings.archive_dir)}"
    )
