"""TeX and markup left in titles and abstracts, turned into what a reader expects, once, at loading.

arXiv and the daily-paper listings carry the authors' LaTeX: ``better'' quotes, 85\\% escapes,
\\emph{...}, $\\mathcal{O}(n)$ and accents such as Schr\\"odinger; some listings have already lost
the backslashes ("mathcal{O}", "1leq p"). Every reader sends title and abstract through
`clean_text` (common.require_text), so ranking, the mail and the archive all see the same text.
"""

from __future__ import annotations

import re
import unicodedata

# \% -> %, and the other characters TeX makes authors escape.
_ESCAPED = re.compile(r"\\([%&#_$])")
# ``quoted'' -> “quoted”; a '' left over closes a quote after a word and opens one before a word.
_OPEN_QUOTES = re.compile(r"``")
_CLOSE_AFTER_WORD = re.compile(r"(?<=\S)''")
_OPEN_BEFORE_WORD = re.compile(r"''(?=\S)")
# Text-style commands whose argument is the text: \emph{word} -> word; \mathcal{O} -> O.
_STYLED = re.compile(
    r"\\?(?:emph|textbf|textit|texttt|textsc|textrm|text|mathrm|mathbf|mathit|mathsf|mathtt|mathcal"
    r"|mathbb|mathfrak|operatorname)\s*\{([^{}]*)\}"
)
_STYLED_LETTER = re.compile(r"\\?math(?:cal|frak|bb|bf|rm|sf|it)\s+(\w)")  # \mathfrak S -> S
_SYMBOLS = {
    "leq": "\u2264",
    "le": "\u2264",
    "geq": "\u2265",
    "ge": "\u2265",
    "neq": "\u2260",
    "infty": "\u221e",
    "times": "\u00d7",
    "approx": "\u2248",
    "cdot": "\u00b7",
    "pm": "\u00b1",
    "sim": "~",
    "ldots": "\u2026",
    "dots": "\u2026",
}
_SYMBOL = re.compile(r"\\(" + "|".join(sorted(_SYMBOLS, key=len, reverse=True)) + r")(?![A-Za-z])")
# The same symbols where a listing dropped the backslash, only between math-looking neighbours:
# "1leq p" and "p<infty", never inside a word ("sleq" or "infinity" stay as they are).
_BARE_SYMBOL = re.compile(r"(?:(?<=\d)|(?<=[<>=(\s]))(leq|geq|infty)(?![A-Za-z])")
# Accents: \"o, \'{e}, {\`a} -> ö, é, à (the combining mark, then NFC).
_ACCENTS = {'"': "\u0308", "'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303", "=": "\u0304"}
_ACCENT = re.compile(r"\{?\\([\"'`^~=])\{?([A-Za-z])\}?\}?")
# Inline math $...$ (short, on one line): the dollars go, the formula stays.
_INLINE_MATH = re.compile(r"(?<!\\)\$([^$\n]{1,120}?)\$")
# Two stops in a row, or a stop then an ellipsis: "challenge.…" -> "challenge…".
_DOUBLE_STOP = re.compile(r"([.!?,;:])\s?(\u2026|\.\.\.)")


def clean_text(text: str) -> str:
    """A title or abstract with its TeX quotes, escapes, accents and stray markup made plain text."""
    if "\\" not in text and "`" not in text and "''" not in text and "$" not in text and "math" not in text:
        return _DOUBLE_STOP.sub(_keep_ellipsis, text) if "." in text else text
    text = _ACCENT.sub(_accented, text)
    text = _INLINE_MATH.sub(r"\1", text)
    for _ in range(3):  # nested commands, \emph{\textbf{x}}, unwrap one level per pass
        unwrapped = _STYLED.sub(r"\1", text)
        if unwrapped == text:
            break
        text = unwrapped
    text = _STYLED_LETTER.sub(r"\1", text)
    text = _SYMBOL.sub(lambda m: _SYMBOLS[m.group(1)], text)
    text = _BARE_SYMBOL.sub(lambda m: _SYMBOLS[m.group(1)], text)
    text = _ESCAPED.sub(r"\1", text)
    text = _OPEN_QUOTES.sub("\u201c", text)
    text = _CLOSE_AFTER_WORD.sub("\u201d", text)
    text = _OPEN_BEFORE_WORD.sub("\u201c", text)
    return _DOUBLE_STOP.sub(_keep_ellipsis, text)


def _accented(match: re.Match[str]) -> str:
    return unicodedata.normalize("NFC", match.group(2) + _ACCENTS[match.group(1)])


def _keep_ellipsis(match: re.Match[str]) -> str:
    """'word.…' reads as 'word…'; a question or exclamation mark keeps its meaning: '?…'."""
    return match.group(1) + "\u2026" if match.group(1) in "?!" else "\u2026"
