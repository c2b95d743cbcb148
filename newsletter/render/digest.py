"""Render digests: Jinja templates and premailer run once per issue and per paper, never per reader.

The page shell (per variant: with or without a name, keywords, picks) and each paper card are
rendered with opaque slot tokens in place of per-subscriber values, CSS-inlined once, and split
around the tokens. Rendering for one subscriber is then a join of escaped values into those
pieces, so 10,000 readers cost a handful of premailer calls, not 10,000.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import jinja2
from markupsafe import Markup, escape

import newsletter

from ..errors import TemplateError
from ..models import IssueInfo, Subscriber
from ..ranking.authors import author_name
from ..settings import Settings
from ..sources.paper import Paper
from ..text import strip_forbidden_chars
from .fragments import Slotted, TextShell, inline_css
from .highlight import highlight
from .text import (
    collapse,
    cut_abstract,
    day_label,
    safe_url,
    shorten_authors,
    window_label,
    wrap_text,
)
from .why import LIKED_FROM, Why, why_picked

HTML_TEMPLATE = "digest.html"
TEXT_TEMPLATE = "digest.txt"
CARD_HTML_TEMPLATE = "paper.html"
CARD_TEXT_TEMPLATE = "paper.txt"
SENTENCE_CLASS = "card-why-sentence"  # the quoted sentence in a card's reason line (style.css)
SENTENCE_OPEN = f'<span class="{SENTENCE_CLASS}">'  # unstyled: a theme whose cards drop the reason line
SUBJECT_MAX = 68  # inboxes show about 70 characters on a phone
_PER_READER = ("more", "less", "fbopen", "fbclose")  # card slots filled for each reader, after the cache
# The bound keeps a builder's memory flat; benchmarks/bench_render.py prints what the caches hold.
# Above the week's popular papers that fill a short digest (selection.filler = "popular"):
# a reader must never take them for matches of their keywords.
POPULAR_HEADING = "Popular this week"
POPULAR_NOTE = "Not matches for your keywords: the week's most upvoted papers."
_CARD_CACHE_MAX = 5_000  # filled cards kept per issue: enough for shared profiles, bounded memory


# paper id, matched keywords, liked shown, matched by meaning only, the quote recorded (None: ranked now)
_WhyKey = tuple[str, tuple[str, ...], bool, tuple[str, ...], str | None]


@dataclass(frozen=True)
class RenderedDigest:
    """One subscriber's digest, ready for compose: subject, HTML and its plain-text twin."""

    subject: str
    html: str
    text: str
    # Each card picked by meaning alone that quotes its abstract: paper id -> the sentence quoted.
    # The ledger keeps these, since a replay may not have the model that chose them.
    quoted: dict[str, str] = field(default_factory=dict)
    # The html as the pieces it was joined from, pieces readers share being the same objects:
    # compose encodes each shared piece once. Empty when not kept.
    html_pieces: tuple[str, ...] = ()


class Pick(Protocol):
    """What rendering needs from a ScoredPaper: the paper and the reader's keywords it matched."""

    @property
    def paper(self) -> Paper: ...

    @property
    def matched(self) -> Sequence[str]: ...


def builtin_templates_dir() -> Path:
    """The default theme: inside the package when installed, at the repo root in a checkout."""
    package = Path(newsletter.__file__).parent
    installed = package / "templates"
    return installed if installed.is_dir() else package.parent / "templates"


def template_dirs(settings: Settings) -> list[Path]:
    """Where templates are looked up, the user's folder first so it overrides the theme."""
    dirs = []
    user = settings.path(settings.templates_dir)
    if user.is_dir():
        dirs.append(user)
    builtin = builtin_templates_dir()
    if builtin not in dirs:
        dirs.append(builtin)
    return dirs


def make_environment(dirs: Sequence[Path]) -> jinja2.Environment:
    """One Jinja environment per issue: autoescape for HTML, none for the text part."""
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(d)) for d in dirs]),
        autoescape=jinja2.select_autoescape(("html", "htm", "xml"), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_markup_safe,
    )


def _markup_safe(value: Any) -> Any:
    """Every value a template prints loses the characters XML and HTML cannot hold (Markup stays Markup)."""
    return type(value)(strip_forbidden_chars(value)) if isinstance(value, str) else value


