"""A list name becomes subscribers/NAME.csv, so it is checked everywhere it enters: never a path."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli.app import main
from newsletter.errors import ConfigError
from newsletter.mail.tokens import Purpose, TokenSigner, make_legacy_token
from newsletter.safety.listnames import check_list_name, is_list_name
from newsletter.settings import Settings, load_settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's TestClient prefers httpx2; httpx works
    from starlette.testclient import TestClient

from newsletter.web.app import create_app

HOSTILE = ["../evil", "a/../../evil", "sub/list", "..", ".hidden", "a\\b", "-rf", "", "x" * 65, "évil", "a b"]
GOOD = ["example", "lab-weekly", "ml_2024.v2", "_drafts", "A", "x" * 64]


@pytest.mark.parametrize("name", GOOD)
def test_plain_names_are_list_names(name: str) -> None:
    assert is_list_name(name) and check_list_name(name) == name


@pytest.mark.parametrize("name", HOSTILE)
def test_names_that_could_leave_the_folder_are_refused_in_one_line(name: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_list_name(name)
    assert "\n" not in refused.value.message
    assert "is not a list name" in refused.value.message and "letters, digits" in refused.value.message


def files_outside(project: Path) -> list[Path]:
    """Every .csv anywhere under the test's tmp folder except the subscribers folder."""
    return [p for p in project.parent.rglob("*.csv") if "subscribers" not in p.parts]


@pytest.mark.parametrize(
    "command",
    [
        ["subscribers", "add", "x@example.org"],
        ["subscribers", "list"],
        ["subscribers", "unsubscribe", "x@example.org"],
        ["send", "--dry-run"],
        ["preview"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
@pytest.mark.parametrize("name", ["../evil", "../../evil", ".evil"])
def test_every_command_refuses_a_path_as_list_name(project: Path, command: list[str], name: str) -> None:
    before = files_outside(project)
    result = CliRunner().invoke(main, [*command, "--list", name])
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().startswith(f"Error: '{name}' is not a list name"), result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert files_outside(project) == before
    assert not (project / ".evil.csv").exists()


def test_the_configured_default_list_is_checked_when_the_settings_load(project: Path) -> None:
    config = project / "newsletter.toml"
    config.write_text(config.read_text().replace('default_list = "example"', 'default_list = "../evil"'))
    with pytest.raises(ConfigError) as refused:
        load_settings(config)
    assert "default_list" in refused.value.message and "not a list name" in refused.value.message


@pytest.mark.parametrize("kind", ["opaque", "legacy"])
def test_the_unsubscribe_page_refuses_a_path_even_with_a_valid_token(tmp_path: Path, kind: str) -> None:
    secret = "Zq7-list-name-test-secret-9fK2mW4xR8vB1nT6"
    (tmp_path / "subscribers").mkdir()
    settings = Settings(secret=secret, subscribers_dir=tmp_path / "subscribers", config_dir=tmp_path)
    name, email = "../evil", "x@example.org"
    if kind == "opaque":  # even a link we signed ourselves (no code path signs such a name)
        query = {"t": TokenSigner(secret).sign(Purpose.UNSUBSCRIBE, name, email)}
    else:
        query = {"list": name, "email": email, "token": make_legacy_token(secret, name, email)}
    client = TestClient(create_app(settings), follow_redirects=False)
    response = client.post("/unsubscribe", params=query, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code in (400, 403, 404)
    assert not (tmp_path / "evil.csv").exists() and not (tmp_path / "evil.csv.lock").exists()
