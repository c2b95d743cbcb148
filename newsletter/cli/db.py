"""`newsletter db`: see, upgrade and copy the database (SQLite by default, PostgreSQL by database_url)."""

from __future__ import annotations

import json

import click

from .app import AppContext, pass_app


@click.group("db")
def db() -> None:
    """See, upgrade and copy the database: SQLite by default, PostgreSQL by database_url.

    Example: newsletter db status
    """


@db.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: engine, where, version, rows.")
@pass_app
def status(app: AppContext, as_json: bool) -> None:
    """Show the engine, where the database is (no password), its schema version and rows per table.

    Reads only: a database that is missing or older stays as it is.

    Example: newsletter db status --json
    """
    from ..store.status import database_status

    found = database_status(app.places.database())
    if as_json:
        click.echo(json.dumps(found.as_dict(), indent=2))
        return
    version = "none" if found.version is None else str(found.version)
    click.echo(f"engine: {found.engine}")
    click.echo(f"where: {found.where}")
    click.echo(f"schema version: {version} ({found.state.value})")
    width = max((len(name) for name in found.tables), default=0)
    for name, rows in found.tables.items():
        click.echo(f"  {name:<{width}}  {rows:>9,}")


@db.command("upgrade")
@pass_app
def upgrade(app: AppContext) -> None:
    """Apply the schema migrations this release brings, and import an old feedback.db.

    Every command does this on first use; run it to upgrade at a time of your choosing, e.g.
    before starting several `serve` processes on one PostgreSQL.

    Example: newsletter db upgrade
    """
    from ..store import open_database
    from ..store.feedback import import_feedback_file
    from ..store.status import upgrade_database

    settings = app.settings
    place = settings.places.database()
    before, now = upgrade_database(place)
    if before == now:
        click.echo(f"The database {place.shown} is at schema version {now} already.")
    else:
        click.echo(f"Upgraded the database {place.shown} from schema version {before} to {now}.")
    imported = import_feedback_file(open_database(place), settings.path(settings.feedback_db))
    if imported is not None:
        click.echo(
            f"Imported {imported.verdicts} feedback verdict(s) and {imported.papers} paper(s);"
            f" the old file is now {imported.renamed_to}."
        )


@db.command("copy")
@click.option(
    "--to",
    "to",
    required=True,
    metavar="URL",
    help="The database to fill, e.g. postgresql://user:password@host:5432/newsletter.",
)
@pass_app
def copy(app: AppContext, to: str) -> None:
    """Copy every table into another database, e.g. from the SQLite file into PostgreSQL.

    The target must be empty or hold an earlier copy of this database, which is replaced: run it
    again until you switch. One transaction on the target; prints the rows of both sides. Then
    set database_url (or NEWSLETTER_DATABASE_URL) to the target.

    Example: newsletter db copy --to postgresql://digest:secret@db.example.org:5432/newsletter
    """
    from ..store import open_database
    from ..store.copying import copy_database, target_place
    from ..store.feedback import import_feedback_file

    settings = app.settings
    target = target_place(to)
    source = open_database(settings.places.database())
    import_feedback_file(source, settings.path(settings.feedback_db))  # its likes go along
    result = copy_database(source, target)
    click.echo(f"Copied {result.source} to {result.target}.")
    width = max(len(name) for name, _, _ in result.counts)
    click.echo(f"  {'table':<{width}}  {'source':>9}  {'target':>9}")
    for name, source_rows, target_rows in result.counts:
        click.echo(f"  {name:<{width}}  {source_rows:>9,}  {target_rows:>9,}")
