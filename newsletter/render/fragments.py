"""Fragments rendered once and filled many times: CSS inlining and slot-token splitting.

A fragment is rendered with opaque tokens (a random per-issue prefix plus a slot name) where
per-subscriber values go. After premailer has inlined the CSS, the fragment is split around
the tokens once; filling it for a subscriber is then a join of already-escaped values. The
tokens are only ever searched for in our own rendered output, never in filled-in values.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

import premailer

from .text import wrap_text


def inline_css(html: str) -> str:
    """Inline a document's CSS with premailer, offline; @media rules stay in a leftover <style>."""
    inliner = premailer.Premailer(
        html,
        allow_network=False,
        allow_loading_external_files=False,
        disable_validation=True,
        disable_link_rewrites=True,
        keep_style_tags=False,
        remove_classes=False,
        strip_important=False,  # the leftover @media rules need !important to beat inline styles
        cssutils_logging_level=logging.CRITICAL,
    )
    return str(inliner.transform())


class Slotted:
    """A rendered fragment split around slot tokens, so filling it is a join, not a re-render."""

    __slots__ = ("names", "statics")

    def __init__(self, text: str, token: re.Pattern[str]) -> None:
        pieces = token.split(text)
        self.statics = pieces[0::2]
        self.names = pieces[1::2]

    def fill(self, values: Mapping[str, str]) -> str:
        out = [self.statics[0]]
        for name, static in zip(self.names, self.statics[1:], strict=False):
            out.append(values[name])
            out.append(static)
        return "".join(out)


class TextShell:
    """The text shell by lines: static lines wrapped once, lines with slots wrapped when filled."""

    __slots__ = ("lines",)

    def __init__(self, text: str, token: re.Pattern[str]) -> None:
        self.lines: list[str | Slotted] = [
            Slotted(line, token) if token.search(line) else wrap_text(line) for line in text.split("\n")
        ]

    def fill(self, values: Mapping[str, str]) -> str:
        out = []
        for line in self.lines:
            if isinstance(line, str):
                out.append(line)
            elif line.names == ["cards"]:  # cards are wrapped once per paper already
                out.append(line.fill(values))
            else:
                out.append(wrap_text(line.fill(values)))
        return "\n".join(out)
