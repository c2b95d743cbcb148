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
    return compact_css(str(inliner.transform()))


# premailer writes style="..." or, when a value holds a double quote (font names), style='...'.
_STYLE_ATTRIBUTE = re.compile(r"""(\sstyle=)(["'])(.*?)\2""", re.DOTALL)
_STYLE_ELEMENT = re.compile(r"(<style\b[^>]*>)(.*?)(</style>)", re.DOTALL | re.IGNORECASE)
# A declaration ends at a ';' outside quotes and parentheses (url(a;b), "x;y" stay whole).
_DECLARATION = re.compile(r"""(?:"[^"]*"|'[^']*'|\([^)]*\)|[^;"'(])+""")
_BOX = frozenset({"margin", "padding"})
_LENGTH = re.compile(r"-?(?:\d+(?:\.\d+)?(?:px|em|rem|%)?|auto)")


def compact_css(html: str) -> str:
    """The same CSS in fewer bytes: every byte of the inlined styles is paid for in every message.

    Inline styles lose the spaces premailer puts between declarations and box shorthands their
    repeated sides (`margin:0 0 8px 0` is `margin:0 0 8px`); the leftover <style> loses its
    indentation. No value, selector or media query changes meaning.
    """
    html = _STYLE_ATTRIBUTE.sub(
        lambda m: m.group(1) + m.group(2) + _compact_declarations(m.group(3)) + m.group(2), html
    )
    return _STYLE_ELEMENT.sub(lambda m: m.group(1) + _compact_sheet(m.group(2)) + m.group(3), html)


def _compact_declarations(style: str) -> str:
    declarations = []
    for declaration in _DECLARATION.findall(style):
        name, colon, value = declaration.partition(":")
        name, value = name.strip(), " ".join(value.split())
        if not (colon and name and value):
            continue
        if name.lower() in _BOX:
            value = _box_shorthand(value)
        declarations.append(f"{name}:{value}")
    return ";".join(declarations)


def _box_shorthand(value: str) -> str:
    """`a b c d` as CSS reads it (top right bottom left), written with the fewest sides."""
    sides = value.split(" ")
    if len(sides) != 4 or not all(_LENGTH.fullmatch(side) for side in sides):
        return value
    top, right, bottom, left = sides
    if right != left:
        return value
    if top != bottom:
        return f"{top} {right} {bottom}"
    return top if top == right else f"{top} {right}"


def _compact_sheet(css: str) -> str:
    """A style sheet without its indentation: spaces only where CSS needs them."""
    css = " ".join(css.split())
    css = re.sub(r"\s*([{};,])\s*", r"\1", css).replace(";}", "}")
    return re.sub(r":\s+", ":", css).replace(" !important", "!important")


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

    def pieces(self, values: Mapping[str, str | list[str]]) -> list[str]:
        """`fill` left unjoined (a value may be pieces too): shared pieces stay the same objects,
        so compose encodes each once (mail/compose.py HtmlEncoder)."""
        out = [self.statics[0]]
        for name, static in zip(self.names, self.statics[1:], strict=False):
            value = values[name]
            if isinstance(value, str):
                out.append(value)
            else:
                out += value
            out.append(static)
        return out


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
