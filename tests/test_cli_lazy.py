"""The CLI registers its commands lazily: `--help` lists them all, `subscribers add` imports little.

These check which modules a command imports, never how long it takes (that is for
benchmarks/bench_unsubscribe.py to print).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import click
from click.testing import CliRunner
from helpers.lists import store_of, write

from newsletter.cli import COMMANDS, main
from newsletter.cli.app import NewsletterGroup

PACKAGE = Path(__file__).resolve().parents[1] / "newsletter"
HEAVY = ("premailer", "numpy", "wordllama", "starlette", "uvicorn", "aiosmtplib", "jinja2")
# List commands read their three settings without pydantic: it costs more than the whole command.
PYDANTIC = ("pydantic", "pydantic_core", "pydantic_settings")
# Our own stages `subscribers add` has no use for: each drags in some of the above.
UNNEEDED = ("newsletter.render", "newsletter.web", "newsletter.pipeline", "newsletter.ranking")


# The console script's own code path, then every module loaded, on stderr so output stays apart.
RUN_AND_LIST = """
import sys
from newsletter.cli import main
try:
    main(sys.argv[1:], prog_name="newsletter")
except SystemExit as done:
    print("\\n".join(sorted(sys.modules)), file=sys.stderr)
    raise
"""


def imported_by(args: list[str], cwd: Path, **variables: str) -> set[str]:
    """Every module a fresh `newsletter ARGS` process has loaded once the command is done."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")} | variables
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return set(done.stderr.split())


def offenders(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


def test_the_lazy_table_names_every_command_module_with_its_real_short_help() -> None:
    modules = {
        f"newsletter.cli.{path.stem}"
        for path in (PACKAGE / "cli").glob("*.py")
        if path.stem not in {"__init__", "app", "options"}
    }
    assert {target.partition(":")[0] for target, _ in COMMANDS.values()} == modules
    for name, (target, short_help) in COMMANDS.items():
        command = main.lazy[name].load()
        assert isinstance(command, click.Command), target
        assert command.name == name
        assert command.get_short_help_str(limit=10_000) == short_help, (
            f"COMMANDS['{name}'] in newsletter/cli/__init__.py says {short_help!r}; "
            "copy the first paragraph of the command's docstring there"
        )


def test_help_from_the_table_is_the_help_of_the_loaded_commands() -> None:
    lazy = NewsletterGroup("newsletter")
    loaded = NewsletterGroup("newsletter")
    for name, (target, short_help) in COMMANDS.items():
        lazy.add_lazy_command(name, target, short_help)
        loaded.add_command(main.lazy[name].load(), name)
    for width in (50, 80, 120):
        lazy_help = CliRunner().invoke(lazy, ["--help"], terminal_width=width).output
        loaded_help = CliRunner().invoke(loaded, ["--help"], terminal_width=width).output
        assert lazy_help == loaded_help
    assert not lazy.commands  # rendering the help imported nothing


def test_help_lists_every_command_without_importing_them(tmp_path: Path) -> None:
    modules = imported_by(["--help"], tmp_path)
    assert offenders(modules, tuple(t.partition(":")[0] for t, _ in COMMANDS.values())) == []
    assert offenders(modules, HEAVY) == []


def test_subscribers_add_imports_only_the_subscriber_code(tmp_path: Path) -> None:
    env = {"NEWSLETTER_SECRET": "s" * 40, "NEWSLETTER_BASE_URL": "https://news.example.org"}
    # The first command on a hand-kept list reads the file in; a later add finds it unchanged.
    kept = write(tmp_path / "subscribers" / "lab.csv", "email\nbob@example.org\n")
    os.utime(kept, (time.time() - 60, time.time() - 60))  # saved a while ago, not moments ago
    imported_by(["subscribers", "list", "--list", "lab"], tmp_path, **env)
    modules = imported_by(["subscribers", "add", "ada@example.org", "--list", "lab"], tmp_path, **env)
    assert store_of(tmp_path / "subscribers" / "lab.csv").get("ada@example.org") is not None
    assert "newsletter.store.subscribers" in modules  # the report is real
    assert offenders(modules, HEAVY + PYDANTIC) == []
    assert offenders(modules, UNNEEDED) == []
    shared = {"newsletter.cli.app", "newsletter.cli.options"}  # the group, and the options commands share
    others = {m for m in modules if m.startswith("newsletter.cli.")} - shared
    assert others == {"newsletter.cli.subscribers"}


def test_the_command_after_a_hand_edit_loads_only_the_numpy_the_merge_uses(tmp_path: Path) -> None:
    env = {"NEWSLETTER_SECRET": "s" * 40, "NEWSLETTER_BASE_URL": "https://news.example.org"}
    kept = write(tmp_path / "subscribers" / "lab.csv", "email\nbob@example.org\n")
    imported_by(["subscribers", "list", "--list", "lab"], tmp_path, **env)
    kept.write_text("email\nbob@example.org\ncy@example.org\n")
    modules = imported_by(["subscribers", "add", "ada@example.org", "--list", "lab"], tmp_path, **env)
    assert store_of(kept, sync=False).get("cy@example.org") is not None  # the edit was merged
    assert "numpy" in modules and offenders(modules, ("numpy.ma",)) == []  # masked arrays: 0.1 s


def test_a_list_command_leaves_tables_to_the_commands_that_read_them(tmp_path: Path) -> None:
    (tmp_path / "subscribers").mkdir()
    (tmp_path / "subscribers" / "lab.csv").write_text("email\nada@example.org\n", encoding="utf-8")
    modules = imported_by(["subscribers", "list", "--list", "lab"], tmp_path, NEWSLETTER_SMTP__PORT="2525x")
    assert offenders(modules, PYDANTIC) == []
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    refused = subprocess.run(
        [sys.executable, "-m", "newsletter", "send", "--dry-run"],
        cwd=tmp_path,
        env=env | {"NEWSLETTER_SMTP__PORT": "2525x"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith("Error: NEWSLETTER_SMTP__PORT (setting 'smtp.port') is invalid")
