"""Sign-up, confirm and manage: the pages a reader uses to join a list and steer their digest.

Nothing here says whether an address is on a list: a sign-up answers the same page for a new,
pending, active, unsubscribed or bounced address, and the mail (if any) goes to the address
itself. GETs never change anything (mail scanners follow links); every change is a POST.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ..delivery.channel import outbox_shown
from ..delivery.oneoff import OneOffSender
from ..errors import NewsletterError, StoreError, SubscriberError
from ..mail.compose import HeaderValueError
from ..mail.notices import Notice, NoticeComposer
from ..mail.tokens import CONFIRM_TTL, Claims, Purpose, TokenSigner, purpose_url
from ..models import Subscriber
from ..pipeline.issue import LOCAL_BASE_URL
from ..settings import Settings
from ..statuses import Frequency, ReplyClass, SubscriberStatus
from ..store import open_database
from ..subscribers import SubscriberStore, known_list, open_list
from ..subscribers.signup import (
    ConfirmOutcome,
    Preferences,
    SignupOutcome,
    checked_address,
    clean_preferences,
    confirm,
    leave,
    request_signup,
    save_preferences,
)
from .bodies import form_fields
from .guard import CSRF_COOKIE, CsrfGuard, RateLimit, client_key, mailbox_key
from .pages import SitePages
from .sample import IssueSample

log = logging.getLogger(__name__)
SUBSCRIBE_PATH = "/subscribe"
SIGNUPS_PER_IP_PER_HOUR = 10
MAILS_PER_ADDRESS_PER_HOUR = 1
# Preference saves through one reader's manage link; unsubscribing is never limited.
SAVES_PER_READER_PER_HOUR = 30


class SelfService:
    """The handlers of /subscribe, /confirm and /manage for every list of one project."""

    def __init__(self, settings: Settings, list_name_ok: Callable[[str], bool], pages: SitePages) -> None:
        self.settings = settings
        self.pages = pages
        self.list_name_ok = list_name_ok
        self.tokens = TokenSigner.from_settings(settings)
        self.csrf = CsrfGuard(settings.secret or "")
        db = open_database(settings.places.database())
        secret = settings.secret or ""
        self.per_ip = RateLimit(db, "signups per ip", SIGNUPS_PER_IP_PER_HOUR, 3600, secret)
        self.per_address = RateLimit(db, "mails per address", MAILS_PER_ADDRESS_PER_HOUR, 3600, secret)
        self.saves = RateLimit(db, "saves per reader", SAVES_PER_READER_PER_HOUR, 3600, secret)
        self.sample = IssueSample(settings)
        self.mailer = OneOffSender(settings)
        self.outbox = outbox_shown(settings)
        self.notices = NoticeComposer(settings)
        self.base_url = (settings.base_url or "").rstrip("/")
        self.secure_cookie = self.base_url.startswith("https://")

    async def _store(self, list_name: str) -> SubscriberStore | None:
        """The list's store when the name is one we serve: an existing list, or a public one."""
        if not self.list_name_ok(list_name):
            return None
        places = self.settings.places
        found = await run_in_threadpool(known_list, places, list_name)
        if found is None and self._public(list_name):
            return open_list(places, list_name, sync=False)  # its first sign-up makes it
        return found

    def _public(self, list_name: str) -> bool:
        """Whether strangers may sign up to a list: the default one, and those the config opens."""
        return list_name == self.settings.default_list or list_name in self.settings.serve.public_lists

    async def _signup_store(self, list_name: str) -> SubscriberStore | None:
        """The store of a list that takes sign-ups from the form; None (a 404) for a private list."""
        return await self._store(list_name) if self._public(list_name) else None

    def _link(self, request: Request, purpose: Purpose, claims_list: str, email: str, item: str = "") -> str:
        base = self.base_url or _local_base(request)
        expires = CONFIRM_TTL if purpose is Purpose.CONFIRM else None
        return purpose_url(self.tokens, base, purpose, claims_list, email, item=item, expires=expires)

    # --- /subscribe -------------------------------------------------------------------------

    async def home(self, request: Request) -> HTMLResponse:
        """GET /: a newcomer lands on the default list's sign-up form, not on a bare Not Found."""
        return await self._form(request, self.settings.default_list, {}, error="", retry=False, status=200)

    async def subscribe_form(self, request: Request) -> HTMLResponse:
        """GET: the sign-up form, with keyword examples and this week's top papers."""
        list_name = request.query_params.get("list", "") or self.settings.default_list
        if await self._signup_store(list_name) is None:
            return self.pages.unknown_list()
        return await self._form(request, list_name, {}, error="", retry=False, status=200)

    async def _form(
        self,
        request: Request,
        list_name: str,
        fields: dict[str, str],
        *,
        error: str,
        retry: bool,
        status: int,
    ) -> HTMLResponse:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        fresh = not cookie or len(cookie) > 100
        if fresh:
            cookie = CsrfGuard.new_cookie()
        examples = await run_in_threadpool(self.sample.examples, list_name)
        papers = await run_in_threadpool(self.sample.picks, list_name, ())
        response = self.pages.page(
            "web/subscribe.html",
            f"Subscribe to {self.settings.title}",
            status,
            action=SUBSCRIBE_PATH,
            list_name=list_name,
            csrf=self.csrf.token(cookie),
            form={k: fields.get(k, "") for k in ("email", "name", "keywords", "frequency")},
            examples=examples,
            papers=papers[:5],
            no_papers_text="",
            error=error,
            retry=retry,
            archive_url=self._archive_link(),
        )
        if fresh:
            response.set_cookie(
                CSRF_COOKIE,
                cookie,
                max_age=86400,
                httponly=True,
                samesite="strict",
                secure=self.secure_cookie,
            )
        return response

    def _archive_link(self) -> str:
        """The past issues, once `newsletter archive` wrote them; relative, so a path prefix keeps working."""
        index = self.settings.path(self.settings.archive_dir) / "index.html"
        return "archive/" if index.is_file() else ""

    async def subscribe(self, request: Request) -> HTMLResponse:
        """POST: record a pending sign-up and mail the confirmation; one answer for every address."""
        form = await form_fields(request)
        list_name = form.get("list", "") or request.query_params.get("list", "") or self.settings.default_list
        store = await self._signup_store(list_name)
        if store is None:
            return self.pages.unknown_list()
        if form.get("website"):  # the honeypot: people never see it, form-filling bots fill it
            log.info("sign-up with the honeypot filled ignored")
            return self._check_inbox()
        if not self.csrf.check(request.cookies.get(CSRF_COOKIE, ""), form.get("csrf", "")):
            # A post from another site (or an old page): nothing changes, the person confirms here.
            return await self._form(request, list_name, form, error="", retry=True, status=200)
        client = client_key(request.client.host) if request.client else "unknown"
        try:
            address = checked_address(form.get("email", ""))
            prefs = clean_preferences(
                form.get("name", ""), form.get("keywords", ""), form.get("frequency", "")
            )
        except SubscriberError as exc:
            return await self._form(request, list_name, form, error=_sentence(exc), retry=False, status=400)
        try:
            if not await run_in_threadpool(self.per_ip.allow, client):
                return self.pages.message(
                    "Too many sign-ups",
                    "Too many sign-ups came from your network in the last hour. Please try again later.",
                    status=429,
                )
            outcome = await run_in_threadpool(request_signup, store, address, prefs)
            mail = await run_in_threadpool(self.per_address.allow, mailbox_key(address))
        except (SubscriberError, StoreError) as exc:
            log.error("sign-up to %s not recorded: %s", list_name, exc.message)
            return self.pages.try_again()
        if not mail:  # the hourly limit: the page says so rather than claim a mail went out
            return self._mailed_already()
        response = self._check_inbox()
        # Sent right after the answer: every address state answers equally fast, and a slow
        # mail server never holds the reader's page.
        response.background = BackgroundTask(self._mail, request, list_name, address, outcome, prefs)
        return response

    def _check_inbox(self) -> HTMLResponse:
        return self._inbox_page(
            "We have sent you an email. Open the link in it to confirm your subscription.",
            "Nothing arrived after a few minutes? Look in the spam folder, or sign up again in an hour.",
        )

    def _mailed_already(self) -> HTMLResponse:
        return self._inbox_page(
            "An email went to this address less than an hour ago, so no new email was sent. "
            "Open the link in that one to confirm your subscription.",
            "Nothing arrived? Look in the spam folder, or sign up again in an hour.",
        )

    def _inbox_page(self, sent: str, nothing_came: str) -> HTMLResponse:
        """The check-your-inbox page; in a local trial no mailbox gets the mail, so it says where it is."""
        if self.outbox is None:
            return self.pages.message("Check your inbox", sent, nothing_came)
        return self.pages.message(
            "Check your inbox",
            sent,
            f"This is a local trial: the email stays on this machine, filed in {self.outbox} "
            "(the embedded outbox). Open it there and follow its link.",
        )

    async def _mail(
        self, request: Request, list_name: str, address: str, outcome: SignupOutcome, prefs: Preferences
    ) -> None:
        if outcome is SignupOutcome.ALREADY:
            notice = Notice(address, manage_url=self._link(request, Purpose.MANAGE, list_name, address))
        else:
            # The link names this request: a later sign-up for the address cannot ride on it.
            confirm_url = self._link(request, Purpose.CONFIRM, list_name, address, prefs.digest())
            notice = Notice(address, confirm_url=confirm_url)
        try:
            message = self.notices.compose(notice)
        except (HeaderValueError, NewsletterError) as exc:
            log.error("confirmation mail not composed: %s", exc)
            return
        reply = await self.mailer.send(message)
        if reply.kind is not ReplyClass.ACCEPTED:
            log.warning("confirmation mail for %s not accepted: %s", list_name, reply)

    # --- /confirm ---------------------------------------------------------------------------

    def _claims(self, token: str, purpose: Purpose) -> Claims | None:
        claims = self.tokens.verify(token, purpose)
        return claims if claims is not None and self.list_name_ok(claims.list_name) else None

    def _signup_link(self, list_name: str, text: str) -> dict[str, str] | None:
        """A link to the list's sign-up form, for a list that has one."""
        if not self._public(list_name):
            return None
        return {"url": f"{SUBSCRIBE_PATH}?list={list_name}", "text": text}

    def _spent(self, list_name: str = "") -> HTMLResponse:
        link = self._signup_link(list_name, "Sign up again") if list_name else None
        return self.pages.message(
            "This link does not work any more",
            "Confirmation links work for 48 hours, once. Nothing was changed.",
            status=400,
            link=link,
        )

    async def confirm_form(self, request: Request) -> HTMLResponse:
        """GET: one button, no change; a link already used says so instead of offering the button again."""
        token = request.query_params.get("t", "")
        claims = self._claims(token, Purpose.CONFIRM)
        if claims is None:
            return self._spent()
        store = await run_in_threadpool(known_list, self.settings.places, claims.list_name)  # never makes one
        subscriber = None if store is None else await run_in_threadpool(store.get, claims.email)
        if subscriber is not None and subscriber.status is SubscriberStatus.ACTIVE:
            return self._subscribed_already(claims.email, subscriber)
        return self.pages.page(
            "web/confirm.html",
            "Confirm your subscription",
            action="/confirm",
            token=token,
            email=claims.email,
        )

    async def confirm(self, request: Request) -> HTMLResponse:
        """POST: activate, then show what this week's issue would send, keywords editable."""
        form = await form_fields(request)
        token = form.get("t", "") or request.query_params.get("t", "")
        claims = self._claims(token, Purpose.CONFIRM)
        store = None if claims is None else await self._store(claims.list_name)
        if claims is None or store is None or claims.expires is None:
            return self._spent()
        issued = datetime.fromtimestamp(claims.expires, UTC) - CONFIRM_TTL
        try:
            outcome = await run_in_threadpool(confirm, store, claims.email, issued, claims.item)
        except SubscriberError as exc:
            log.error("confirmation for %s not recorded: %s", claims.list_name, exc.message)
            return self.pages.try_again()
        if outcome is ConfirmOutcome.GONE:
            return self._spent(claims.list_name)
        subscriber = await run_in_threadpool(store.get, claims.email)
        if outcome is ConfirmOutcome.ALREADY or subscriber is None:
            # A link works once: a later use shows where things stand and hands out no new link.
            return self._subscribed_already(claims.email, subscriber)
        manage = self.tokens.sign(Purpose.MANAGE, claims.list_name, claims.email)
        return await self._manage_page(
            claims.list_name,
            manage,
            subscriber,
            title="You\u2019re subscribed",
            saved=f"Confirmed. Your first {subscriber.frequency.value} digest comes with the next issue.",
            heading=f"{_next_issue(subscriber.frequency).capitalize()} would have sent you",
        )

    # --- /manage ----------------------------------------------------------------------------

    async def _manage_page(
        self,
        list_name: str,
        token: str,
        subscriber: Subscriber | None,
        *,
        title: str = "Your subscription",
        saved: str = "",
        error: str = "",
        heading: str = "",
        fields: dict[str, str] | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        if subscriber is None:
            return self._not_subscribed(list_name)
        stored = {
            "name": subscriber.name,
            "keywords": "; ".join(subscriber.keywords),
            "frequency": subscriber.frequency.value,
            "pause_until": subscriber.pause_until.isoformat() if subscriber.pause_until else "",
        }
        form = {key: (fields or {}).get(key, value) for key, value in stored.items()}
        frequency = subscriber.frequency
        papers = await run_in_threadpool(self.sample.picks, list_name, tuple(subscriber.keywords), frequency)
        examples = await run_in_threadpool(self.sample.examples, list_name)
        return self.pages.page(
            "web/manage.html",
            title,
            status,
            action="/manage",
            token=token,
            form=form,
            examples=examples,
            saved=saved,
            error=error,
            intro=f"Preferences for {subscriber.email}.",
            papers=papers,
            papers_heading=heading or f"With these topics, {_next_issue(frequency)} sends you",
            no_papers_text=f"No papers in {_next_issue(frequency)} match these topics yet. "
            "Try broader words, or leave the topics empty for the top papers.",
        )

    def _subscribed_already(self, email: str, subscriber: Subscriber | None) -> HTMLResponse:
        if subscriber is None or subscriber.status is not SubscriberStatus.ACTIVE:
            return self._spent()
        return self.pages.message(
            "Already confirmed",
            f"{email} is subscribed to the {subscriber.frequency.value} {self.settings.title} digest.",
            "This link has been used already. To change your topics, use the link at the foot of any digest.",
        )

    def _not_subscribed(self, list_name: str) -> HTMLResponse:
        return self.pages.message(
            "You are not subscribed",
            "This address does not get this newsletter (any more). Nothing was changed.",
            link=self._signup_link(list_name, "Subscribe again"),
        )

    async def _manage_claims(
        self, token: str
    ) -> tuple[Claims, SubscriberStore, Subscriber | None] | HTMLResponse:
        claims = self._claims(token, Purpose.MANAGE)
        store = None if claims is None else await self._store(claims.list_name)
        if claims is None or store is None:
            return self.pages.not_valid()
        subscriber = await run_in_threadpool(store.get, claims.email)
        if subscriber is not None and subscriber.status is not SubscriberStatus.ACTIVE:
            subscriber = None
        return claims, store, subscriber

    async def manage_form(self, request: Request) -> HTMLResponse:
        """GET: the reader's preferences and what they pick from this week's issue."""
        token = request.query_params.get("t", "")
        found = await self._manage_claims(token)
        if isinstance(found, HTMLResponse):
            return found
        claims, _, subscriber = found
        return await self._manage_page(claims.list_name, token, subscriber)

    async def manage(self, request: Request) -> HTMLResponse:
        """POST: save the preferences (and show what they pick), or unsubscribe."""
        form = await form_fields(request)
        token = form.get("t", "") or request.query_params.get("t", "")
        found = await self._manage_claims(token)
        if isinstance(found, HTMLResponse):
            return found
        claims, store, subscriber = found
        if subscriber is None:
            return self._not_subscribed(claims.list_name)
        try:
            if form.get("action") == "unsubscribe":
                await run_in_threadpool(leave, store, claims.email)
                return self.pages.unsubscribed(self.tokens, claims.list_name, claims.email)
            prefs = clean_preferences(
                form.get("name", ""),
                form.get("keywords", ""),
                form.get("frequency", ""),
                form.get("pause_until", ""),
            )
        except SubscriberError as exc:
            return await self._manage_page(
                claims.list_name, token, subscriber, error=_sentence(exc), fields=form, status=400
            )
        try:
            if not await run_in_threadpool(self.saves.allow, f"{claims.list_name}\n{claims.email}"):
                # One reader's link, replayed by a script: each save is cheap but serve's work is not.
                return self.pages.message(
                    "Too many changes",
                    "These preferences were changed many times in the last hour. Nothing was changed; "
                    "please try again later.",
                    status=429,
                )
            await run_in_threadpool(save_preferences, store, claims.email, prefs)
        except (SubscriberError, StoreError) as exc:
            log.error("preferences for %s not saved: %s", claims.list_name, exc.message)
            return self.pages.try_again("save this")
        updated = _with(subscriber, prefs)
        return await self._manage_page(claims.list_name, token, updated, saved=_saved_text(prefs))


def _local_base(request: Request) -> str:
    """Without NEWSLETTER_BASE_URL (a local trial): the address this server listens on.

    Taken from the socket, never from the Host header, so nobody can make us mail a link
    to a host of their choosing.
    """
    server = request.scope.get("server")
    if not server:
        return LOCAL_BASE_URL
    host, port = server[0], server[1]
    host = f"[{host}]" if ":" in str(host) else host
    return f"http://{host}:{port}"


def _next_issue(frequency: Frequency) -> str:
    """What the papers shown beside a reader's preferences come from, in their own cadence."""
    return "today\u2019s issue" if frequency is Frequency.DAILY else "this week\u2019s issue"


def _with(subscriber: Subscriber, prefs: Preferences) -> Subscriber:
    return replace(
        subscriber,
        name=prefs.name,
        keywords=list(prefs.keywords),
        frequency=prefs.frequency,
        pause_until=prefs.pause_until,
    )


def _saved_text(prefs: Preferences) -> str:
    text = f"Saved. You get the {prefs.frequency.value} digest"
    if prefs.pause_until:
        text += f", paused until {prefs.pause_until:%d %B %Y}"
    return text + "."


def _sentence(exc: NewsletterError) -> str:
    what = exc.what[0].upper() + exc.what[1:]
    return f"{what}: {exc.fix}." if exc.fix else f"{what}."
