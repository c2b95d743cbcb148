"""Strict parsers for what a reader's software parses: XML by the letter, HTML as the WHATWG spec says."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import html5lib
from hypothesis import strategies as st

# The characters that broke outputs before, mixed into otherwise ordinary text.
NASTY = ["\x00", "\x07", "\x0b", "\x1b", "\x7f", "\x85", "\ud800", "\udfff", "\ufffe", "\uffff", "\ufdd0"]
NASTY += ["\U0001fffe", "]]>", "<script>", "&", "\u202e", "\r\n", "\t"]


def hostile_text(*, surrogates: bool = True) -> st.SearchStrategy[str]:
    """Any code point at all (lone surrogates and controls included), leaning on the known-bad ones."""
    anything = st.characters(codec=None if surrogates else "utf-8", exclude_categories=())
    nasty = [c for c in NASTY if surrogates or not ("\ud800" <= c[0] <= "\udfff")]
    piece = st.one_of(st.sampled_from(nasty), st.text(anything, max_size=8), st.just("Bell"))
    return st.lists(piece, min_size=1, max_size=8).map("".join)


def assert_well_formed_xml(text: str) -> ET.Element:
    """Parse as XML 1.0; a forbidden character anywhere raises."""
    return ET.fromstring(text.encode("utf-8"))


def assert_valid_html5(text: str) -> None:
    """Parse as HTML5 in strict mode: any parse error (a control character, a noncharacter) raises."""
    parser = html5lib.HTMLParser(strict=True)
    parser.parse(text)