@dataclass(frozen=True)
class _Card:
    """One paper, rendered and inlined once: HTML pieces around title/abstract, and its text."""

    html: Slotted
    text: str
    title: str
    abstract: str


class DigestRenderer:
    """Renders every subscriber's digest for one issue, doing the slow work once."""

    def __init__(self, settings: Settings, issue: IssueInfo) -> None:
        self.settings = settings
        self.issue = issue
        self.dirs = template_dirs(settings)
        self.env = make_environment(self.dirs)
        self.inline_calls = 0
        nonce = secrets.token_hex(8)
        self._token_prefix = f"pdslot{nonce}"
        self._token = re.compile(f"{self._token_prefix}_([a-z]+)_")
        self._marker = f"pdcard{nonce}"
        self._shells: dict[tuple[bool, bool, bool], tuple[Slotted, TextShell]] = {}
        self._cards: dict[str, _Card] = {}
        self._highlights: dict[tuple[str, tuple[str, ...]], Slotted] = {}  # cards but the reader's links
        self._by_profile: dict[tuple[str, tuple[str, ...]], Slotted] = {}
        self._whys: dict[_WhyKey, Why] = {}
        self._texts: dict[_WhyKey, tuple[str, str]] = {}  # the card's text, and its quote by meaning
        # The quoted sentence's <span> with the theme's CSS inlined: it is filled in after inlining.
        self._sentence_open: str | None = None
        self._popular_html: str | None = None  # the popular section's heading, inlined on first use
        self._templates = {
            name: self._load(name)
            for name in (HTML_TEMPLATE, TEXT_TEMPLATE, CARD_HTML_TEMPLATE, CARD_TEXT_TEMPLATE)
        }

    # --- templates -------------------------------------------------------------------------

    def _load(self, name: str) -> jinja2.Template:
        return load_template(self.env, name)

    def _run(self, name: str, context: Mapping[str, Any]) -> str:
        try:
            return self._templates[name].render(context)
        except jinja2.TemplateError as exc:
            where = getattr(exc, "filename", None) or name
            lineno = getattr(exc, "lineno", None)
            raise TemplateError(
                f"template {name} failed to render: {exc}",
                where=f"{where}:{lineno}" if lineno else where,
                fix="check the names the template uses against the default theme",
            ) from exc

    def _slot(self, name: str) -> str:
        return f"{self._token_prefix}_{name}_"

    def _inline(self, html: str) -> str:
        self.inline_calls += 1
        return inline_css(html)

    # --- contexts --------------------------------------------------------------------------

    def _issue_context(self) -> dict[str, Any]:
        issue = self.issue
        sender = self.settings.sender
        return {
            "issue": {
                "issue_id": issue.issue_id,
                "title": issue.title,
                "date": issue.issue_date,
                "date_label": day_label(issue.issue_date),
                "window_label": window_label(issue.window_start, issue.issue_date),
                "archive_url": safe_url(issue.archive_url),
            },
            "list_name": issue.list_name,
            "sender": {
                "name": sender.name,
                "address": sender.address,
                "postal_address": sender.postal_address,
            },
        }

    def _shell_context(self, variant: tuple[bool, bool, bool], cards: str) -> dict[str, Any]:
        has_name, has_keywords, has_picks = variant
        context = self._issue_context()
        context.update(
            subscriber={
                "has_name": has_name,
                "name": self._slot("name"),
                "has_keywords": has_keywords,
                "keywords": self._slot("keywords"),
            },
            has_picks=has_picks,
            count=self._slot("count"),
            preheader=self._slot("preheader"),
            unsubscribe_url=self._slot("unsubscribe"),
            manage_url=self._slot("manage"),
            cards=Markup(cards),
        )
        return context

    def _paper_context(self, paper: Paper, abstract: str) -> dict[str, Any]:
        return {
            "paper": {
                "id": paper.id,
                "title": self._slot("title"),
                "abstract": self._slot("abstract"),
                "url": safe_url(paper.url),
                "pdf_url": safe_url(paper.pdf_url),
                "code_url": safe_url(paper.code_url),
                "authors": shorten_authors(paper.authors),
                "all_authors": paper.authors,
                "published": paper.published,
                "date_label": day_label(paper.published.date()),
                "upvotes": paper.upvotes,
                "keywords": paper.keywords,
                "source": paper.source,
                "why": self._slot("why"),
                "more_url": self._slot("more"),
                "less_url": self._slot("less"),
                "feedback_open": self._slot("fbopen"),
                "feedback_close": self._slot("fbclose"),
            }
        }

    # --- the once-per-issue and once-per-paper work ---------------------------------------

    def _shell(self, variant: tuple[bool, bool, bool]) -> tuple[Slotted, TextShell]:
        """The inlined page shell and text shell for one variant, built on first use."""
        shell = self._shells.get(variant)
        if shell is None:
            context = self._shell_context(variant, self._slot("cards"))
            html = self._inline(self._run(HTML_TEMPLATE, context))
            text = self._run(TEXT_TEMPLATE, context)
            shell = self._shells[variant] = (Slotted(html, self._token), TextShell(text, self._token))
        return shell

    def prepare(self, papers: Iterable[Paper]) -> None:
        """Render and inline the cards of all these papers in one premailer call."""
        todo: dict[str, Paper] = {}
        for paper in papers:
            if paper.id not in self._cards:
                todo.setdefault(paper.id, paper)
        if not todo:
            return
        abstracts = {pid: cut_abstract(paper.abstract)[0] for pid, paper in todo.items()}
        marked = []
        for index, (pid, paper) in enumerate(todo.items()):
            card = self._run(CARD_HTML_TEMPLATE, self._paper_context(paper, abstracts[pid]))
            marked.append(f"<!--{self._marker}:{index}-->{card}<!--{self._marker}:end-->")
        probe = self._slot("probe")
        if self._sentence_open is None:  # one card more, whose reason holds a quote, to see its style
            pid, paper = next(iter(todo.items()))
            context = self._paper_context(paper, abstracts[pid])
            context["paper"]["why"] = Markup(f'<span class="{SENTENCE_CLASS}">{probe}</span>')
            card = self._run(CARD_HTML_TEMPLATE, context)
            marked.append(f"<!--{self._marker}:probe-->{card}<!--{self._marker}:end-->")
        page = self._inline(
            self._run(HTML_TEMPLATE, self._shell_context((False, False, True), "".join(marked)))
        )
        if self._sentence_open is None:
            styled = re.search(f"(<span\\b[^>]*>){probe}</span>", page)
            self._sentence_open = styled.group(1) if styled else SENTENCE_OPEN
        fragments = re.findall(f"<!--{self._marker}:(\\d+)-->(.*?)<!--{self._marker}:end-->", page, re.DOTALL)
        if len(fragments) != len(todo):
            raise TemplateError(
                "paper cards were lost while inlining CSS",
                where=HTML_TEMPLATE,
                fix="keep {{ cards }} inside a table cell of the page template",
            )
        ordered = sorted(fragments, key=lambda f: int(f[0]))
        for (_, html), (pid, paper) in zip(ordered, todo.items(), strict=True):
            self._cards[pid] = self._make_card(paper, html, abstracts[pid])

    def _make_card(self, paper: Paper, html: str, abstract: str) -> _Card:
        title = collapse(paper.title)
        context = self._paper_context(paper, abstract)
        context["paper"].update(
            title=title,
            abstract=abstract,
            why="",
            more_url="",
            less_url="",
            feedback_open="",
            feedback_close="",
        )
        text = wrap_text(self._run(CARD_TEXT_TEMPLATE, context))
        return _Card(html=Slotted(html, self._token), text=text, title=title, abstract=abstract)

    # --- per subscriber: joins and escapes only -------------------------------------------

    def _card_html(
        self, pick: Pick, profile: tuple[str, ...], feedback_url: str, matches: _Matches
    ) -> list[str]:
        """A filled card; cached by reader profile first, so shared profiles skip even `matched`.

        The cached card keeps the feedback links' slots: only those two differ between readers
        of the same profile (a reader's feedback also changes the 'why' line: not cached then).
        """
        liked, weight = float(getattr(pick, "liked", 0.0)), float(getattr(pick, "feedback", 0.0))
        by_profile = (pick.paper.id, profile)
        html: Slotted | None = None if (liked or weight) else self._by_profile.get(by_profile)
        if html is None:
            matched, related = matches
            liked_shown = liked >= LIKED_FROM and weight > 0
            recorded = _recorded_quote(pick)
            by_matched = (
                pick.paper.id,
                (*sorted(matched), f"liked={liked_shown}", "related:", *related, f"quoted={recorded!r}"),
            )
            html = self._highlights.get(by_matched)
            if html is None:
                card = self._cards[pick.paper.id]
                # Only words the paper holds are marked: a match by meaning has none to mark.
                words = tuple(sorted(k for k in matched if author_name(k) is None and k not in related))
                why = self._why(pick, matched, liked, weight, related)
                values = {
                    "title": highlight(card.title, words),
                    "abstract": highlight(card.abstract, words),
                    "why": why_html(why, self._sentence_open or SENTENCE_OPEN),
                    **{slot: self._slot(slot) for slot in _PER_READER},
                }
                html = self._highlights[by_matched] = Slotted(card.html.fill(values), self._token)
            if len(self._by_profile) > _CARD_CACHE_MAX:
                self._by_profile.clear()
                self._highlights.clear()
            if not (liked or weight):
                self._by_profile[by_profile] = html
        # No link (a page for everyone, not one reader): the feedback links become an HTML comment.
        if not feedback_url:
            return html.pieces(_NO_FEEDBACK)
        url = str(escape(feedback_url))  # escaping is per character: the verdicts are appended escaped
        return html.pieces({"more": url + _MORE_HTML, "less": url + _LESS_HTML, "fbopen": "", "fbclose": ""})

    def render(
        self,
        subscriber: Subscriber,
        picks: Sequence[Pick],
        unsubscribe_url: str,
        manage_url: str = "",
        feedback_url: Callable[[str], str] | None = None,
    ) -> RenderedDigest:
        """One subscriber's digest: fill the inlined pieces with their escaped values.

        `feedback_url(paper_id)` is the reader's signed feedback link for one paper (without the
        verdict); the card offers it as "more like this" and "less like this".
        """
        self.prepare(pick.paper for pick in picks)
        name = first_name(subscriber.name)
        keywords = [collapse(k) for k in subscriber.keywords if k.strip()]
        html_shell, text_shell = self._shell((bool(name), bool(keywords), bool(picks)))
        values = {
            "name": name,
            "keywords": ", ".join(keywords),
            "count": _count(picks),
            "preheader": self._preheader(picks, keywords),
            "unsubscribe": unsubscribe_url,
            "manage": manage_url or unsubscribe_url,
        }
        html_values = {key: str(escape(value)) for key, value in values.items()}
        profile = tuple(subscriber.keywords)
        links = [feedback_url(pick.paper.id) if feedback_url else "" for pick in picks]
        matches = [_matches(pick) for pick in picks]  # the pick's keywords are worked out per call
        cards = [
            self._card_html(pick, profile, link, found)
            for pick, link, found in zip(picks, links, matches, strict=True)
        ]
        texts = []
        quoted: dict[str, str] = {}
        for pick, link, found in zip(picks, links, matches, strict=True):
            text, quote = self._card_text(pick, link, found)
            texts.append(text)
            if quote:
                quoted[pick.paper.id] = quote
        first_filler = next((i for i, pick in enumerate(picks) if getattr(pick, "filler", False)), None)
        if first_filler is not None:
            cards.insert(first_filler, [self._popular_heading()])
            texts.insert(first_filler, f"== {POPULAR_HEADING} ==\n{POPULAR_NOTE}\n")
        values["cards"] = "\n".join(texts)
        pieces = html_shell.pieces({**html_values, "cards": [piece for card in cards for piece in card]})
        return RenderedDigest(
            subject=self._subject(picks, bool(keywords)),
            html="".join(pieces),
            text=text_shell.fill(values),
            quoted=quoted,
            html_pieces=tuple(pieces),
        )

    def _popular_heading(self) -> str:
        """The popular section's heading, styled by the theme (one premailer call per issue, if any)."""
        if self._popular_html is None:
            marker = f"<!--{self._marker}:popular-->"
            heading = (
                '<table role="presentation" class="fixed" width="100%" cellpadding="0" cellspacing="0"'
                f' border="0"><tr><td class="intro"><p><strong>{escape(POPULAR_HEADING)}</strong></p>'
                f"<p>{escape(POPULAR_NOTE)}</p></td></tr></table>"
            )
            page = self._inline(
                self._run(HTML_TEMPLATE, self._shell_context((False, False, True), marker + heading + marker))
            )
            found = re.search(f"{marker}(.*?){marker}", page, re.DOTALL)
            self._popular_html = found.group(1) if found else heading
        return self._popular_html

    def _card_text(self, pick: Pick, feedback_url: str, matches: _Matches) -> tuple[str, str]:
        """The plain-text card, plus the reason line and the reader's two feedback links; and the
        sentence it quotes for a match by meaning alone ("" if none), for the ledger."""
        matched, related = matches
        liked, weight = float(getattr(pick, "liked", 0.0)), float(getattr(pick, "feedback", 0.0))
        key = (pick.paper.id, matched, liked >= LIKED_FROM and weight > 0, related, _recorded_quote(pick))
        found = self._texts.get(key)
        if found is None:  # wrapping is slow: once per paper and reason, not per reader
            why = self._why(pick, matched, liked, weight, related)
            lines = [self._cards[pick.paper.id].text.rstrip("\n"), wrap_text(f"Why: {why.reason}.")]
            if why.sentence:
                lines.append(wrap_text(f"{why.label}: \u201c{why.sentence}\u201d"))
            if len(self._texts) > _CARD_CACHE_MAX:
                self._texts.clear()
            found = self._texts[key] = ("\n".join(lines), why.sentence if why.by_meaning else "")
        text, quote = found
        more, less = _feedback_links(feedback_url)
        if more:
            return f"{text}\nMore like this: {more}\nLess like this: {less}\n", quote
        return text + "\n", quote

    def _why(
        self, pick: Pick, matched: tuple[str, ...], liked: float, weight: float, related: tuple[str, ...]
    ) -> Why:
        """Why a paper was picked, worked out once per (paper, matched keywords, liked or not).

        A pick ranked now finds the sentence closest in meaning itself (`closest_sentence`); a pick
        rebuilt from the ledger brings the one that was sent (`quoted`).
        """
        liked_shown = liked >= LIKED_FROM and weight > 0
        recorded = _recorded_quote(pick)
        key = (pick.paper.id, matched, liked_shown, related, recorded)
        found = self._whys.get(key)
        if found is None:
            if len(self._whys) > _CARD_CACHE_MAX:
                self._whys.clear()
            card = self._cards[pick.paper.id]
            closeness = getattr(pick, "closest_sentence", None)
            found = self._whys[key] = why_picked(
                pick.paper,
                matched,
                card.abstract,
                liked=liked,
                feedback=weight,
                related=related,
                closeness=closeness,
                quoted=recorded,
            )
        return found

    def _preheader(self, picks: Sequence[Pick], keywords: Sequence[str]) -> str:
        """The inbox line under the subject: what the subject does not say (count, topics, the next paper)."""
        window = window_label(self.issue.window_start, self.issue.issue_date)
        if not picks:
            topics = f" on {', '.join(keywords)}" if keywords else ""
            return shorten(f"Nothing new{topics} in {window}: we will write again when there is.", 140)
        count = f"{len(picks)} paper{'' if len(picks) == 1 else 's'}"
        lead = f"{count} on {', '.join(keywords)}" if keywords else f"The week's top {count}"
        text = f"{lead}, {window}."
        if len(picks) > 1:
            text += f" Also: {self._cards[picks[1].paper.id].title}"
        return shorten(text, 140)

    def _subject(self, picks: Sequence[Pick], has_keywords: bool) -> str:
        """The first paper's title, cut at a word: the sender's name is already in From."""
        if not picks:
            window = window_label(self.issue.window_start, self.issue.issue_date)
            return "No new papers" + (" on your topics" if has_keywords else "") + f", {window}"
        return shorten(self._cards[picks[0].paper.id].title, SUBJECT_MAX)


