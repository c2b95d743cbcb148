"""Every command explains itself in --help (a purpose and an example) and is in the README."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from newsletter.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def command_paths(
    command: click.Command, path: tuple[str, ...] = ("newsletter",)
) -> Iterator[tuple[str, ...]]:
    """Every command and subcommand, groups included, as the words a user types."""
    yield path
    if isinstance(command, click.Group):
        for name in command.list_commands(click.Context(command)):
            yield from command_paths(subcommand(command, name), (*path, name))


def subcommand(group: click.Group, name: str) -> click.Command:
    """A group's command by name, imported if it is registered lazily (as the root's are)."""
    found = group.get_command(click.Context(group), name)
    assert found is not None, name
    return found


def resolve(path: tuple[str, ...]) -> click.Command:
    command: click.Command = main
    for name in path[1:]:
        assert isinstance(command, click.Group)
        command = subcommand(command, name)
    return command


PATHS = list(command_paths(main))


def test_the_walk_finds_every_registered_command() -> None:
    names = {" ".join(p) for p in PATHS}
    for expected in (
        "newsletter send",
        "newsletter papers rank",
        "newsletter subscribers import",
        "newsletter doctor",
        "newsletter archive",
    ):
        assert expected in names


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_help_starts_with_a_one_line_purpose(path: tuple[str, ...]) -> None:
    lines = (resolve(path).help or "").strip().splitlines()

    assert lines and lines[0].strip(), f"`{' '.join(path)}` has no help text"
    assert len(lines) == 1 or not lines[1].strip(), (
        f"`{' '.join(path)}`: the purpose runs onto a second line: {lines[:2]}"
    )


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_help_shows_an_example_of_the_command(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path[1:], "--help"])

    assert result.exit_code == 0, result.output
    examples = [line.strip() for line in result.output.splitlines() if line.strip().startswith("Example:")]
    assert examples, f"`{' '.join(path)} --help` has no 'Example:' line"
    assert any(" ".join(path) in line for line in examples), (
        f"`{' '.join(path)}`'s example does not run it: {examples}"
    )


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_command_is_mentioned_in_the_readme(path: tuple[str, ...]) -> None:
    readme = README.read_text(encoding="utf-8")

    pattern = r"\s+".join(re.escape(word) for word in path) + r"(?![\w-])"
    assert re.search(pattern, readme), f"README.md never mentions `{' '.join(path)}`"


def _blocks(language: str) -> list[str]:
    readme = README.read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", readme, flags=re.S)


def test_the_quick_start_commands_are_what_ci_runs() -> None:
    install_and_send, tests = _blocks("sh")[:2]
    assert install_and_send.strip() == "./install.sh && .venv/bin/newsletter send"
    install, run_tests = tests.strip().split(" && ")
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert install in ci
    # CI runs the README's test command in two steps, the browser suites apart: together, all of it.
    assert f'{run_tests} -m "not browser"' in ci and f"{run_tests} -m browser" in ci


def test_every_cron_and_systemd_line_calls_the_installed_path() -> None:
    lines = [line for block in _blocks("cron") + _blocks("ini") for line in block.splitlines()]
    calls = [line for line in lines if "newsletter " in line and not line.lstrip().startswith(("#", "Desc"))]
    assert calls
    for line in calls:
        words = re.findall(r"([^\s=]*newsletter)\s+(?:send|archive)", line)
        assert words and all(word == "/srv/digest/.venv/bin/newsletter" for word in words), line


def test_install_sh_reinstalls_the_project_itself_every_time() -> None:
    # uv keeps an installed non-editable project whose version did not change: without this,
    # `./install.sh` after a `git pull` runs yesterday's code.
    import tomllib

    root = README.parent
    name = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]
    script = (root / "install.sh").read_text(encoding="utf-8").splitlines()
    sync = [line for line in script if " sync " in line]
    assert len(sync) == 1 and f"--reinstall-package {name} " in sync[0]


def test_the_readme_does_not_copy_the_theme_onto_itself_in_a_checkout() -> None:
    from newsletter.render.digest import builtin_templates_dir

    text = README.read_text(encoding="utf-8")
    step = text[text.index("### Designing your own template") :]
    step = step[: step.index("builtin_templates_dir()")]
    if builtin_templates_dir() == README.parent / "templates":  # this checkout: cp -r templates templates
        assert "In a checkout" in step and "is the\n   default theme itself" in step


def test_the_readme_says_what_the_browser_tests_need_and_how_long_the_rest_take() -> None:
    text = README.read_text(encoding="utf-8")
    testing = text[text.index("To run the tests:") :][:800]
    assert "chromium-driver" in testing and '-m "not browser"' in testing
    assert re.search(r"about \d+ minutes", testing), testing
