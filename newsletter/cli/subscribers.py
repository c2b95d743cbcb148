"""`newsletter subscribers ...`: thin wrappers over the subscriber store.

Each command imports what only it needs inside its body, so `subscribers add` on a big list
starts without the mail parser, the ledger or the token code. Every command merges a hand edit
of subscribers/NAME.csv first (open_list); export and sync also write the list back into it.
"""

from __future__ import annotations

import io
import json
import sys
from functools import partial
from pathlib import Path
from typing import Literal, TextIO

import click

from ..errors import SubscriberError
from ..statuses import Frequency, SubscriberStatus
from ..subscribers import STATUSES, RowError, SubscriberStore, open_list
from .app import AppContext, pass_app
from .options import list_option

deliverability_option = click.option(
    "--check-deliverability",
    is_flag=True,
    help="Also look up each domain's mail servers in DNS (slow, needs network).",
)


def _store(app: AppContext, list_name: str | None, must_exist: bool = True) -> SubscriberStore:
    store = open_list(app.places, list_name)
    if must_exist and not store.exists():
        raise store.missing_error()
    return store


@click.group("subscribers")
def subscribers() -> None:
    """Manage subscriber lists: CSV files under subscribers/, one per list.

    A list lives in the database; subscribers/NAME.csv, where you keep one, is merged in by the
    next command after you edit it, and written back at every send and by `subscribers sync`.

    Example: newsletter subscribers add alice@example.org --name Alice --keywords "diffusion; music"
    """


@subscribers.command("add")
@click.argument("email")
@click.option("--name", default="", help="Display name used in the greeting.")
@click.option(
    "--keywords",
    default="",
    help='Interests separated by ";", "," or a line break, e.g. "diffusion; robotics".',
)
@click.option(
    "--resubscribe",
    is_flag=True,
    help="If the address is on the list but unsubscribed or bounced, make it active again.",
)
@list_option
@deliverability_option
@pass_app
def add(
    app: AppContext,
    *,
    email: str,
    name: str,
    keywords: str,
    resubscribe: bool,
    list_name: str | None,
    check_deliverability: bool,
) -> None:
    """Add one subscriber (creates the list, and its CSV file, if it does not exist).

    Example: newsletter subscribers add ada@example.org --keywords "RLHF; math"
    """
    from ..subscribers.edit import changes_between
    from ..subscribers.rows import new_subscriber

    store = _store(app, list_name, must_exist=False)
    new = not store.exists()
    try:
        subscriber = new_subscriber(email, name, keywords, deliverability=check_deliverability)
    except RowError as exc:
        raise SubscriberError(str(exc), fix="check the spelling of the address") from None
    before = store.get(email) if resubscribe and not new else None
    outcome = store.add(subscriber, on_conflict="update" if resubscribe else "error", resubscribe=resubscribe)
    if new and store.csv_path is not None:
        from ..subscribers.writeback import write_back

        write_back(store, store.csv_path, create=True)  # a list made here is kept as a CSV file
    if outcome == "added":
        click.echo(f"Added {email.strip()} to {store.name}.")
        return
    resubscribed = store.set_status(email, SubscriberStatus.ACTIVE)
    changes = changes_between(before, store.get(email))
    said = "; changed " + ", ".join(map(str, changes)) if changes else ""
    if resubscribed:
        click.echo(f"Resubscribed {email.strip()} to {store.name}{said}.")
    else:
        click.echo(f"{email.strip()} is already active on {store.name}{said or '; nothing changed'}.")


@subscribers.command("set")
@click.argument("email")
@click.option("--name", help='Display name used in the greeting ("" clears it).')
@click.option("--keywords", help='Interests separated by ";", "," or a line break ("" clears them).')
@click.option("--frequency", type=click.Choice([f.value for f in Frequency]), help="Which issues they get.")
@list_option
@pass_app
def set_(
    app: AppContext,
    *,
    email: str,
    name: str | None,
    keywords: str | None,
    frequency: str | None,
    list_name: str | None,
) -> None:
    """Change one reader's name, keywords or frequency; their status stays as it is.

    Example: newsletter subscribers set bob@example.org --name Robert --keywords robotics
    """
    from ..subscribers.edit import set_fields

    if name is None and keywords is None and frequency is None:
        raise click.UsageError("pass at least one of --name, --keywords and --frequency")
    store = _store(app, list_name)
    changes = set_fields(
        store,
        email,
        name=name,
        keywords=keywords,
        frequency=Frequency(frequency) if frequency else None,
    )
    if changes:
        click.echo(f"Changed {email.strip()} on {store.name}: " + ", ".join(map(str, changes)) + ".")
    else:
        click.echo(f"{email.strip()} on {store.name} already has these values: nothing changed.")


