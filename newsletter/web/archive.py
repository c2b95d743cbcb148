"""The static web archive of past issues: one page per issue, an index and an Atom feed."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, time
from pathlib import Path

import jinja2
from pydantic import BaseModel, ValidationError

from ..errors import NewsletterError
from ..files import atomic_write_text
from ..pipeline.issue import PreparedIssue
from ..render.digest import load_template, make_environment, template_dirs
from ..render.text import safe_url
from ..settings import Settings
from ..sources.paper import Paper
from ..text import strip_forbidden_chars

ATOM = "http://www.w3.org/2005/Atom"


class ArchivedIssue(BaseModel):
    """What the archive keeps of an issue: the non-personalised top papers."""

    issue_id: str
    issue_date: date
    title: str
    papers: list[Paper]


def snapshot_issue(settings: Settings, issue: PreparedIssue) -> Path:
    """Record the issue's top papers (for a reader with no keywords) as JSON in the archive."""
    picks = issue.ranker.rank([], top=settings.selection.top_n)
    record = ArchivedIssue(
        issue_id=issue.info.issue_id,
        issue_date=issue.info.issue_date,
        title=settings.title,
        papers=[p.paper for p in picks],
    )
    path = settings.path(settings.archive_dir) / "issues" / f"{record.issue_id}.json"
    _write(path, record.model_dump_json(indent=2))
    return path


def load_issues(settings: Settings) -> list[ArchivedIssue]:
    """Every archived issue, newest first; a damaged snapshot is an error naming the file."""
    folder = settings.path(settings.archive_dir) / "issues"
    issues = []
    for path in sorted(folder.glob("*.json")):
        try:
            issues.append(ArchivedIssue.model_validate_json(path.read_text(encoding="utf-8")))
        except (ValidationError, UnicodeDecodeError) as exc:
            raise NewsletterError(
                f"archived issue is damaged ({exc.__class__.__name__})",
                where=str(path),
                fix="delete it and run `newsletter archive --date D` for that issue again",
            ) from exc
    return sorted(issues, key=lambda i: (i.issue_date, i.issue_id), reverse=True)


def build_site(settings: Settings) -> list[Path]:
    """Write every issue page, index.html and feed.xml; return the paths written."""
    out = settings.path(settings.archive_dir)
    issues = load_issues(settings)
    env = make_environment(template_dirs(settings))
    site = {"title": settings.title, "signup_url": _signup_url(settings)}
    written = []
    for issue in issues:
        html = _render(env, "archive/issue.html", issue=_linkable(issue), **site)
        written.append(_write(out / f"{issue.issue_id}.html", html))
    written.append(_write(out / "index.html", _render(env, "archive/index.html", issues=issues, **site)))
    written.append(_write(out / "feed.xml", atom_feed(settings, issues)))
    return written


def _signup_url(settings: Settings) -> str:
    """Where a visitor of the archive subscribes: serve's form, the archive being served at /archive/."""
    if settings.base_url:
        return safe_url(f"{settings.base_url.rstrip('/')}/subscribe") or "../subscribe"
    return "../subscribe"  # relative: right behind a proxy's path prefix too


def _linkable(issue: ArchivedIssue) -> ArchivedIssue:
    """Like the email, only http(s) links from sources become hrefs: never javascript: ones."""
    papers = [
        p.model_copy(
            update={
                "url": safe_url(p.url) or "#",
                "pdf_url": safe_url(p.pdf_url),
                "code_url": safe_url(p.code_url),
            }
        )
        for p in issue.papers
    ]
    return issue.model_copy(update={"papers": papers})


def _render(env: jinja2.Environment, name: str, **context: object) -> str:
    return load_template(env, name).render(**context)


def atom_feed(settings: Settings, issues: list[ArchivedIssue]) -> str:
    """An Atom 1.0 feed with one entry per issue, so readers can follow without email."""
    ET.register_namespace("", ATOM)
    base = (settings.base_url or "").rstrip("/") + "/archive/"
    feed = ET.Element(f"{{{ATOM}}}feed")
    _text(feed, "title", settings.title)
    slug = re.sub(r"[^a-z0-9]+", "-", settings.title.lower()).strip("-") or "digest"
    _text(feed, "id", base + "feed.xml" if settings.base_url else f"urn:newsletter:{slug}")
    updated = max((i.issue_date for i in issues), default=date(1970, 1, 1))
    _text(feed, "updated", _stamp(updated))
    ET.SubElement(feed, f"{{{ATOM}}}link", rel="self", href=strip_forbidden_chars(base + "feed.xml"))
    for issue in issues:
        entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
        _text(entry, "title", f"{settings.title} {issue.issue_id}")
        _text(
            entry,
            "id",
            f"{base}{issue.issue_id}.html"
            if settings.base_url
            else f"urn:newsletter:{slug}:{issue.issue_id}",
        )
        _text(entry, "updated", _stamp(issue.issue_date))
        href = strip_forbidden_chars(f"{base}{issue.issue_id}.html")
        ET.SubElement(entry, f"{{{ATOM}}}link", rel="alternate", href=href)
        _text(entry, "summary", "; ".join(p.title for p in issue.papers))
    author = ET.SubElement(feed, f"{{{ATOM}}}author")
    _text(author, "name", settings.sender.name)
    return ET.tostring(feed, encoding="unicode", xml_declaration=True) + "\n"


def _text(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, f"{{{ATOM}}}{tag}").text = strip_forbidden_chars(text)


def _stamp(day: date) -> str:
    return datetime.combine(day, time(0, 0), tzinfo=UTC).isoformat()


def _write(path: Path, text: str) -> Path:
    atomic_write_text(path, text)
    return path
