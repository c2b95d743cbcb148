"""Settings: the file, the environment over it, and what counts as a server on this machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from newsletter.errors import ConfigError
from newsletter.settings import Settings, SmtpSettings, environment_values, load_settings


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_servers_on_this_machine_are_loopback(host: str) -> None:
    assert SmtpSettings(host=host).is_loopback


@pytest.mark.parametrize(
    "host", ["smtp.example.org", "10.0.0.1", "192.168.1.10", "embedded", "localhost.example.org"]
)
def test_other_servers_are_not_loopback(host: str) -> None:
    assert not SmtpSettings(host=host).is_loopback


def test_environment_overrides_one_key_of_a_section_and_keeps_the_rest(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "newsletter.toml"
    config.write_text('[smtp]\nhost = "smtp.example.org"\nport = 587\nconnections = 8\n', encoding="utf-8")
    monkeypatch.setenv("NEWSLETTER_SMTP__PORT", "2525")

    settings = load_settings(config)

    assert (settings.smtp.host, settings.smtp.port, settings.smtp.connections) == (
        "smtp.example.org",
        2525,
        8,
    )
    assert settings.path(settings.ledger) == tmp_path / "newsletter.db"


def test_unknown_key_is_an_error_naming_key_and_file(tmp_path: Path) -> None:
    config = tmp_path / "newsletter.toml"
    config.write_text('[smtp]\nhots = "x"\n', encoding="utf-8")

    with pytest.raises(ConfigError) as raised:
        load_settings(config)

    assert "smtp.hots" in raised.value.message and str(config) in raised.value.message


@pytest.mark.parametrize(
    ("toml", "variable", "expected"),
    [
        (
            'titel = "x"\n',
            None,
            "unknown setting 'titel', in {config}, did you mean 'title'? Rename it, or remove it",
        ),
        (
            '[smtp]\nhots = "x"\n',
            None,
            "unknown setting 'smtp.hots', in {config}, did you mean 'smtp.host'? Rename it, or remove it",
        ),
        (
            '[[sources]]\nkind = "hf"\nqeury = "x"\n',
            None,
            "unknown setting 'sources.0.qeury', in {config}, did you mean 'sources.0.query'? "
            "Rename it, or remove it",
        ),
        (
            "",
            "NEWSLETTER_SMTP__HOTS",
            "unknown setting NEWSLETTER_SMTP__HOTS in the environment, did you mean NEWSLETTER_SMTP__HOST? "
            "Rename it, or unset it",
        ),
        (
            "",
            "NEWSLETTER_SELECTION__TOPN",
            "unknown setting NEWSLETTER_SELECTION__TOPN in the environment, "
            "did you mean NEWSLETTER_SELECTION__TOP_N? Rename it, or unset it",
        ),
    ],
    ids=["top level", "table", "list of tables", "variable", "variable with underscore"],
)
def test_a_misspelt_key_inside_a_table_gets_the_hint_a_top_level_one_gets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: str, variable: str | None, expected: str
) -> None:
    for name in [n for n in os.environ if n.upper().startswith("NEWSLETTER_")]:
        monkeypatch.delenv(name)
    config = tmp_path / "newsletter.toml"
    config.write_text(toml, encoding="utf-8")
    if variable:
        monkeypatch.setenv(variable, "3")

    with pytest.raises(ConfigError) as raised:
        load_settings(config)

    assert raised.value.message == expected.format(config=config)


def test_plain_variables_read_without_pydantic_settings_as_it_reads_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic_settings import EnvSettingsSource

    for name in [n for n in os.environ if n.upper().startswith("NEWSLETTER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("NEWSLETTER_SECRET", " a secret with spaces ")
    monkeypatch.setenv("newsletter_base_url", "https://news.example.org")
    monkeypatch.setenv("NEWSLETTER_SEND_EMPTY_DIGESTS", "yes")
    monkeypatch.setenv("NEWSLETTER_ISSUE_DATE", "2026-12-01")
    monkeypatch.setenv("NEWSLETTER_LOG_FILE", "")
    monkeypatch.setenv("NEWSLETTER_NOT_A_SETTING", "ignored here, refused by load_settings")

    def source() -> dict[str, object]:  # it reads the environment when made
        return dict(
            EnvSettingsSource(
                Settings,  # type: ignore[arg-type]  # as newsletter.settings uses it
                case_sensitive=False,
                env_prefix="NEWSLETTER_",
                env_nested_delimiter="__",
            )()
        )

    assert environment_values() == source()
    monkeypatch.setenv("NEWSLETTER_SMTP__PORT", "2525")  # nested: pydantic-settings reads them all
    monkeypatch.setenv("NEWSLETTER_SOURCES", '[{"kind": "hf"}]')
    assert environment_values() == source()
    assert environment_values()["smtp"] == {"port": "2525"}
