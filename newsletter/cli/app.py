"""The `newsletter` command group: settings loaded lazily, library errors turned into one line."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..errors import NewsletterError
from ..safety.private import private_dir, private_file
from ..settings import Settings, load_settings


class AppContext:
    """What every command needs: the settings, loaded lazily so --help never reads a file."""

    def __init__(self, config: Path | None, verbose: bool) -> None:
        self.config = config
        self.verbose = verbose
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
            if self._settings.log_file is not None:
                _log_to_file(self._settings.path(self._settings.log_file))
        return self._settings


def _log_to_file(path: Path) -> None:
    """Keep a record of every run (summaries at INFO) in the file the settings name."""
    try:
        private_file(private_dir(path.parent) / path.name)
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise NewsletterError(
            f"cannot open the log file ({exc.strerror})",
            where=str(path),
            fix="make the folder writable or change log_file",
        ) from exc
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    package = logging.getLogger("newsletter")
    package.addHandler(handler)
    package.setLevel(min(package.level or logging.WARNING, logging.INFO))


class NewsletterGroup(click.Group):
    """A group whose commands report NewsletterError as 'Error: ...' and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NewsletterError as exc:
            app = ctx.find_object(AppContext)
            if app is not None and app.verbose:
                raise
            raise click.ClickException(exc.message) from exc


@click.group(cls=NewsletterGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Settings file (default: ./newsletter.toml).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log detail and show tracebacks.")
@click.version_option(__version__, prog_name="newsletter")
@click.pass_context
def main(ctx: click.Context, config: Path | None, verbose: bool) -> None:
    """Send every subscriber a digest of the research papers that matter to them.

    Example: newsletter send --dry-run
    """
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if verbose else logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    console.addFilter(lambda record: not getattr(record, "shown_to_user", False))
    package = logging.getLogger("newsletter")
    package.handlers = [console]
    package.setLevel(logging.DEBUG if verbose else logging.WARNING)
    ctx.obj = AppContext(config, verbose)


pass_app = click.make_pass_decorator(AppContext)
