"""The semantic half of the ranker: a bundled static model, fused with words once per keyword."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from helpers.papers import ISSUE, unrelated_papers

from newsletter.errors import ConfigError
from newsletter.ranking import semantic
from newsletter.ranking.acronyms import Acronyms, long_form, short_form
from newsletter.ranking.selection import Ranker, ScoredPaper
from newsletter.settings import SelectionSettings
from newsletter.sources import load_papers

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def ids(scored: list[ScoredPaper]) -> list[str]:
    return [s.paper.id for s in scored]


@pytest.mark.parametrize(("keyword", "expected"), [("voice", "tts"), ("materials science", "alloys")])
def test_a_paraphrase_close_enough_in_meaning_finds_the_paper_that_shares_no_word_with_it(
    keyword: str, expected: str
) -> None:
    papers = unrelated_papers()
    assert Ranker(papers, ISSUE, SelectionSettings(semantic_weight=0)).rank([keyword]) == []
    picked = Ranker(papers, ISSUE, SelectionSettings(match_cosine=0.35)).rank([keyword], top=1)
    assert ids(picked) == [expected]
    # Cosine 0.36-0.40: on the judged sample week, as often wrong as right; not a match by default.
    assert Ranker(papers, ISSUE, SelectionSettings()).rank([keyword]) == []


def test_a_word_match_still_outranks_a_match_in_meaning_only() -> None:
    ranker = Ranker(unrelated_papers(), ISSUE, SelectionSettings(recency_weight=0, popularity_weight=0))
    picked = ranker.rank(["speech synthesis"], top=2)
    assert ids(picked)[0] == "tts"
    parts = picked[0].parts
    assert parts["words: speech synthesis"] == pytest.approx(1.0)
    assert 0 < parts["meaning: speech synthesis"] <= 1


def test_tokens_per_word_are_the_tokens_of_the_whole_text() -> None:
    """The per-word cache is only correct if no token spans a space: check on real abstracts."""
    model = semantic.load_model()
    tokenizer = model._tokenizer
    for paper in load_papers([EXAMPLES]).papers[:20]:
        text = " ".join(semantic.paper_text(paper.title, paper.abstract).split())
        whole = tokenizer.encode(text, add_special_tokens=False).ids  # type: ignore[attr-defined]
        assert model.token_ids(text) == whole


def test_vectors_are_unit_length_and_an_empty_text_is_all_zeros() -> None:
    vectors = semantic.load_model().embed(["diffusion models for images", "", "   "])
    assert vectors.dtype == np.float32
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-5)
    assert not vectors[1].any() and not vectors[2].any()


def test_similarity_scores_are_zero_when_nothing_stands_out() -> None:
    assert not semantic.similarity_scores(np.full(5, 0.4, dtype=np.float32)).any()
    assert semantic.similarity_scores(np.zeros(0, dtype=np.float32)).size == 0
    scaled = semantic.similarity_scores(np.array([0.1, 0.12, 0.11, 0.6], dtype=np.float32))
    assert scaled.tolist() == [0.0, 0.0, 0.0, 1.0]


def test_similarities_below_the_absolute_floor_never_count() -> None:
    """In a small window the closest paper can still be far: below MIN_COSINE it is not related."""
    low = np.array([0.01, 0.02, 0.03, 0.12], dtype=np.float32)
    assert not semantic.similarity_scores(low).any()


def test_a_missing_model_package_is_a_one_line_error_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(semantic, "model_files", lambda: None)
    semantic.load_model.cache_clear()
    try:
        with pytest.raises(ConfigError) as raised:
            Ranker(unrelated_papers(), ISSUE, SelectionSettings())
        assert "pip install" in raised.value.message and "semantic_weight = 0" in raised.value.message
        assert Ranker(unrelated_papers(), ISSUE, SelectionSettings(semantic_weight=0)).rank(["sort"])
    finally:
        semantic.load_model.cache_clear()


@pytest.mark.parametrize("keyword", ["basket weaving", "cooking recipes", "wine tasting", "knitting"])
def test_an_off_topic_interest_matches_no_sample_paper_by_meaning_alone(keyword: str) -> None:
    """A static model finds every text a little 'related': alone, meaning must be close for certain."""
    ranker = Ranker(load_papers([EXAMPLES]).papers, ISSUE, SelectionSettings())
    assert ranker.rank([keyword]) == []


def test_the_memory_mapped_table_is_the_shipped_tensor() -> None:
    from safetensors.numpy import load_file

    root = semantic.model_files()
    assert root is not None
    shipped = next(iter(load_file(str(root / semantic._WEIGHTS)).values()))
    assert np.array_equal(semantic.load_model().table, shipped)


@pytest.mark.parametrize(
    ("before", "short", "expected"),
    [
        (
            "Reward models are key in reinforcement learning from human feedback",
            "RLHF",
            "reinforcement learning from human feedback",
        ),
        ("We survey large language models", "LLMs", "large language models"),
        ("we apply Direct Preference Optimization", "DPO", "direct preference optimization"),
        ("a new kind of metric for images", "FID", None),  # the letters are not there: no guess
    ],
)
def test_an_acronym_is_spelled_out_only_by_words_that_spell_it(
    before: str, short: str, expected: str | None
) -> None:
    assert long_form(short, before) == expected


def test_acronyms_come_from_the_window_and_ordinary_words_are_left_alone() -> None:
    found = Acronyms(
        [
            "Reward models are key in reinforcement learning from human feedback (RLHF).",
            "We study Large Language Models (LLMs) (e.g. GPT) and (2024) results (see above).",
        ]
    )
    assert found.spelled_out("RLHF") == "RLHF reinforcement learning from human feedback"
    assert found.spelled_out("LLM agents") == "LLM agents large language models"
    assert found.spelled_out("music generation") == "music generation"
    assert found.get("GPT") is None and short_form("models") is None and short_form("LLMs") == "llm"


def _resident_kib(path: Path) -> int:
    """How much of a mapped file this process holds in memory now (Linux smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):  # a mapping's first line: range, mode, ..., path
            inside = line.endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").is_file(), reason="reads Linux's /proc/self/smaps")
def test_embedding_keeps_none_of_the_table_in_the_process_and_gives_the_same_vectors() -> None:
    """An issue's abstracts touch nearly every page of the table: the sender and each builder let go."""
    model = semantic.load_model()
    root = semantic.model_files()
    assert root is not None
    texts = [semantic.paper_text(p.title, p.abstract) for p in load_papers([EXAMPLES]).papers]
    first = model.embed(texts)
    assert _resident_kib(root / semantic._WEIGHTS) == 0
    again = model.embed(texts)
    assert np.array_equal(first, again)
    # A keyword (a few texts) is read with pread, not mapped: the same vector, nothing resident.
    alone = np.concatenate([model.embed([text]) for text in texts[:3]])
    assert np.array_equal(alone, first[:3]) and _resident_kib(root / semantic._WEIGHTS) == 0
    expected = model.table[model.token_ids(texts[0])].sum(axis=0, dtype=np.float32)
    assert np.allclose(first[0], expected / np.linalg.norm(expected))
