"""Plain-text helpers every stage uses: whitespace, word splitting, keyword lists, scrubbing.

Two scrubbers, one set of rules: `strip_forbidden_chars` for text that markup holds (line
breaks and bidi marks are content there), and `scrub_controls` for foreign text that is one line
by nature (a reader's name, a keyword, a CSV cell): no line breaks, no controls (ESC and the C1
set among them), no direction changes. `one_line` is that, trimmed, for a mail header, a terminal
or a report cell. Reader text is scrubbed where it comes in (web forms, list files, import, the
CLI) and again where it goes out (exports, list files, the digest, headers).
"""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_SPACE = re.compile(r"\s+")
# Outside XML 1.0's Char production (C0 controls but tab/LF/CR, lone surrogates, U+FFFE/FFFF), plus
# what HTML parsers report as errors though XML allows it: DEL, the C1 controls, the noncharacters.
_NONCHARACTERS = "".join(chr(plane * 0x10000 + low) for plane in range(1, 17) for low in (0xFFFE, 0xFFFF))
_NOT_IN_MARKUP = re.compile(
    "[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufdcf\ufdf0-\ufffd\U00010000-\U0010ffff]|[" + _NONCHARACTERS + "]"
)
# The C0 and C1 controls (tab, CR and LF among them), DEL, and the Unicode line and paragraph
# separators: each run becomes one space on a line of its own.
CONTROLS_AND_BREAKS = "\x00-\x1f\x7f-\x9f\u2028\u2029"
# Bidirectional controls (U+202E RIGHT-TO-LEFT OVERRIDE and kin) make a Subject, a name or a
# server's reply display in another order than it reads ("txt.exe" shown as "exe.txt").
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_CONTROL_RUN = re.compile(f"[{CONTROLS_AND_BREAKS}]+")
_BIDI = re.compile(f"[{BIDI_CONTROLS}]")
# Anything either scrubber would change: one search lets clean text (nearly all) through as it is.
_UNSAFE = re.compile(f"[{CONTROLS_AND_BREAKS}{BIDI_CONTROLS}]|{_NOT_IN_MARKUP.pattern}")
# Keywords are separated by ';', ',' or a line break (what str.splitlines calls one).
_KEYWORD_SEPARATOR = re.compile("[;,\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def strip_forbidden_chars(text: str) -> str:
    """Text that any XML or HTML output can hold: a BEL in a paper title must not break the feed."""
    return _NOT_IN_MARKUP.sub("", text)


def scrub_controls(text: str) -> str:
    """Foreign one-line text that nothing can forge or reorder: a name cannot colour a terminal
    (ESC), end a CSV row, or display as another string (U+202E: "Ada\u202etxt.exe" as "Adaexe.txt").

    Controls and line breaks fold to a space, bidi controls are dropped, and what markup cannot
    hold (noncharacters, lone surrogates) goes too, so the text is also safe in any markup.
    """
    if _is_clean(text):
        return text
    return strip_forbidden_chars(_CONTROL_RUN.sub(" ", _BIDI.sub("", text)))


def _is_clean(text: str) -> bool:
    # isprintable() is one scan in C and false for every control, bidi control (format characters),
    # separator but the space, surrogate and noncharacter: the search only runs for the rest.
    return text.isprintable() or not _UNSAFE.search(text)


def scrub_cells(row: list[str]) -> list[str]:
    """A row of CSV cells scrubbed; one search for the whole row, as nearly every row is clean."""
    return row if _is_clean("".join(row)) else [scrub_controls(cell) for cell in row]


def one_line(text: str) -> str:
    """Foreign text for one line (a header, a terminal, a report cell): scrubbed and trimmed."""
    return scrub_controls(text).strip()


def squash_whitespace(text: str) -> str:
    """Titles and abstracts arrive with line breaks from LaTeX-ish sources; show them as one line."""
    return _SPACE.sub(" ", text).strip()


def words(text: str) -> list[str]:
    """Split on anything that is not a letter or digit, so 'state-space' equals 'state space'."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _WORD.findall(folded)


def split_keywords(text: str | None) -> list[str]:
    """The one keyword rule for the CSV, the CLI, import, the web form and ranking.

    Separated by ';', ',' or a line break; controls and bidi controls scrubbed; spaces inside a
    keyword collapse to one; empty parts and repeats (ignoring case, the first spelling kept)
    are dropped.
    """
    seen: dict[str, str] = {}
    for part in _KEYWORD_SEPARATOR.split(text or ""):
        word = " ".join(scrub_controls(part).split())
        if word and word.lower() not in seen:
            seen[word.lower()] = word
    return list(seen.values())