_Matches = tuple[tuple[str, ...], tuple[str, ...]]


def _matches(pick: Pick) -> _Matches:
    """The keywords a pick matched, and those of them it matched by meaning only (closest first)."""
    return _matches_of(tuple(getattr(pick, "matched", ()) or ()), tuple(getattr(pick, "related", ()) or ()))


@lru_cache(maxsize=8_192)
def _matches_of(matched_keywords: tuple[str, ...], related_keywords: tuple[str, ...]) -> _Matches:
    """Worked out once per set of keywords: readers who share keywords share it (bounded cache)."""
    matched = tuple(dict.fromkeys(collapse(k) for k in matched_keywords))
    related = dict.fromkeys(collapse(k) for k in related_keywords)
    return matched, tuple(k for k in related if k in matched)


def _count(picks: Sequence[Pick]) -> str:
    """'3 papers' picked for the reader's topics: the popular filler is not counted among them."""
    matches = sum(1 for pick in picks if not getattr(pick, "filler", False)) or len(picks)
    return f"{matches} paper{'' if matches == 1 else 's'}"


def _recorded_quote(pick: Pick) -> str | None:
    """The sentence a rebuilt pick's card quoted by meaning when sent ("" none); None if ranked now."""
    found = getattr(pick, "quoted", None)
    return found if isinstance(found, str) else None