@subscribers.command("remove")
@click.argument("email")
@list_option
@pass_app
def remove(app: AppContext, email: str, list_name: str | None) -> None:
    """Delete a subscriber's row entirely (use unsubscribe to keep a record).

    Example: newsletter subscribers remove ada@example.org --list lab
    """
    store = _store(app, list_name)
    if not store.remove(email):
        raise store.not_on_list(email)
    click.echo(f"Removed {email} from {store.name}.")


@subscribers.command("unsubscribe")
@click.argument("email")
@list_option
@pass_app
def unsubscribe(app: AppContext, email: str, list_name: str | None) -> None:
    """Mark a subscriber unsubscribed; later sends skip them.

    Example: newsletter subscribers unsubscribe ada@example.org
    """
    store = _store(app, list_name)
    current = store.get(email)
    if current is None:
        raise store.not_on_list(email)
    if store.unsubscribe(email):
        click.echo(f"Unsubscribed {email} from {store.name}.")
        return
    status = current.status
    click.echo(f"{email} was already {status} on {store.name}.")


@subscribers.command("list")
@click.option(
    "--status",
    type=click.Choice([status.value for status in STATUSES]),
    help="Only subscribers with this status.",
)
@click.option("--keyword", help="Only subscribers with a keyword containing this text.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV with every column.")
@list_option
@pass_app
def list_(
    app: AppContext,
    *,
    status: str | None,
    keyword: str | None,
    as_json: bool,
    as_csv: bool,
    list_name: str | None,
) -> None:
    """Show subscribers as a table, JSON or CSV.

    Example: newsletter subscribers list --status active --keyword diffusion
    """
    from ..subscribers.stats import format_table, matching, table_rows, write_csv
    from ..subscribers.writeback import header_for

    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    store = _store(app, list_name)
    chosen = matching(store.iter_subscribers([status] if status else None), keyword)
    if as_json:
        click.echo(json.dumps([s.as_json() for s in chosen], indent=2, ensure_ascii=False))
    elif as_csv:
        buffer = io.StringIO()
        write_csv(header_for(store), chosen, buffer)
        click.echo(buffer.getvalue(), nl=False)
    else:
        rows = table_rows(chosen)
        click.echo(format_table(["email", "name", "status", "keywords"], rows))
        click.echo(f"{len(rows)} subscriber{'s' if len(rows) != 1 else ''}")


@subscribers.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--on-conflict",
    type=click.Choice(["skip", "update"]),
    default="skip",
    show_default=True,
    help="What to do with addresses already on the list (update never re-subscribes).",
)
@click.option("--strict", is_flag=True, help="Import nothing if any row is rejected.")
@list_option
@deliverability_option
@pass_app
def import_(
    app: AppContext,
    *,
    file: Path,
    on_conflict: Literal["skip", "update"],  # click.Choice guarantees one of them
    strict: bool,
    list_name: str | None,
    check_deliverability: bool,
) -> None:
    """Merge a CSV (comma, semicolon or tab separated) into a list in one transaction.

    Columns other tools name differently (E-mail, Topics, Full name) are taken as ours; a file
    with a stray quote or a row of the wrong width is refused whole.

    Example: newsletter subscribers import signups.csv --on-conflict update
    """
    from ..subscribers.importing import import_file

    store = _store(app, list_name, must_exist=False)
    new = not store.exists()
    report = import_file(store, file, on_conflict, check_deliverability, strict)
    if new and store.exists() and store.csv_path is not None:
        from ..subscribers.writeback import write_back

        write_back(store, store.csv_path, create=True)  # a list made here is kept as a CSV file
    for problem in report.problems:
        click.echo(f"{problem} (rejected)", err=True)
    if strict and report.problems:
        raise SubscriberError(
            f"{report.rejected} rows rejected, nothing imported",
            where=str(file),
            fix="fix the rows listed above, or import without --strict",
        )
    click.echo(f"Imported {file} into {store.name}: {report.summary()}.")


