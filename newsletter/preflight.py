"""The doctor's checks of what a send would meet: the feeds, the templates, the papers, the DKIM key.

Each one does a small real run of the thing it checks (a little fetch, a full render for a sample
reader, the next issue's papers, a signature) instead of only looking at files.
"""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import jinja2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from .errors import NewsletterError
from .mail.dkim import DkimSigner
from .models import IssueInfo, Subscriber
from .pipeline.issue import LOCAL_BASE_URL, PreparedIssue, prepare_issue
from .ranking.selection import Ranker
from .render.digest import DigestRenderer
from .settings import Settings, SourceSettings
from .sources.paper import Paper

# (record name) -> the TXT strings published there; raises LookupError when DNS has no answer.
TxtLookup = Callable[[str], list[str]]


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's report (the same shape as doctor.Check)."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_sources(settings: Settings, today: date | None = None) -> Iterator[Finding]:
    """Fetch a little from every [[sources]] feed: one day of HF papers, one arXiv result."""
    from .sources.fetch import ARXIV_BASE, HF_BASE, fetch_arxiv, fetch_hf
    from .sources.http import FetchPolicy

    day = today or date.today()
    policy = FetchPolicy.from_settings(settings.fetch, timeout=10.0, attempts=1)
    for index, source in enumerate(settings.sources, start=1):
        name = f"source {index} ({source.kind})"
        try:
            if source.kind == "arxiv":
                result = fetch_arxiv(
                    query=source.query,
                    base_url=source.base_url or ARXIV_BASE,
                    page_size=1,
                    max_results=1,
                    policy=policy,
                )
            else:
                result = fetch_hf(day=day, base_url=source.base_url or HF_BASE, max_pages=1, policy=policy)
        except NewsletterError as exc:
            yield Finding(
                name, False, exc.message, "check the URL, or run again if the feed was briefly down"
            )
            continue
        yield Finding(name, True, f"{_url(source)} answered with {len(result.papers)} paper(s)")


def _url(source: SourceSettings) -> str:
    from .sources.fetch import ARXIV_BASE, HF_BASE

    return source.base_url or (ARXIV_BASE if source.kind == "arxiv" else HF_BASE)


def check_next_issue(settings: Settings) -> tuple[Finding, PreparedIssue | None]:
    """Count the papers the next `send` would pick from (fetching [[sources]] as send would)."""
    try:
        issue = prepare_issue(settings, require_papers=True)
    except NewsletterError as exc:
        return Finding("next issue", False, exc.message), None
    info = issue.info
    detail = (
        f"{len(issue.ranker.papers)} paper(s) in {info.issue_id} ({info.window_start} to {info.issue_date})"
    )
    return Finding("next issue", True, detail), issue


def check_rendering(settings: Settings, issue: PreparedIssue | None) -> Iterator[Finding]:
    """Render every digest template for sample readers; an undefined name fails here, not in send."""
    if issue is None:
        info, ranker = _sample_issue(settings)
    else:
        info, ranker = issue.info, issue.ranker
    readers = [
        Subscriber(email="ada@example.org", name="Ada Lovelace", keywords=["diffusion models"]),
        Subscriber(email="reader@example.org"),
    ]
    try:
        renderer = DigestRenderer(settings, info)
        url = f"{LOCAL_BASE_URL}/unsubscribe?t=sample"
        for reader in readers:
            picks = ranker.rank(reader.keywords, top=settings.selection.top_n)
            renderer.render(reader, picks, url, url)
            renderer.render(reader, [], url, url)  # the "nothing new" variant too
        if issue is not None:
            _render_archive(settings, issue)
    except (NewsletterError, jinja2.TemplateError) as exc:
        message = exc.message if isinstance(exc, NewsletterError) else str(exc)
        yield Finding("templates render", False, message, "fix the template, or delete your override")
        return
    archive = ", archive pages" if issue is not None else ""
    yield Finding("templates render", True, f"digest and paper templates for sample readers{archive}")


