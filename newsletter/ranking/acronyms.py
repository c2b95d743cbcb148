"""Acronyms the window's papers define ("reinforcement learning from human feedback (RLHF)").

A static embedding model knows words, not acronyms: "RLHF" is four letter tokens to it, close to
nothing. Papers spell their acronyms out, so the window itself says what "RLHF" means; a keyword's
meaning is then taken from its words and their long forms. Found once per issue, on first use,
with the Schwartz-Hearst rule (each letter of the short form, in order, inside the long form, the
first one starting a word).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

_DEFINED = re.compile(r"\(\s*([A-Za-z][A-Za-z0-9\-]{1,9})\s*\)")
_CLAUSE_END = re.compile(r"[().;:!?\[\]]")
_SHORT = re.compile(r"^(?=(?:.*[A-Z]){2})[A-Za-z][A-Za-z0-9\-]{1,9}$")  # two capitals at least
MAX_FORMS = 50_000  # distinct short forms kept per issue; bounded against hostile abstracts


def short_form(word: str) -> str | None:
    """The acronym a word is, as a lookup key ('LLMs' -> 'llm'), or None for an ordinary word."""
    word = word.strip(".,;:!?\"'()[]")
    if not _SHORT.match(word):
        return None
    if word.endswith("s") and word[:-1].isupper():
        word = word[:-1]
    return word.lower()


def long_form(short: str, before: str) -> str | None:
    """The words just before '(SHORT)' that spell it out, or None when they do not."""
    letters = [c.lower() for c in short if c.isalnum()]
    if len(letters) > 1 and short.endswith("s") and short[:-1].isupper():
        letters = letters[:-1]
    words = before.split()[-min(len(letters) + 5, 2 * len(letters)) :]
    text = " ".join(words)
    at = len(text) - 1
    for position in range(len(letters) - 1, -1, -1):
        wanted = letters[position]
        while at >= 0 and (
            text[at].lower() != wanted or (position == 0 and at > 0 and text[at - 1].isalnum())
        ):
            at -= 1
        if at < 0:
            return None
        at -= 1
    start = text.rfind(" ", 0, at + 2) + 1
    found = text[start:].strip(" -,\"'`")
    if len(found) <= len(short) or short.lower() in found.lower().split():
        return None
    return found.lower()


class Acronyms:
    """Short form -> its most common long form among the texts given."""

    def __init__(self, texts: Iterable[str]) -> None:
        seen: dict[str, Counter[str]] = {}
        for text in texts:
            for match in _DEFINED.finditer(text):
                short = match.group(1)
                key = short_form(short)
                if key is None or (key not in seen and len(seen) >= MAX_FORMS):
                    continue
                before = text[max(0, match.start() - 200) : match.start()]
                cut = max((m.end() for m in _CLAUSE_END.finditer(before)), default=0)
                found = long_form(short, before[cut:])
                if found:
                    seen.setdefault(key, Counter())[found] += 1
        self._forms = {key: counts.most_common(1)[0][0] for key, counts in seen.items()}

    def __len__(self) -> int:
        return len(self._forms)

    def get(self, word: str) -> str | None:
        """The long form of a word that is a known acronym, else None."""
        key = short_form(word)
        return self._forms.get(key) if key else None

    def spelled_out(self, keyword: str) -> str:
        """The keyword followed by the long forms of its acronyms: what its meaning is taken from."""
        forms = [found for word in keyword.split() if (found := self.get(word))]
        return " ".join([keyword, *dict.fromkeys(forms)])
