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
from newsletter.ranking.selection import Ranker, ScoredPaper
from newsletter.settings import SelectionSettings, Settings
from newsletter.sources.paper import Paper
from newsletter.store import Database, open_database, place_of
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


def feedback_store(database_url: str, *, fresh: bool = False) -> FeedbackStore:
    """The feedback in a test's database; `fresh`: through a new engine, as another process sees it."""
    place = place_of(database_url, Path("unused.db"))
    return FeedbackStore(Database(place) if fresh else open_database(place))


def ids(scored: list[ScoredPaper]) -> list[str]:
    return [s.paper.id for s in scored]


def taste_of(ranker: Ranker, liked: tuple[str, ...] = (), disliked: tuple[str, ...] = ()) -> Taste:
    def pair(pid: str) -> tuple[str, np.ndarray]:
        vector = ranker.vector_of(pid)
        assert vector is not None
        return pid, vector

    words = dict(
        zip([*liked, *disliked], ranker.telling_terms(_window(ranker, [*liked, *disliked])), strict=True)
    )
    return Taste.of([pair(p) for p in liked], [pair(p) for p in disliked], words)


def _window(ranker: Ranker, paper_ids: list[str]) -> list[Paper]:
    by_id = {p.id: p for p in ranker.papers}
    return [by_id[i] for i in paper_ids]


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
    # Judged by what it does not share with the reader's keyword: the music papers on the diffusion
    # models the reader asked for lose far less than the disliked image paper's sibling.
    music = [p.parts.get("feedback", 0.0) for p in picked if p.paper.id.startswith("mus")]
    assert len(music) == 2 and min(music) > picked[-1].parts["feedback"] / 2


# Two topics the reader's keyword ("protein") does not name: a liked paper on one of them makes its
# neighbour on that topic an interest of its own, never the other topic.
WIDER = [
    make_paper("p1", "Protein folding with transformers", "We predict protein structure with attention."),
    make_paper("p2", "Protein design by diffusion", "We design proteins with a generative model."),
    make_paper(
        "liked",
        "Graph neural networks for molecule property prediction",
        "Message passing over molecular graphs predicts solubility and toxicity of small molecules.",
    ),
    make_paper(
        "kin",
        "Equivariant message passing for molecular graphs",
        "Molecular graphs with 3D coordinates: equivariant message passing predicts molecule energies.",
    ),
    make_paper("far", "Sorting networks on GPUs", "A radix sort for graphics processors, with benchmarks."),
    make_paper("town", "Traffic forecasting for roads", "Sensors on city roads predict traffic speed."),
]


def test_a_liked_paper_brings_in_a_paper_like_it_that_no_keyword_matches() -> None:
    ranker = Ranker(WIDER, ISSUE, SelectionSettings())
    assert ids(ranker.rank(["protein"])) == ["p1", "p2"]
    after = ranker.rank(["protein"], taste=taste_of(ranker, liked=("liked",)))
    assert set(ids(after)) == {"p1", "p2", "kin"}  # the sorting and traffic papers stay out
    kin = after[ids(after).index("kin")]
    assert kin.liked >= 0.5 and kin.matched == [] and kin.parts["feedback"] > 0


def test_a_reader_who_liked_a_paper_sees_its_neighbour_first() -> None:
    """The feedback part is on the keywords' scale: a liked paper's neighbour beats a plain match."""
    ranker = Ranker(WIDER, ISSUE, SelectionSettings())
    assert ids(ranker.rank(["protein", "molecular"]))[0] == "p1"
    after = ranker.rank(["protein", "molecular"], taste=taste_of(ranker, liked=("liked",)))
    assert ids(after)[0] == "kin"


def test_feedback_on_a_paper_without_its_terms_still_works_by_meaning() -> None:
    ranker = Ranker(PAPERS, ISSUE, SelectionSettings(recency_weight=0, popularity_weight=0))
    vector = ranker.vector_of("mus1")
    assert vector is not None
    taste = Taste.of([("mus1", vector)], [])  # e.g. remembered by a feedback file from before terms
    assert ids(ranker.rank(["diffusion models"], taste=taste))[0] == "mus2"


def test_feedback_weight_zero_ignores_feedback() -> None:
    ranker = Ranker(PAPERS, ISSUE, SelectionSettings(feedback_weight=0))
    plain = ids(ranker.rank(["diffusion models"]))
    assert ids(ranker.rank(["diffusion models"], taste=taste_of(ranker, disliked=("img1",)))) == plain


Reader = tuple[
    list[str], tuple[str, ...], tuple[str, ...], tuple[str, ...]
]  # keywords, sent, liked, disliked


def picks_of(ranker: Ranker, reader: Reader) -> list[tuple[str, float, float]]:
    keywords, sent, liked, disliked = reader
    taste = taste_of(ranker, liked, disliked) if liked or disliked else None
    picked = ranker.rank(keywords, exclude_ids=sent, taste=taste)
    assert not {s.paper.id for s in picked} & {*sent, *liked, *disliked}  # nothing sent or judged again
    return [(s.paper.id, round(s.score, 9), s.feedback) for s in picked]


def test_one_ranker_serving_many_readers_gives_each_what_a_fresh_ranker_would() -> None:
    """Picks and judged papers are worked out once per issue and shared: nothing of one reader's
    feedback, earlier issues or keywords may reach another reader who shares some of them."""
    settings = SelectionSettings(recency_weight=0, popularity_weight=0)
    readers: list[Reader] = [
        (["diffusion models"], (), (), ("img1",)),
        (["diffusion models"], (), (), ()),
        (["music"], (), (), ("img1",)),  # the same dislike, other keywords: other words left to judge by
        (["diffusion models"], ("img2",), (), ()),
        (["diffusion models"], (), ("mus1",), ()),
        (["diffusion models"], (), (), ()),
        (["diffusion models", "music"], (), ("mus1",), ("img1",)),
    ]
    shared = Ranker(PAPERS, ISSUE, settings)
    for reader in readers:
        assert picks_of(shared, reader) == picks_of(Ranker(PAPERS, ISSUE, settings), reader)