def _render_archive(settings: Settings, issue: PreparedIssue) -> None:
    """Build the archive pages for the next issue in a scratch folder: the real archive is untouched."""
    from .web.archive import build_site, snapshot_issue

    with tempfile.TemporaryDirectory(prefix="newsletter-doctor-") as scratch:
        scratch_settings = settings.model_copy(update={"archive_dir": Path(scratch)})
        snapshot_issue(scratch_settings, issue)
        build_site(scratch_settings)


def _sample_issue(settings: Settings) -> tuple[IssueInfo, Ranker]:
    """A one-paper issue, so templates are checked even when the week has no papers."""
    day = date.today()
    paper = Paper(
        id="2403.00001",
        title="A sample paper on diffusion models",
        abstract="Diffusion models, sampled: this paper only exists so the templates can be rendered.",
        authors=["Ada Lovelace"],
        published=datetime.combine(day, datetime.min.time(), UTC),
        url="https://arxiv.org/abs/2403.00001",
        source="sample",
    )
    info = IssueInfo(
        issue_id="sample",
        issue_date=day,
        list_name=settings.default_list,
        title=settings.title,
        window_start=day - timedelta(days=settings.selection.window_days - 1),
        archive_url=None,
    )
    return info, Ranker([paper], day, settings.selection)


def dkim_record(private_key: bytes) -> str:
    """The TXT record that publishes the public half of a PEM private key."""
    key = serialization.load_pem_private_key(private_key, password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode("ascii")
    if isinstance(key, rsa.RSAPrivateKey):
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode("ascii")
    raise ValueError("not an RSA or Ed25519 key")


def check_dkim(settings: Settings, lookup: TxtLookup | None) -> Iterator[Finding]:
    """Load the key, sign a sample, print the record to publish and compare it with DNS's."""
    dkim = settings.dkim
    if not dkim.enabled:
        yield Finding("dkim", True, "not configured: mail goes out unsigned (set [dkim] to sign it)")
        return
    try:
        signer = DkimSigner.from_settings(dkim, settings.config_dir)
        assert signer is not None
        record = dkim_record(signer.private_key)
    except (NewsletterError, ValueError) as exc:
        message = exc.message if isinstance(exc, NewsletterError) else str(exc)
        yield Finding("dkim key", False, message, "use an unencrypted PEM RSA (2048+) or Ed25519 key")
        return
    name = f"{dkim.selector}._domainkey.{dkim.domain}"
    yield Finding("dkim key", True, f'signs; publish TXT {name} "{record}"')
    if lookup is None:
        yield Finding("dkim dns", True, f"not looked up (--skip-dns); check that {name} has the record above")
        return
    try:
        published = lookup(name)
    except LookupError as exc:
        yield Finding("dkim dns", False, f"{name}: {exc}", "publish the TXT record above")
        return
    wanted = _public_part(record)
    if any(_public_part(text) == wanted for text in published):
        yield Finding("dkim dns", True, f"{name} publishes this key")
    else:
        yield Finding(
            "dkim dns", False, f"{name} publishes a different key", "replace it with the TXT record above"
        )


def _public_part(record: str) -> str:
    """The p= value of a DKIM record, whitespace and quoting as DNS may split it."""
    tags = dict(part.strip().split("=", 1) for part in record.replace('"', "").split(";") if "=" in part)
    return "".join(tags.get("p", "").split())


def dns_txt_lookup(timeout: float = 3.0) -> TxtLookup:
    """TXT records from the system's resolver, bounded in time; no answer is a LookupError."""
    import dns.exception
    import dns.resolver

    resolver = dns.resolver.Resolver()
    resolver.lifetime = timeout

    def lookup(name: str) -> list[str]:
        try:
            answer = resolver.resolve(name, "TXT")
        except (dns.exception.DNSException, OSError) as exc:
            raise LookupError(f"no TXT record found ({type(exc).__name__})") from exc
        return [b"".join(rdata.strings).decode("ascii", "replace") for rdata in answer]

    return lookup
