"""Settings: the file, the environment over it, and what counts as a server on this machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.errors import ConfigError
from newsletter.settings import SmtpSettings, load_settings


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
