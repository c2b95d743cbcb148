"""The pure helpers behind each paper card: cutting, shortening, highlighting, wrapping."""

from __future__ import annotations

from datetime import date

import pytest

from newsletter.render.highlight import HIGHLIGHT_CLOSE, HIGHLIGHT_OPEN, highlight
from newsletter.render.text import (
    cut_abstract,
    safe_url,
    shorten_authors,
    split_sentences,
    window_label,
    wrap_text,
)


def mark(text: str) -> str:
    return f"{HIGHLIGHT_OPEN}{text}{HIGHLIGHT_CLOSE}"


def test_abstract_is_cut_after_the_sentence_that_reaches_about_sixty_words() -> None:
    sentence = "This sentence has exactly ten words in it, you see. "
    text, was_cut = cut_abstract(sentence * 10)
    assert was_cut and text == (sentence * 6).strip()


def test_short_abstract_is_kept_whole() -> None:
    assert cut_abstract("  One line\n abstract.  ") == ("One line abstract.", False)


def test_sentences_do_not_end_at_common_abbreviations() -> None:
    text = "We compare to Smith et al. on ImageNet, e.g. at 4 steps. It works."
    assert split_sentences(text) == ["We compare to Smith et al. on ImageNet, e.g. at 4 steps.", "It works."]


def test_one_giant_sentence_is_cut_at_a_word_with_an_ellipsis() -> None:
    text, was_cut = cut_abstract(" ".join(f"word{i}," for i in range(200)) + " end.")
    assert was_cut and text.endswith("word59\u2026") and len(text.split()) == 60


@pytest.mark.parametrize(
    ("authors", "shown"),
    [
        ([], ""),
        (["A"], "A"),
        (["A", "B"], "A, B"),
        (["A", "B", "C"], "A, B, C"),
        (["A", "B", "C", "D"], "A, B, et al."),
        (["  ", "A\nB"], "A B"),
    ],
)
def test_authors_are_shortened_and_nothing_shows_when_unknown(authors: list[str], shown: str) -> None:
    assert shorten_authors(authors) == shown


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://arxiv.org/abs/2403.1", True),
        ("http://example.org/x?a=1&b=2", True),
        ("javascript:alert(1)", False),
        ("JAVASCRIPT:alert(1)", False),
        ("data:text/html,x", False),
        ("//example.org/x", False),
        ('https://example.org/"onmouseover=x', False),
        ("", False),
        (None, False),
    ],
)
def test_only_web_links_become_hrefs(url: str | None, kept: bool) -> None:
    assert (safe_url(url) is not None) is kept


def test_window_labels_are_compact() -> None:
    assert window_label(date(2024, 3, 8), date(2024, 3, 14)) == "8\u201314 Mar 2024"
    assert window_label(date(2024, 2, 28), date(2024, 3, 5)) == "28 Feb \u2013 5 Mar 2024"
    assert window_label(date(2023, 12, 28), date(2024, 1, 3)) == "28 Dec 2023 \u2013 3 Jan 2024"


def test_highlight_follows_the_rankers_word_forms() -> None:
    assert highlight("State-Space Models rock", ["state space model"]) == mark("State-Space Models") + " rock"
    assert highlight("a text-to-image model", ["text to image"]) == "a " + mark("text-to-image") + " model"


def test_highlight_does_not_join_words_across_punctuation() -> None:
    assert highlight("music, such as generating", ["music generation"]) == "music, such as generating"


def test_highlight_escapes_text_and_keywords_alike() -> None:
    assert (
        highlight("<b>diffusion</b> & co", ["diffusion"])
        == "&lt;b&gt;" + mark("diffusion") + "&lt;/b&gt; &amp; co"
    )
    assert highlight("x <script>", ["<script>"]) == "x &lt;" + mark("script") + "&gt;"


def test_wrap_keeps_short_lines_and_never_breaks_urls() -> None:
    url = "https://example.org/" + "a" * 80
    text = "short\n" + " ".join(["word"] * 30) + f"\n{url}\n== " + " ".join(["Title"] * 20)
    lines = wrap_text(text, 72).split("\n")
    assert lines[0] == "short" and url in lines
    assert all(len(line) <= 72 for line in lines if line != url)
    assert lines[-1].startswith("   ")  # a wrapped title hangs under its marker