@subscribers.command("export")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write to this file (atomically) instead of standard output.",
)
@click.option(
    "--status",
    type=click.Choice([status.value for status in STATUSES]),
    help="Only subscribers with this status.",
)
@click.option(
    "--raw",
    is_flag=True,
    help="Cells exactly as stored, for a backup to import again (not safe to open in a spreadsheet).",
)
@list_option
@pass_app
def export(
    app: AppContext, output: Path | None, status: str | None, raw: bool, list_name: str | None
) -> None:
    """Write the list as comma-separated UTF-8 CSV, every column kept, safe to open in a spreadsheet.

    A cell starting with = + - @, a tab or a carriage return gets a leading ' so a spreadsheet
    shows it as text instead of running it as a formula; --raw writes every cell as stored.

    Example: newsletter subscribers export -o backup.csv --raw
    """
    from ..files import atomic_write
    from ..subscribers.stats import write_csv
    from ..subscribers.writeback import header_for, write_back

    store = _store(app, list_name)
    if store.csv_path is not None:
        write_back(store, store.csv_path)  # an export is a safe point: the list's own file too
    header, chosen = header_for(store), store.iter_subscribers([status] if status else None)
    if output is None:
        write_csv(header, chosen, sys.stdout, raw=raw)
        return
    counted: list[int] = []

    def write(out: TextIO) -> None:
        counted.append(write_csv(header, chosen, out, raw=raw))

    # Addresses: a new export is owner-only like the database; an existing file keeps its mode.
    atomic_write(output, write, private=not output.exists())
    click.echo(f"Exported {counted[0]} subscribers from {store.name} to {output}.", err=True)


@subscribers.command("validate")
@list_option
@deliverability_option
@pass_app
def validate(app: AppContext, list_name: str | None, check_deliverability: bool) -> None:
    """Report every problem in a list's CSV file with its line; exit 1 if there is any.

    Example: newsletter subscribers validate --list lab
    """
    from ..subscribers.csvfile import missing_list_error
    from ..subscribers.rows import RowProblem, read_subscribers

    path = app.places.list_path(list_name)
    if not path.is_file():
        raise missing_list_error(path)
    problems: list[RowProblem] = []
    for _ in read_subscribers(path, deliverability=check_deliverability, on_problem=problems.append):
        pass
    for problem in problems:
        click.echo(str(problem))
    if problems:
        click.echo(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in {path}", err=True)
        sys.exit(1)
    click.echo(f"{path}: no problems")


@subscribers.command("sync")
@list_option
@pass_app
def sync(app: AppContext, list_name: str | None) -> None:
    """Merge subscribers/NAME.csv with the database now, and write the list back into it.

    A list kept only in the database (web sign-ups) gets its file here.

    Example: newsletter subscribers sync --list lab
    """
    from ..subscribers.writeback import write_back

    store = _store(app, list_name)
    path = store.csv_path or app.places.list_path(store.name)
    write_back(store, path, create=True)
    counts = store.counts()
    click.echo(
        f"Synced {store.name} with {path}: {sum(counts.values())} subscribers, {counts['active']} active."
    )


@subscribers.command("stats")
@click.option("--top", default=10, show_default=True, help="How many keywords to show.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@list_option
@pass_app
def stats(app: AppContext, top: int, as_json: bool, list_name: str | None) -> None:
    """Count subscribers by status, the top keywords of active ones, and web sign-ups per day.

    Example: newsletter subscribers stats --top 5
    """
    from ..subscribers.stats import list_stats

    store = _store(app, list_name)
    counted = list_stats(store.iter_subscribers())
    top_keywords = counted.top_keywords(top)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "list": store.name,
                    "total": counted.total,
                    "by_status": counted.by_status,
                    "without_keywords": counted.without_keywords,
                    "top_keywords": [{"keyword": k, "count": n} for k, n in top_keywords],
                    "signups_by_day": [
                        {"day": day.isoformat(), "pending": pending, "confirmed": confirmed}
                        for day, pending, confirmed in counted.signups_by_day()
                    ],
                }
            )
        )
        return
    click.echo(f"{store.name}: {counted.total} subscribers")
    for status, count in counted.by_status.items():
        click.echo(f"  {status:<13}{count:>6}")
    click.echo(f"Active without keywords: {counted.without_keywords}")
    click.echo("Top keywords (active):")
    for keyword, count in top_keywords:
        click.echo(f"  {count:>6}  {keyword}")
    signups = counted.signups_by_day()
    if signups:
        click.echo("Web sign-ups per day (still pending, confirmed):")
        for day, pending, confirmed in signups:
            click.echo(f"  {day}  {pending:>6}  {confirmed:>6}")


