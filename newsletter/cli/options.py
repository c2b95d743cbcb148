"""Option parsers shared by several commands, each failing as a usage error (exit 2)."""

from __future__ import annotations

from datetime import date

import click


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
