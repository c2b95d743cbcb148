"""The `newsletter` command group: settings loaded lazily, library errors turned into one line."""

from __future__ import annotations

import importlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import click

from .. import __version__
from ..errors import NewsletterError
from ..safety.private import private_dir, private_file

if TYPE_CHECKING:  # loaded by the first command that needs it: --help and --version never do
    from ..configfile import ListPlaces
    from ..settings import Settings


class AppContext:
    """What every command needs: the settings, loaded lazily so --help never reads a file."""

    def __init__(self, config: Path | None, verbose: bool) -> None:
        self.config = config
        self.verbose = verbose
        self._settings: Settings | None = None
        self._places: ListPlaces | None = None
        self._logging = False

    @property
    def settings(self) -> Settings:
        """Every setting, validated (pydantic): what send, serve and doctor need."""
        if self._settings is None:
            from ..settings import load_settings

            self._settings = load_settings(self.config)
            self._start_log(self._settings.places)
        return self._settings

    @property
    def places(self) -> ListPlaces:
        """Where lists live, without validating the rest: all a list command needs, and fast."""
        if self._settings is not None:
            return self._settings.places
        if self._places is None:
            from ..configfile import load_list_places

            self._places = load_list_places(self.config)
            self._start_log(self._places)
        return self._places

    def _start_log(self, places: ListPlaces) -> None:
        if places.log_file is not None and not self._logging:
            _log_to_file(places.path(places.log_file))
            self._logging = True


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


@dataclass(frozen=True)
class LazyCommand:
    """A command known by name, import path and short help, imported only when it runs."""

    target: str  # "package.module:attribute"
    short_help: str  # the first paragraph of its docstring, for --help without the import

    def load(self) -> click.Command:
        module, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.target} is not a click command")
        return command


class NewsletterGroup(click.Group):
    """A group whose commands report NewsletterError as 'Error: ...' and exit 1.

    Commands are registered lazily (click's LazyGroup pattern): `newsletter subscribers add`
    imports the subscriber code only, not the renderer, the web server or the ranking models.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, LazyCommand] = {}

    def add_lazy_command(self, name: str, target: str, short_help: str) -> None:
        """Register a command by import path; it is imported the first time it is looked up."""
        self.lazy[name] = LazyCommand(target, short_help)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(self.lazy[cmd_name].load(), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command table of --help, from the registered short helps: nothing is imported."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            command = self.commands.get(name)
            if command is not None:
                if command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(limit)))
            else:
                # Shortened exactly as click shortens a loaded command's help.
                stand_in = click.Command(name, help=self.lazy[name].short_help)
                rows.append((name, stand_in.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NewsletterError as exc:
            app = ctx.find_object(AppContext)
            if app is not None and app.verbose:
                raise
            raise click.ClickException(exc.message) from exc
        finally:
            # Close the database as a process exit would, so a command run in-process (tests,
            # tools) leaves no connection open. Only a command that used the store imported it.
            opening = sys.modules.get("newsletter.store.opening")
            if opening is not None:
                opening.forget_databases()


class ConsoleFormatter(logging.Formatter):
    """Log warnings and errors on the terminal look like the commands' own 'Warning:' and 'Error:'
    lines (one style, whoever says it); --verbose adds the logger's name and shows the rest."""

    LABELS: ClassVar[dict[int, str]] = {
        logging.WARNING: "Warning",
        logging.ERROR: "Error",
        logging.CRITICAL: "Error",
    }

    def __init__(self, verbose: bool) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        label = self.LABELS.get(record.levelno)
        if label is None:
            return super().format(record)
        text = f"{label}: {record.getMessage()}"
        if self.verbose:
            text += f" ({record.name})"
            if record.exc_info:
                text += "\n" + self.formatException(record.exc_info)
        return text


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
    console.setFormatter(ConsoleFormatter(verbose))
    console.addFilter(lambda record: not getattr(record, "shown_to_user", False))
    package = logging.getLogger("newsletter")
    package.handlers = [console]
    package.setLevel(logging.DEBUG if verbose else logging.WARNING)
    ctx.obj = AppContext(config, verbose)


pass_app = click.make_pass_decorator(AppContext)