_MORE, _LESS = "&v=more", "&v=less"  # the two verdicts a feedback link adds to the reader's token
_MORE_HTML, _LESS_HTML = str(escape(_MORE)), str(escape(_LESS))
_NO_FEEDBACK = {"more": "", "less": "", "fbopen": "<!--", "fbclose": "-->"}


def _feedback_links(url: str) -> tuple[str, str]:
    """The two verdicts of one signed feedback link; the token alone decides who and which paper."""
    if not url:
        return "", ""
    return url + _MORE, url + _LESS


def why_html(why: Why, sentence_open: str) -> str:
    """The reason line's escaped HTML: the reason, then the sentence that matched if the card cuts it.

    `sentence_open` is the quote's opening <span> as the theme's CSS styles it (inlined already).
    """
    html = str(escape(why.reason)) + "."
    if why.sentence:
        html += f" {sentence_open}\u201c{escape(why.sentence)}\u201d</span>"
    return html


_TITLES = frozenset({"dr", "prof", "mr", "mrs", "ms", "mx", "miss", "sir", "dame"})
_SUFFIXES = frozenset({"phd", "md", "jr", "sr", "ii", "iii", "iv", "msc", "ma", "mba", "dphil", "esq", "frs"})


def first_name(name: str) -> str:
    """'Ada' for 'Ada Lovelace, PhD', 'Dr. Ada Lovelace' and 'Lovelace, Ada'; the whole name if unsure."""
    name = collapse(name)
    if "," in name:
        head, tail = (part.strip() for part in name.split(",", 1))
        suffixes = [w.strip(".").lower() for w in tail.replace(",", " ").split()]
        if all(word in _SUFFIXES for word in suffixes):
            name = head
        elif " " not in head and tail:
            name = f"{tail} {head}"  # "Lovelace, Ada"
    words = name.split()
    while len(words) > 1 and words[0].strip(".").lower() in _TITLES:
        words = words[1:]
    if not words:
        return ""
    first = words[0]
    return first if len(first.strip(".")) > 1 else " ".join(words)  # "J. Smith" stays whole


def shorten(text: str, limit: int) -> str:
    """Cut at a word so subjects and preheaders stay short without a half word."""
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:") + "\u2026"


def load_template(env: jinja2.Environment, name: str) -> jinja2.Template:
    """A template, or one TemplateError naming the file and line (the digest and archive share it)."""
    try:
        return env.get_template(name)
    except jinja2.TemplateNotFound as exc:
        searched = ", ".join(_search_path(env)) or "nowhere"
        raise TemplateError(
            f"template {exc.name} not found",
            where=f"searched {searched}",
            fix=f"create {exc.name} in your templates folder, or remove 'templates_dir' from the config",
        ) from exc
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"template syntax error: {exc.message}",
            where=f"{exc.filename or name}:{exc.lineno}",
            fix="fix the Jinja syntax at that line",
        ) from exc


def _search_path(env: jinja2.Environment) -> list[str]:
    loader = env.loader
    loaders = getattr(loader, "loaders", [loader])
    return [str(path) for item in loaders for path in getattr(item, "searchpath", [])]
