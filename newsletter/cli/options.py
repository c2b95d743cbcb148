"""Options shared by several commands: one definition and one help text for each, and their
parsers, each failing as a usage error (exit 2)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def parse_date(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    """YYYY-MM-DD, or 'today'."""
    if value is None:
        return None
    if value == "today":
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a date like 2026-11-28") from None


def parse_shard(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    """K/N with 1 <= K <= N."""
    if value is None:
        return None
    try:
        k_text, n_text = value.split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not K/N, e.g. 1/3") from None
    if not 1 <= k <= n:
        raise click.BadParameter(f"'{value}': K must be between 1 and N")
    return k, n


def parse_address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An address a message can be sent to, as a subscriber's is checked, and fit for a header."""
    if value is None:
        return None
    from ..mail.compose import HeaderValueError, checked_address  # only when an address is given
    from ..subscribers.csvfile import RowError
    from ..subscribers.rows import check_email

    try:
        return checked_address(check_email(value))
    except RowError as exc:
        raise click.BadParameter(str(exc)) from None
    except HeaderValueError as exc:
        raise click.BadParameter(f"{exc}: give one address like me@example.org") from None


papers_option = click.option(
    "--papers",
    "papers",
    multiple=True,
    type=click.Path(path_type=Path, exists=True),
    help="Papers file or folder (repeatable); default: `papers` and [[sources]] in the config.",
)
list_option = click.option(
    "--list",
    "list_name",
    metavar="NAME",
    help="Subscriber list: subscribers/NAME.csv (default: default_list in the config).",
)
issue_date_option = click.option(
    "--date",
    "issue_date",
    callback=parse_date,
    help="Issue date YYYY-MM-DD or 'today' (default: issue_date in the config, else today).",
)


ISSUE_HELP = (
    "Issue id: 2026-W48 (a week), 2026-11-28 (a day), or either with a label, e.g. 2026-W48-extra "
    "(default: the ISO week of --date)."
)


def parse_new_issue(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An id for an issue about to be made: a real week or day, spelt as the default ids are."""
    if value is None:
        return None
    from ..errors import NewsletterError
    from ..pipeline.issue import new_issue_id

    try:
        return new_issue_id(value)
    except NewsletterError as exc:
        raise click.BadParameter(exc.message) from None


def parse_past_issue(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An issue already made, spelt as the default ids are (2024-w11 finds 2024-W11)."""
    if value is None:
        return None
    from ..pipeline.issue import normalised_issue_id

    return normalised_issue_id(value)


def issue_option(help: str = ISSUE_HELP, *, past: bool = False) -> Callable[[F], F]:
    """--issue: by default the issue a run makes; `past` for a command that reads one made before."""
    callback = parse_past_issue if past else parse_new_issue
    return click.option("--issue", "issue_id", metavar="ID", callback=callback, help=help)