def test_the_store_keeps_the_latest_verdict_per_reader_and_paper(database_url: str) -> None:
    ranker = Ranker(PAPERS, ISSUE, SelectionSettings())
    store = feedback_store(database_url)
    store.remember(ranker.papers, ranker.vectors)
    store.record("news", "Ada@Example.org", "mus1", Verdict.LESS)
    store.record("news", "ada@example.org", "mus1", Verdict.MORE)  # changed their mind
    store.record("news", "ada@example.org", "unknown-paper", Verdict.MORE)  # never in an issue: unused
    store.record("other", "bob@example.org", "img1", Verdict.LESS)
    tastes = feedback_store(database_url, fresh=True).tastes("news")
    assert list(tastes) == ["ada@example.org"]
    assert tastes["ada@example.org"].liked_ids == ("mus1",) and not tastes["ada@example.org"].disliked_ids
    remembered = store.paper("mus1")
    assert remembered is not None and remembered.title == PAPERS[2].title


def test_the_store_keeps_each_papers_telling_terms_for_later_feedback(database_url: str) -> None:
    ranker = Ranker(WIDER, ISSUE, SelectionSettings())
    store = feedback_store(database_url)
    store.remember(ranker.papers, ranker.vectors, ranker.telling_terms())
    store.record("news", "ada@example.org", "liked", Verdict.MORE)
    remembered = store.paper("liked")
    assert remembered is not None and {"molecular", "graph"} <= set(remembered.terms)
    taste = store.tastes("news")["ada@example.org"]
    assert taste.terms["liked"] == remembered.terms
    assert "kin" in ids(ranker.rank(["protein"], taste=taste))


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
def settings(tmp_path: Path, database_url: str) -> Settings:
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
        database_url=database_url,
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
    assert not FeedbackStore.open(settings).tastes("news")  # a GET records nothing

    recorded = client.post(f"{path.path}?{path.query}")
    assert recorded.status_code == 200 and "move up" in recorded.text
    assert client.post(f"{path.path}?{path.query.replace('t=', 't=x')}").status_code == 403

    next_issue = prepare_issue(settings, list_name="news")
    taste = next_issue.taste("ADA@example.org")
    assert taste is not None and taste.liked_ids == (built.picks[0].paper.id,)
    assert taste.terms[built.picks[0].paper.id]  # its telling words were kept with its vector
    rebuilt = DigestBuilder(settings, next_issue, LinkSigner(SECRET, settings.base_url or "")).build(reader)
    assert rebuilt is not None and built.picks[0].paper.id not in [p.paper.id for p in rebuilt.picks]
    assert "Similar to a paper you liked." in rebuilt.digest.text


def test_a_token_for_another_purpose_does_not_open_the_feedback_page(settings: Settings) -> None:
    token = TokenSigner(SECRET).sign(Purpose.UNSUBSCRIBE, "news", "ada@example.org", item="mus1")
    client = TestClient(create_app(settings))
    assert client.get(f"/feedback?t={token}&v=more").status_code == 403
    assert client.post(f"/feedback?t={token}&v=less").status_code == 403


@pytest.mark.parametrize("purpose", [Purpose.UNSUBSCRIBE, Purpose.MANAGE])
def test_a_digests_other_links_do_not_open_its_feedback_page(settings: Settings, purpose: Purpose) -> None:
    token = TokenSigner(SECRET).reader_links("news", "ada@example.org").token(purpose)
    client = TestClient(create_app(settings))
    assert client.get(f"/feedback?t={token}&v=more").status_code == 403
    assert client.post(f"/feedback?t={token}&v=less").status_code == 403


def test_readers_who_judged_the_same_papers_share_their_vectors_and_get_the_same_ranking(
    database_url: str,
) -> None:
    """Tastes are made per reader when asked, from one vector per judged paper: ranking unchanged."""
    ranker = Ranker(PAPERS, ISSUE, SelectionSettings())
    store = feedback_store(database_url)
    store.remember(ranker.papers, ranker.vectors, ranker.telling_terms())
    for reader in ("ada@example.org", "bob@example.org", "cy@example.org"):
        store.record("news", reader, "mus1", Verdict.MORE)
        store.record("news", reader, "img1", Verdict.LESS)
    tastes = store.tastes("news")
    assert len(tastes) == 3 and tastes.papers == 2
    ada = tastes["ada@example.org"]
    liked, disliked = store.paper("mus1"), store.paper("img1")
    assert liked is not None and disliked is not None
    # What the store made for every reader up front before: the same Taste, so the same ranking.
    eager = Taste.of(
        [("mus1", liked.vector)], [("img1", disliked.vector)], {"mus1": liked.terms, "img1": disliked.terms}
    )
    assert (ada.liked_ids, ada.disliked_ids, ada.terms) == (eager.liked_ids, eager.disliked_ids, eager.terms)
    assert np.array_equal(ada.liked, eager.liked) and np.array_equal(ada.disliked, eager.disliked)
    for keywords in (["diffusion models"], []):
        expected = [(p.paper.id, p.score) for p in ranker.rank(keywords, taste=eager)]
        for reader in tastes:
            assert [(p.paper.id, p.score) for p in ranker.rank(keywords, taste=tastes[reader])] == expected
