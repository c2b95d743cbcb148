"""What a subscriber list may be called: the name becomes a file name, so it must never be a path."""

from __future__ import annotations

import re

from ..errors import ConfigError

# Letters, digits, '-', '_' and '.'; the first is a letter, digit or '_' (no hidden files, no
# '..', no option-looking '-x'); no separators. ASCII only, so the file name is the same on
# every file system and in every URL.
_LIST_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
RULE = "letters, digits, '-', '_' and '.', starting with a letter, digit or '_', at most 64 characters"


def is_list_name(name: str) -> bool:
    """True for a name that is safe as subscribers/NAME.csv."""
    return _LIST_NAME.fullmatch(name) is not None


def check_list_name(name: str, where: str = "--list") -> str:
    """The name itself, or a one-line error saying what a list name may contain."""
    if is_list_name(name):
        return name
    shown = repr(name[:70] + ("..." if len(name) > 70 else ""))
    raise ConfigError(
        f"{shown} is not a list name",
        where=where,
        fix=f"use {RULE}, e.g. 'lab-weekly'",
    )
