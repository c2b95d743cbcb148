"""Every XML and HTML output stays well-formed whatever the input text (characters XML forbids dropped)."""

from __future__ import annotations

import itertools
import json
import warnings
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.samples import UNSUBSCRIBE, Pick, make_issue, make_paper, make_settings
from helpers.wellformed import NASTY, assert_valid_html5, assert_well_formed_xml, hostile_text
from hypothesis import HealthCheck, given, settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette 1.x prefers httpx2 for its TestClient; httpx still works
    from starlette.testclient import TestClient

from newsletter.cli.app import main
from newsletter.mail.tokens import Purpose, TokenSigner
from newsletter.models import Subscriber
from newsletter.render.digest import DigestRenderer, make_environment, template_dirs
from newsletter.text import strip_forbidden_chars
from newsletter.web.app import create_app
from newsletter.web.archive import ArchivedIssue, atom_feed

FAST = settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
ATOM = "{http://www.w3.org/2005/Atom}"
RENDERER = DigestRenderer(
    make_settings(), make_issue()
)  # one per issue, as in a send: cards are cached by id
SERIAL = itertools.count()


def test_a_bell_in_a_paper_title_leaves_the_archive_feed_and_pages_well_formed(project: Path) -> None:
    papers = project / "bell.jsonl"
    record = {
        "title": "Bell \u0007 paper on diffusion models",
        "abstract": "An abstract \u0000 about diffusion \ud800 models.",
        "authors": ["A. \u001b Author"],
        "published": "2024-03-13T09:00:00+00:00",
        "url": "https://example.org/bell",
        "source": "jsonl",
    }
    papers.write_text(json.dumps(record) + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["archive", "--date", "2024-03-14", "--papers", str(papers)])
    assert result.exit_code == 0, result.output
    out = project / "archive"
    feed = assert_well_formed_xml((out / "feed.xml").read_text(encoding="utf-8"))
    assert "Bell  paper on diffusion models" in (feed.findtext(f"{ATOM}entry/{ATOM}summary") or "")
    for page in ("index.html", "2024-W11.html"):
        assert_valid_html5((out / page).read_text(encoding="utf-8"))


@pytest.mark.parametrize("char", NASTY)
def test_the_helper_keeps_only_what_xml_and_html_allow(char: str) -> None:
    kept = strip_forbidden_chars(f"a{char}b")
    assert_well_formed_xml(f"<p>{kept.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')}</p>")
    assert_valid_html5(f"<!doctype html><title>t</title><p>{kept.replace('&', '&amp;').replace('<', '&lt;')}")


@FAST
@given(title=hostile_text(), abstract=hostile_text(), author=hostile_text(), name=hostile_text())
def test_feed_and_archive_pages_are_well_formed_for_any_text(
    title: str, abstract: str, author: str, name: str
) -> None:
    paper = make_paper(0, title=title or "t", abstract=abstract or "a", authors=[author])
    site = make_settings(title=name or "n", base_url="https://digest.example.org")
    issue = ArchivedIssue(issue_id="2024-W11", issue_date=date(2024, 3, 14), title=name, papers=[paper])
    assert_well_formed_xml(atom_feed(site, [issue]))
    env = make_environment(template_dirs(site))
    site_values = {"title": name, "signup_url": "../subscribe"}  # what build_site gives every page
    assert_valid_html5(env.get_template("archive/issue.html").render(issue=issue, **site_values))
    assert_valid_html5(env.get_template("archive/index.html").render(issues=[issue], **site_values))


@FAST
@given(title=hostile_text(), abstract=hostile_text(), name=hostile_text(), keyword=hostile_text())
def test_the_email_html_is_valid_html5_for_any_text(
    title: str, abstract: str, name: str, keyword: str
) -> None:
    paper = make_paper(0, id=f"p{next(SERIAL)}", title=title or "t", abstract=abstract or "a", authors=[name])
    reader = Subscriber(email="eve@example.org", name=name, keywords=[keyword or "k"])
    digest = RENDERER.render(reader, [Pick(paper, 1.0, [keyword])], UNSUBSCRIBE)
    assert_valid_html5(digest.html)
    assert strip_forbidden_chars(digest.subject) == digest.subject


SECRET = "wellformed-test-secret-Zq7mW4xR8vB1nT6kP3yH"  # serve needs a strong one


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    # A folder of its own: serve keeps its database beside the config.
    with TestClient(create_app(make_settings(tmp_path_factory.mktemp("serve"), secret=SECRET))) as started:
        yield started


@settings(FAST, max_examples=12)
@given(local=hostile_text(surrogates=False), list_name=hostile_text(surrogates=False))
def test_serve_pages_are_valid_html5_for_any_address_in_the_link(
    client: TestClient, local: str, list_name: str
) -> None:
    email = f"{local}@example.org"
    token = TokenSigner(SECRET).sign(Purpose.UNSUBSCRIBE, "news", email)
    for query in ({"t": token}, {"list": list_name, "email": email, "token": "x"}):
        response = client.get("/unsubscribe", params=query)
        assert response.headers["content-type"].startswith("text/html")
        assert_valid_html5(response.text)
