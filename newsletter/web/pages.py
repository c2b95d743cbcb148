"""How every page of `newsletter serve` looks: one renderer over the web/ templates, in the emails' look.

Forms, messages and errors (a link that is not valid, a page that does not exist) all come from
here, so a reader never lands on a bare page and a user's web/base.html restyles them all. The
headers are not set here: hygiene.py's one policy puts them on every answer.
"""

from __future__ import annotations

from http.client import responses
from typing import Any

import jinja2
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ..mail.tokens import CONFIRM_PATH, CONFIRM_TTL, Purpose, TokenSigner
from ..render.digest import make_environment, template_dirs
from ..settings import Settings

_ERRORS = {
    404: ("Page not found", "There is no page at this address. Please check the link."),
    405: ("Not possible here", "This page cannot be used that way. Nothing was changed."),
    413: ("Too much sent", "This page takes a short form, no files. Nothing was changed."),
    500: ("Something went wrong", "Nothing was changed. Please try again in a minute."),
}


class SitePages:
    """Renders the site's pages from web/*.html, the user's templates folder first."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.env: jinja2.Environment = make_environment(template_dirs(settings))

    def page(self, template: str, title: str, status: int = 200, **context: Any) -> HTMLResponse:
        """A page in the emails' look: the newsletter's title above, the sender's name below."""
        sender = self.settings.sender
        html = self.env.get_template(template).render(
            page_title=title,
            site_title=self.settings.title,
            sender_name=sender.name,
            postal_address=sender.postal_address,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def message(
        self, title: str, *lines: str, status: int = 200, link: dict[str, str] | None = None
    ) -> HTMLResponse:
        """A page that only says something: a heading, a few sentences and perhaps one link."""
        return self.page("web/message.html", title, status, lines=lines, link=link, button=None)

    def unsubscribed(self, tokens: TokenSigner, list_name: str, email: str) -> HTMLResponse:
        """The page after an unsubscribe, with a button that undoes it.

        The button carries a fresh confirm token: the link that led here proved the address, so
        coming back needs no mail, keeps the saved topics, and works only until the next unsubscribe.
        """
        again = tokens.sign(Purpose.CONFIRM, list_name, email, expires=CONFIRM_TTL)
        return self.page(
            "web/message.html",
            "Unsubscribed",
            lines=(f"{email} will get no more {self.settings.title} emails.",),
            link=None,
            button={
                "action": CONFIRM_PATH,
                "token": again,
                "text": "Subscribe again",
                "intro": "Changed your mind?",
            },
        )

    def not_valid(self) -> HTMLResponse:
        """The answer to a link whose token is forged, mangled, expired or for another page."""
        return self.message(
            "Link not valid",
            "This link is not valid. Nothing was changed. Please use the exact link from the email.",
            status=403,
        )

    def incomplete(self) -> HTMLResponse:
        """The answer to a link that lost a part on its way (a mail client cut it, say)."""
        return self.message(
            "Incomplete link",
            "This link is missing a part. Please use the full link from the email.",
            status=400,
        )

    def unknown_list(self) -> HTMLResponse:
        """The answer to a link or form for a list this server does not have."""
        return self.message(
            "Unknown list", "There is no newsletter of that name here. Nothing was changed.", status=404
        )

    def try_again(self, what: str = "record this") -> HTMLResponse:
        """The answer when a change could not be written now (the list is locked or the disk full)."""
        return self.message(
            "Please try again", f"We could not {what} right now. Please try again in a minute.", status=503
        )

    def error(self, status: int) -> HTMLResponse:
        """The page for a status no route chose itself: 404, 405, 500 and the rest."""
        title, line = _ERRORS.get(status, (responses.get(status, "Error"), "Nothing was changed."))
        return self.message(title, line, status=status)

    async def http_error(self, request: Request, exc: Exception) -> HTMLResponse:
        """Starlette's handler for HTTPException (no route, wrong method): the site's page, same status."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        answer = self.error(status)
        if isinstance(exc, HTTPException) and exc.headers:
            answer.headers.update(exc.headers)  # Allow on a 405
        return answer
