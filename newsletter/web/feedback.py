"""`/feedback?t=TOKEN&v=more|less`: a reader's "more/less like this" on one paper of a digest.

The token (purpose feedback, bound to list, reader and paper id) says who and which paper; the
verdict is the reader's own choice, so it rides in the URL unsigned and the page lets them flip
it. A GET only shows one button (mail scanners follow links and must change nothing); the POST
records the verdict in the database, where the next issue's ranking reads it.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Route

from ..errors import NewsletterError
from ..mail.tokens import FEEDBACK_PATH, Claims, Purpose, TokenSigner
from ..ranking.feedback import Verdict
from ..ranking.feedbackstore import FeedbackStore
from ..settings import Settings
from .bodies import form_fields
from .pages import SitePages

log = logging.getLogger(__name__)
_ASK = {Verdict.MORE: "More papers like this one?", Verdict.LESS: "Fewer papers like this one?"}
_BUTTON = {Verdict.MORE: "More like this", Verdict.LESS: "Less like this"}
_DONE = {
    Verdict.MORE: "Thanks: from the next issue on, papers like this one move up in your digest.",
    Verdict.LESS: "Thanks: from the next issue on, papers like this one move down, and this paper's"
    " near-duplicates are not sent to you.",
}


class FeedbackPages:
    """Checks the token, shows the paper with one button (GET), records the verdict (POST)."""

    def __init__(self, settings: Settings, signer: TokenSigner, pages: SitePages) -> None:
        self.pages = pages
        self.settings = settings
        self.tokens = signer
        self.store = FeedbackStore.open(settings)

    def _checked(
        self, request: Request, token: str = "", verdict: str = ""
    ) -> tuple[Claims, Verdict] | HTMLResponse:
        token = token or request.query_params.get("t", "")
        claims = self.tokens.verify(token, Purpose.FEEDBACK) if token else None
        if claims is None or not claims.item:
            return self.pages.not_valid()
        try:
            return claims, Verdict(verdict or request.query_params.get("v", "more"))
        except ValueError:
            return self.pages.incomplete()

    async def ask(self, request: Request) -> HTMLResponse:
        """GET: the paper's title and one button; nothing is recorded."""
        checked = self._checked(request)
        if isinstance(checked, HTMLResponse):
            return checked
        claims, verdict = checked
        remembered = await run_in_threadpool(self._paper_title, claims.item)
        other = Verdict.LESS if verdict == Verdict.MORE else Verdict.MORE
        token = request.query_params.get("t", "")
        return self.pages.page(
            "web/feedback.html",
            _ASK[verdict],
            paper_title=remembered,
            action="?" + urlencode({"t": token, "v": verdict.value}),
            button=_BUTTON[verdict],
            other={"url": "?" + urlencode({"t": token, "v": other.value}), "text": _BUTTON[other].lower()},
        )

    async def record(self, request: Request) -> HTMLResponse:
        """POST: keep the verdict (clicking again, or the other verdict, replaces it)."""
        form = await form_fields(request)  # a mangled body does not matter: the query decides
        token, verdict = form.get("t", ""), form.get("v", "")
        checked = self._checked(request, token, verdict)
        if isinstance(checked, HTMLResponse):
            return checked
        claims, chosen = checked
        try:
            await run_in_threadpool(self.store.record, claims.list_name, claims.email, claims.item, chosen)
        except NewsletterError as exc:
            log.error("feedback not recorded: %s", exc.message)
            return self.pages.try_again()
        log.info("feedback %s on %s from a reader of %s", chosen.value, claims.item, claims.list_name)
        return self.pages.message("Thank you", _DONE[chosen])

    def _paper_title(self, paper_id: str) -> str:
        try:
            remembered = self.store.paper(paper_id)
        except NewsletterError:
            remembered = None
        return remembered.title if remembered else f"Paper {paper_id}"


def feedback_routes(settings: Settings, signer: TokenSigner, pages: SitePages) -> list[BaseRoute]:
    """The GET and POST routes of the feedback page."""
    feedback = FeedbackPages(settings, signer, pages)
    return [
        Route(FEEDBACK_PATH, feedback.ask, methods=["GET"]),
        Route(FEEDBACK_PATH, feedback.record, methods=["POST"]),
    ]
