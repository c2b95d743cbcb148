"""'More / less like this': the signed links in every card, the one-button page, the store, the ranking."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from click.testing import CliRunner
from helpers.papers import ISSUE, make_paper

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette prefers httpx2 for its TestClient; httpx works
    from starlette.testclient import TestClient

from newsletter.cli import main
from newsletter.mail.tokens import Purpose, TokenSigner
from newsletter.models import Subscriber
from newsletter.pipeline.build import DigestBuilder
from newsletter.pipeline.issue import LinkSigner, prepare_issue
from newsletter.ranking.feedback import Taste, Verdict
from newsletter.ranking.feedbackstore import FeedbackStore
from newsletter.ranking.selection import Ranker
from newsletter.settings import SelectionSettings, Settings
from newsletter.web.app import create_app

SECRET = "feedback-test-secret-Zq7mW4xR8vB1nT6kP3yH"  # serve needs a strong one
ROOT = Path(__file__).resolve().parent.parent

DIFFUSION = "Diffusion models generate images by denoising. We study score matching for image synthesis."
PAPERS = [
    make_paper("img1", "Faster sampling for image diffusion models", DIFFUSION),
    make_paper("img2", "Guidance for image diffusion models", DIFFUSION + " Guidance improves samples."),
    make_paper(
        "mus1", "Diffusion models for music generation", "We generate music audio with diffusion models."
    ),
    make_paper(
        "mus2", "Symbolic music with diffusion models", "Diffusion models write MIDI music for composers."
    ),
]


def ids(scored: list) -> list[str]:
    return [s.paper.id for s in scored]


def taste_of(ranker: Ranker, liked: tuple[str, ...] = (), disliked: tuple[str, ...] = ()) -> Taste:
    def pair(pid: str) -> tuple[str, np.ndarray]:
        vector = ranker.vector_of(pid)
        assert vector is not None
        return pid, vector

    return Taste.of([pair(p) for p in liked], [pair(p) for p in disliked])


def test_liking_a_music_paper_lifts_the_other_music_paper_above_the_image_papers() -> None:
    ranker = Ranker(PAPERS, ISSUE, SelectionSettings(recency_weight=0, popularity_weight=0))
    before = ids(ranker.rank(["diffusion models"]))
    after = ranker.rank(["diffusion models"], taste=taste_of(ranker, liked=("mus1",)))
    assert before.index("mus2") > 0
    assert ids(after)[0] == "mus2" and "mus1" not in ids(after)  # the liked paper itself was sent already
    assert after[0].feedback > 0 and after[0].liked > 0


def test_disliking_sinks_neighbours_and_bans_near_duplicates() -> None:
    copy = make_paper("img1v2", "Faster sampling for image diffusion models (v2)", DIFFUSION)
    ranker = Ranker([*PAPERS, copy], ISSUE, SelectionSettings(recency_weight=0, popularity_weight=0))
    picked = ranker.rank(["diffusion models"], taste=taste_of(ranker, disliked=("img1",)))
    assert "img1v2" not in ids(picked) and "img1" not in ids(picked)
    assert ids(picked)[-1] == "img2"  # the disliked paper's neighbour sinks to the bottom
    assert picked[-1].parts["feedback"] < 0


def test_feedback_weight_zero_ignores_feedback() -> None:
    ranker = Ranker(PAPERS, ISSUE, SelectionSettings(feedback_weight=0))
    plain = ids(ranker.rank(["diffusion models"]))
    assert ids(ranker.rank(["diffusion models"], taste=taste_of(ranker, disliked=("img1",)))) == plain


def test_the_store_keeps_the_latest_verdict_per_reader_and_paper(tmp_path: Path) -> None:
    ranker = Ranker(PAPERS, ISSUE, SelectionSettings())
    store = FeedbackStore(tmp_path / "feedback.db")
    store.remember(ranker.papers, ranker.vectors)
    store.record("news", "Ada@Example.org", "mus1", Verdict.LESS)
    store.record("news", "ada@example.org", "mus1", Verdict.MORE)  # changed their mind
    store.record("news", "ada@example.org", "unknown-paper", Verdict.MORE)  # never in an issue: unused
    store.record("other", "bob@example.org", "img1", Verdict.LESS)
    tastes = FeedbackStore(tmp_path / "feedback.db").tastes("news")
    assert list(tastes) == ["ada@example.org"]
    assert tastes["ada@example.org"].liked_ids == ("mus1",) and not tastes["ada@example.org"].disliked_ids
    remembered = store.paper("mus1")
    assert remembered is not None and remembered.title == PAPERS[2].title


def test_papers_rank_like_and_dislike_try_feedback_offline(tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--config", str(ROOT / "newsletter.toml"), "papers", "rank", "--papers", str(ROOT / "examples")]
    args = [*base, "--date", "2024-03-14", "--keywords", "music generation", "--json"]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    ranked = json.loads(first.output)
    liked, disliked = ranked[2]["id"], ranked[0]["id"]
    again = runner.invoke(main, [*args, "--like", liked, "--dislike", disliked, "--explain"])
    assert again.exit_code == 0, again.output
    after = json.loads(again.output)
    assert liked not in [p["id"] for p in after] and disliked not in [p["id"] for p in after]
    assert any(p["parts"].get("feedback") for p in after)
    unknown = runner.invoke(main, [*args, "--like", "no-such-paper"])
    assert unknown.exit_code == 2 and "no paper with id 'no-such-paper'" in unknown.output


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    folder = tmp_path / "subscribers"
    folder.mkdir()
    (folder / "news.csv").write_text(
        "email,name,keywords,status,subscribed_at,unsubscribed_at\n"
        "ada@example.org,Ada,music generation,active,,\n",
        encoding="utf-8",
    )
    return Settings(
        secret=SECRET,
        base_url="https://digest.example.org",
        subscribers_dir=folder,
        config_dir=tmp_path,
        papers=[ROOT / "examples"],
        issue_date=ISSUE,
    )


def card_links(html: str) -> list[str]:
    return re.findall(r'href="(https://digest\.example\.org/feedback\?[^"]+)"', html)


def test_a_card_link_opens_a_one_button_page_and_only_the_post_records(settings: Settings) -> None:
    issue = prepare_issue(settings, list_name="news", remember_papers=True)
    builder = DigestBuilder(settings, issue, LinkSigner(SECRET, settings.base_url or ""))
    reader = Subscriber(email="ada@example.org", name="Ada", keywords=["music generation"])
    built = builder.build(reader)
    assert built is not None
    links = card_links(built.digest.html)
    assert len(links) == 2 * len(built.picks)
    assert all("ada" not in link.lower() for link in links)  # no address in any URL
    assert "More like this: https://digest.example.org/feedback?t=" in built.digest.text
    more = links[0].replace("&amp;", "&")
    assert more.endswith("&v=more")

    client = TestClient(create_app(settings))
    path = urlsplit(more)
    shown = client.get(f"{path.path}?{path.query}")
    assert shown.status_code == 200 and '<form method="post"' in shown.text
    assert built.picks[0].paper.title.split(":")[0] in shown.text
    assert not FeedbackStore(settings.path(settings.feedback_db)).tastes("news")  # a GET records nothing

    recorded = client.post(f"{path.path}?{path.query}")
    assert recorded.status_code == 200 and "move up" in recorded.text
    assert client.post(f"{path.path}?{path.query.replace('t=', 't=x')}").status_code == 403

    next_issue = prepare_issue(settings, list_name="news")
    taste = next_issue.taste("ADA@example.org")
    assert taste is not None and taste.liked_ids == (built.picks[0].paper.id,)


def test_a_token_for_another_purpose_does_not_open_the_feedback_page(settings: Settings) -> None:
    token = TokenSigner(SECRET).sign(Purpose.UNSUBSCRIBE, "news", "ada@example.org", item="mus1")
    client = TestClient(create_app(settings))
    assert client.get(f"/feedback?t={token}&v=more").status_code == 403
    assert client.post(f"/feedback?t={token}&v=less").status_code == 403
