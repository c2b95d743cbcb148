"""Force a digest into light or dark mode, so one page can show both side by side.

A browser has one `prefers-color-scheme` per page, so each frame gets its own copy of the HTML
with the media feature rewritten to something always true (the scheme shown) or never true.
"""

from __future__ import annotations

import enum
import re

_FEATURE = re.compile(r"\(\s*prefers-color-scheme\s*:\s*(light|dark)\s*\)", re.IGNORECASE)
_COLOR_SCHEME_META = re.compile(
    r"(<meta\s+name=[\"'](?:supported-)?color-scheme[\"']\s+content=[\"'])[^\"']*([\"'])", re.IGNORECASE
)
_ALWAYS = "(min-width: 0px)"
_NEVER = "(max-width: -1px)"  # a negative length makes the query invalid, and an invalid query is false


class Scheme(enum.StrEnum):
    """The two colour schemes a mail client may ask for."""

    LIGHT = "light"
    DARK = "dark"


def force_scheme(html: str, scheme: Scheme) -> str:
    """The HTML as a client preferring `scheme` renders it, whatever the viewer's own setting."""

    def swap(match: re.Match[str]) -> str:
        return _ALWAYS if match.group(1).lower() == scheme.value else _NEVER

    html = _FEATURE.sub(swap, html)
    return _COLOR_SCHEME_META.sub(lambda m: f"{m.group(1)}{scheme.value}{m.group(2)}", html)
