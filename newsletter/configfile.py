"""newsletter.toml and the NEWSLETTER_* variables as plain values, and where subscriber lists live.

settings.py validates every setting with pydantic. A command that only touches a subscriber list
needs a few of them, so it reads them here (`load_list_places`) and starts without pydantic,
which costs more than the whole command. Both paths share the reading, the key names and the
rules for those three values, so they agree (tests/test_configfile.py checks that they do).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .store.database import Place
from .safety.listnames import RULE as LIST_NAME_RULE
from .safety.listnames import check_list_name, is_list_name

CONFIG_NAME = "newsletter.toml"
PREFIX = "NEWSLETTER_"
# Every top-level setting, tables included: tests keep this equal to the fields of Settings.
TOP_LEVEL_KEYS = frozenset(
    {
        "title",
        "secret",
        "secret_previous",
        "base_url",
        "papers",
        "sources",
        "fetch",
        "serve",
        "preview",
        "cache_dir",
        "issue_date",
        "default_list",
        "subscribers_dir",
        "templates_dir",
        "ledger",
        "database_url",
        "archive_dir",
        "feedback_db",
        "log_file",
        "send_empty_digests",
        "on_uncertain",
        "lease_seconds",
        "reconnect_seconds",
        "sender",
        "smtp",
        "selection",
        "dkim",
        "bounces",
    }
)
DEFAULT_LIST = "example"
SUBSCRIBERS_DIR = Path("subscribers")
DATABASE_FILE = Path("newsletter.db")
FIX_HINT = "correct it in the file or in the matching NEWSLETTER_<SECTION>__<KEY> variable"


def find_config(explicit: Path | None = None) -> Path | None:
    """The config file to use: --config, else ./newsletter.toml, else none (defaults only)."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(
                f"config file {explicit} not found",
                fix="check the --config path or create one (see README, Configuration)",
            )
        return explicit
    candidate = Path.cwd() / CONFIG_NAME
    return candidate if candidate.is_file() else None


def read_config(path: Path | None) -> dict[str, Any]:
    """The file's tables as a dict (empty without a file); bad TOML is one line naming the file."""
    if path is None:
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc})", fix="fix the syntax at that line") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text", fix="save it as UTF-8") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {path} ({exc.strerror})", fix="check its permissions") from exc


def describe(path: Path | None) -> str:
    """Where settings came from, for error messages."""
    return str(path) if path is not None else f"the environment (no {CONFIG_NAME} in {Path.cwd()})"


def environment() -> dict[str, str]:
    """NEWSLETTER_* variables by lower-case key without the prefix: 'smtp__port' -> '2525'."""
    return {
        name[len(PREFIX) :].lower(): value
        for name, value in os.environ.items()
        if name.upper().startswith(PREFIX)
    }


def check_key_names(data: dict[str, Any], where: str) -> None:
    """A misspelt top-level key, in the file or the environment, is an error naming it."""
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"unknown setting '{key}'", where=where, fix=_rename_hint(key, key))
    for variable in os.environ:
        if not variable.upper().startswith(PREFIX):
            continue
        key = variable[len(PREFIX) :].split("__", 1)[0].lower()
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(
                f"unknown setting {variable} in the environment",
                fix=_rename_hint(key, PREFIX + key, prefix=PREFIX),
            )


def _rename_hint(key: str, shown: str, prefix: str = "", known: Iterable[str] = TOP_LEVEL_KEYS) -> str:
    """'did you mean ...?' with the nearest known name, spelt as `shown` spells the key."""
    import difflib  # only on a misspelt key: keeps start-up small

    close = difflib.get_close_matches(key, sorted(known), n=1)
    if close:
        named = shown[: len(shown) - len(key)] + close[0]
        named = named.upper() if prefix else named
        if prefix:
            return f"did you mean {named}? Rename it, or unset it"
        return f"did you mean '{named}'? Rename it, or remove it"
    if prefix:
        return "unset it, or name a setting as NEWSLETTER_<KEY> or NEWSLETTER_<SECTION>__<KEY>"
    return "remove it, or see README, Configuration, for the settings there are"