@subscribers.command("bounces")
@click.option(
    "--maildir", type=click.Path(path_type=Path, file_okay=False), help="Maildir holding bounce reports."
)
@click.option(
    "--mbox", type=click.Path(path_type=Path, dir_okay=False), help="mbox file holding bounce reports."
)
@list_option
@pass_app
def bounces(app: AppContext, maildir: Path | None, mbox: Path | None, list_name: str | None) -> None:
    """Mark readers whose mail bounces for good as bounced, and unsubscribe those who complain.

    A message counts only for the reader of the delivery it is about: it came back to that
    message's signed VERP return path (sender.verp), whatever its format, or it quotes the
    message's Message-ID. Permanent failures mark the reader; spam or policy blocks (5.7.x) only
    once `bounces.policy_blocks_to_mark` different messages were blocked; spam complaints (ARF)
    unsubscribe at once. Auto-replies change nothing. Every message is counted in one category.

    Example: newsletter subscribers bounces --maildir ~/Maildir/.Bounces
    """
    from ..bounces.handling import apply_bounces, read_messages, verp_check
    from ..store import open_database
    from ..store.history import sent_messages

    if (maildir is None) == (mbox is None):
        raise click.UsageError("pass exactly one of --maildir and --mbox")
    store = _store(app, list_name)
    db = open_database(app.settings.places.database())
    report = apply_bounces(
        store,
        read_messages(maildir, mbox),
        partial(sent_messages, db),
        verp_check(app.settings, db),
        policy_limit=app.settings.bounces.policy_blocks_to_mark,
    )
    for address in report.marked:
        click.echo(f"bounced: {address}")
    for address in report.unsubscribed:
        click.echo(f"unsubscribed (complaint): {address}")
    for unclear in report.unclear:
        click.echo(f"soft, cannot tell: {unclear.recipient}: {unclear.reason}")
    for address in report.unknown:
        click.echo(f"not on {store.name}: {address}", err=True)
    for ignored in report.ignored:
        click.echo(f"ignored: {ignored.recipient}: the report {ignored.reason}", err=True)
    click.echo(report.summary())


@subscribers.command("requests")
@click.option(
    "--maildir", type=click.Path(path_type=Path, file_okay=False), help="Maildir holding the requests."
)
@click.option(
    "--mbox", type=click.Path(path_type=Path, dir_okay=False), help="mbox file holding the requests."
)
@pass_app
def requests(app: AppContext, maildir: Path | None, mbox: Path | None) -> None:
    """Honour unsubscribe requests sent by email (the mailto: link in List-Unsubscribe).

    Only requests whose subject carries the token we minted for that address count.

    Example: newsletter subscribers requests --maildir ~/Maildir/.Unsubscribe
    """
    from ..bounces.handling import read_messages
    from ..subscribers.mailrequests import apply_mail_requests

    if (maildir is None) == (mbox is None):
        raise click.UsageError("pass exactly one of --maildir and --mbox")
    settings = app.settings
    if not settings.secret and (settings.smtp.is_embedded or settings.smtp.is_loopback):
        from ..pipeline.issue import LOCAL_SECRET

        # A local trial: its digests' mailto: links were signed with the stand-in, as `send` did.
        settings = settings.model_copy(update={"secret": LOCAL_SECRET})
        click.echo(
            "Warning: NEWSLETTER_SECRET is not set: honouring the requests of local trials only (mail "
            "sent to the embedded outbox or a server on this machine); set it before real mail's requests",
            err=True,
        )
    report = apply_mail_requests(settings, read_messages(maildir, mbox))
    for address in report.unsubscribed:
        click.echo(f"unsubscribed: {address}")
    for address in report.forged:
        click.echo(f"ignored, bad token: {address}", err=True)
    for address in report.unknown:
        click.echo(f"not on the list: {address}", err=True)
    click.echo(report.summary())
