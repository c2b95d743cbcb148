"""List commands read where lists live without pydantic; they must agree with the full settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from newsletter.configfile import TOP_LEVEL_KEYS, ListPlaces, load_list_places
from newsletter.errors import ConfigError
from newsletter.settings import Settings, load_settings

CASES = {
    "no file": (None, {}),
    "defaults in a file": ("title = 'Lab'\n", {}),
    "all three in the file": (
        "subscribers_dir = 'lists'\ndefault_list = 'lab'\nlog_file = 'logs/run.log'\n[smtp]\nport = 2525\n",
        {},
    ),
    "absolute and home paths": ("subscribers_dir = '/srv/lists'\nlog_file = '~/newsletter.log'\n", {}),
    "the environment beats the file": (
        "subscribers_dir = 'lists'\ndefault_list = 'lab'\n",
        {"NEWSLETTER_SUBSCRIBERS_DIR": "other", "newsletter_default_list": "weekly.v2"},
    ),
    "an empty variable": ("log_file = 'run.log'\n", {"NEWSLETTER_LOG_FILE": ""}),
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [n for n in os.environ if n.upper().startswith("NEWSLETTER_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_the_key_names_are_the_settings_fields() -> None:
    assert set(Settings.model_fields) - {"config_dir", "config_file"} == TOP_LEVEL_KEYS


@pytest.mark.parametrize("case", CASES)
def test_list_places_are_what_the_full_settings_say(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, variables = CASES[case]
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    if text is not None:
        (tmp_path / "newsletter.toml").write_text(text, encoding="utf-8")

    light = load_list_places()

    assert isinstance(light, ListPlaces)
    assert light == load_settings().places
    assert light.list_path("lab") == load_settings().list_path("lab")
    assert light.list_path() == load_settings().list_path()


MISTAKES = {
    "a misspelt key": ("subscriber_dir = 'lists'\n", {}, "unknown setting 'subscriber_dir'"),
    "a path that is a number": ("subscribers_dir = 5\n", {}, "setting 'subscribers_dir' is invalid"),
    "a list name that is a path": ("default_list = '../evil'\n", {}, "setting 'default_list' is invalid"),
    "a bad list name in the environment": (
        "",
        {"NEWSLETTER_DEFAULT_LIST": "a/b"},
        "NEWSLETTER_DEFAULT_LIST (setting 'default_list') is invalid",
    ),
    "a misspelt variable": (
        "",
        {"NEWSLETTER_SUBSCRIBER_DIR": "x"},
        "unknown setting NEWSLETTER_SUBSCRIBER_DIR",
    ),
    "broken TOML": ("default_list = \n", {}, "is not valid TOML"),
}


@pytest.mark.parametrize("case", MISTAKES)
def test_both_refuse_the_same_mistakes_in_one_line(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, variables, said = MISTAKES[case]
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "newsletter.toml").write_text(text, encoding="utf-8")

    for load in (load_list_places, load_settings):
        with pytest.raises(ConfigError) as raised:
            load()
        assert said in raised.value.message, (load.__name__, raised.value.message)
        assert "\n" not in raised.value.message
        if not variables:
            assert str(tmp_path / "newsletter.toml") in raised.value.message


def test_a_misspelt_key_gets_a_suggestion(tmp_path: Path) -> None:
    (tmp_path / "newsletter.toml").write_text("subscriber_dir = 'lists'\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_list_places()
    assert "did you mean 'subscribers_dir'?" in raised.value.message