def unknown_setting(loc: tuple[int | str, ...], known: Iterable[str], where: str) -> ConfigError:
    """A misspelt key inside a table, said as a misspelt top-level key is: with the nearest name."""
    key = str(loc[-1])
    dotted = ".".join(str(part) for part in loc)
    variable = variable_for(loc)
    if variable is None:
        return ConfigError(
            f"unknown setting '{dotted}'", where=where, fix=_rename_hint(key, dotted, known=known)
        )
    if variable.upper() == (PREFIX + "__".join(str(p) for p in loc if isinstance(p, str))).upper():
        return ConfigError(
            f"unknown setting {variable} in the environment",
            fix=_rename_hint(key, variable, prefix=PREFIX, known=known),
        )
    return ConfigError(  # a whole table given as JSON, e.g. NEWSLETTER_SOURCES
        f"{variable} (setting '{dotted}') has an unknown key '{key}'",
        where="the environment",
        fix=_rename_hint(key, key, known=known).replace("remove it", f"remove it from {variable}"),
    )


def variable_for(loc: tuple[int | str, ...]) -> str | None:
    """The environment variable that set this key, when one did (it beats the file)."""
    names = [str(part) for part in loc if isinstance(part, str)]
    if not names:
        return None
    for depth in range(len(names), 0, -1):  # NEWSLETTER_SMTP__PORT, else a whole NEWSLETTER_SMTP
        wanted = (PREFIX + "__".join(names[:depth])).upper()
        found = next((name for name in os.environ if name.upper() == wanted), None)
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class ListPlaces:
    """Where subscriber lists, the database and the run log live: all a list command reads."""

    config_dir: Path
    subscribers_dir: Path = SUBSCRIBERS_DIR
    default_list: str = DEFAULT_LIST
    log_file: Path | None = None
    ledger: Path = DATABASE_FILE  # the SQLite database file, when database_url is not set
    database_url: str | None = None

    def database(self) -> Place:
        """The database these settings name: PostgreSQL by database_url, else the SQLite file."""
        from .store.database import place_of  # SQLAlchemy only for commands that open the store

        return place_of(self.database_url, self.path(self.ledger))

    def path(self, value: Path) -> Path:
        """Resolve a configured path the way a user reading the config file expects."""
        value = value.expanduser()
        return value if value.is_absolute() else self.config_dir / value

    def list_path(self, name: str | None = None) -> Path:
        """Where the CSV of a subscriber list lives; a name that would leave the folder is refused."""
        return self.path(self.subscribers_dir) / f"{check_list_name(name or self.default_list)}.csv"


def list_name_problem(value: str) -> str | None:
    """Why a configured default_list cannot be a list name, or None when it can."""
    return None if is_list_name(value) else f"{value!r} is not a list name: use {LIST_NAME_RULE}"


def load_list_places(explicit: Path | None = None) -> ListPlaces:
    """The list settings from the file and the environment, checked as load_settings checks them.

    Tables such as [smtp] are not validated here: the commands that use them (send, serve,
    doctor) do. Top-level key names are, so a misspelt subscribers_dir never means another folder.
    """
    path = find_config(explicit)
    data = read_config(path)
    where = describe(path)
    check_key_names(data, where)
    variables = environment()
    values: dict[str, Any] = {}
    for key in ("subscribers_dir", "default_list", "log_file", "ledger", "database_url"):
        if key in variables:
            values[key] = (variables[key], variable_for((key,)))
        elif key in data:
            values[key] = (data[key], None)

    def text(key: str) -> str | None:
        if key not in values:
            return None
        value, variable = values[key]
        if isinstance(value, str):
            return value
        raise invalid_setting(key, 'it must be text in quotes, like "subscribers"', variable, where)

    default_list = text("default_list")
    if default_list is not None and (problem := list_name_problem(default_list)):
        raise invalid_setting("default_list", problem, values["default_list"][1], where)
    subscribers_dir, log_file, ledger = text("subscribers_dir"), text("log_file"), text("ledger")
    return ListPlaces(
        config_dir=(path.parent if path else Path.cwd()).resolve(),
        subscribers_dir=Path(subscribers_dir) if subscribers_dir is not None else SUBSCRIBERS_DIR,
        default_list=default_list if default_list is not None else DEFAULT_LIST,
        log_file=Path(log_file) if log_file is not None else None,
        ledger=Path(ledger) if ledger is not None else DATABASE_FILE,
        database_url=text("database_url") or None,
    )


def invalid_setting(key: str, why: str, variable: str | None, where: str) -> ConfigError:
    """One line naming the key, and the variable that set it when one did (it beats the file)."""
    if variable is not None:
        return ConfigError(
            f"{variable} (setting '{key}') is invalid: {why}",
            where="the environment",
            fix=f"correct or unset {variable}",
        )
    return ConfigError(f"setting '{key}' is invalid: {why}", where=where, fix=FIX_HINT)
