"""Readers using several `newsletter serve` instances at once: sign-ups, confirmations, one-clicks.

Each action is timed and answers `Answer`s, so the two-serve test checks their statuses and
benchmarks/bench_two_serve.py their latencies. Links name the public address (BASE_URL); each
request goes to the instance a load balancer would have picked.
"""

from __future__ import annotations

import email
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.policy import default
from urllib.parse import urlsplit

import httpx

from helpers.serve_processes import BASE_URL, LIST, SECRET, ServeProcess
from helpers.signup_site import field, link_in
from helpers.smtp_servers import RecordingHandler
from newsletter.mail.tokens import unsubscribe_url
from newsletter.web.guard import CSRF_COOKIE

# One TLS context for every client: httpx makes one per Client otherwise, and with 200 readers
# that was most of the CPU the readers' side spent (no request here uses TLS).
TLS = ssl.create_default_context()
MAIL_WAIT = 120.0  # seconds a reader waits for their confirmation mail (never an assertion on time)
ONE_CLICK = b"List-Unsubscribe=One-Click"


@dataclass(frozen=True)
class Answer:
    """One request: what it was, its HTTP status (0: no answer at all) and how long it took."""

    kind: str
    status: int
    seconds: float


def timed(kind: str, call: Callable[[], httpx.Response]) -> tuple[Answer, httpx.Response]:
    started = time.perf_counter()
    response = call()
    return Answer(kind, response.status_code, time.perf_counter() - started), response


def sign_up(
    browser: httpx.Client, form_from: ServeProcess, post_to: ServeProcess, address: str
) -> list[Answer]:
    """The form from one instance, posted to another: the CSRF token is the secret's, not the process's."""
    got, form = timed("form", lambda: browser.get(f"{form_from.url}/subscribe", params={"list": LIST}))
    if got.status != 200:
        return [got]
    # The cookie is Secure (the public address is https): the load balancer's TLS would carry it.
    cookie = {"Cookie": f"{CSRF_COOKIE}={form.cookies[CSRF_COOKIE]}"}
    data = {"list": LIST, "csrf": field(form.text, "csrf"), "email": address, "name": "New Reader"}
    data |= {"keywords": "diffusion models", "frequency": "weekly", "website": ""}
    posted, _ = timed("sign-up", lambda: browser.post(f"{post_to.url}/subscribe", data=data, headers=cookie))
    return [got, posted]


def confirm_link(smtp: RecordingHandler, address: str) -> str:
    """The path and query of the confirm link in the first mail to `address`, once it arrived."""
    deadline = time.monotonic() + MAIL_WAIT
    while time.monotonic() < deadline:
        mails = [m for m in list(smtp.received) if m.recipient == address]
        if mails:
            return link_in(email.message_from_bytes(mails[0].data, policy=default), "/confirm")
        time.sleep(0.05)
    raise AssertionError(f"no confirmation mail for {address}")


def new_reader(i: int) -> str:
    return f"new{i:03d}@example.org"


def reader_signs_up(serves: Sequence[ServeProcess], smtp: RecordingHandler, i: int) -> list[Answer]:
    """New reader `i`: the form from one instance, posted to the next, confirmed on the first."""
    first, other = serves[i % len(serves)], serves[(i + 1) % len(serves)]
    client = {"X-Forwarded-For": f"10.{1 + i // 250}.{i % 250}.1"}  # each reader from their own network
    with httpx.Client(headers=client, timeout=60, verify=TLS) as browser:
        done = sign_up(browser, first, other, new_reader(i))
    if done[-1].status != 200:
        return done
    link = confirm_link(smtp, new_reader(i))
    token = urlsplit(link).query.removeprefix("t=")
    # Opened from the mailbox later: a new connection. (An idle one reused just as serve's
    # keep_alive closes it is lost in transit, as with any HTTP server: see the README.)
    with httpx.Client(headers=client, timeout=60, verify=TLS) as mail_reader:
        confirmed, _ = timed("confirm", lambda: mail_reader.post(f"{first.url}{link}", data={"t": token}))
    return [*done, confirmed]


def reader_unsubscribes(serves: Sequence[ServeProcess], address: str, i: int) -> list[Answer]:
    """One reader's mail client pressing Unsubscribe (RFC 8058) on the link in their digest."""
    public = urlsplit(unsubscribe_url(BASE_URL, SECRET, LIST, address))
    link = f"{serves[i % len(serves)].url}{public.path}?{public.query}"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    with httpx.Client(timeout=60, verify=TLS) as client:
        return [timed("unsubscribe", lambda: client.post(link, content=ONE_CLICK, headers=headers))[0]]


def all_at_once(jobs: Sequence[Callable[[], list[Answer]]]) -> list[Answer]:
    """Run every job in its own thread, released together; a request with no answer is status 0."""
    start = threading.Barrier(len(jobs))

    def run(job: Callable[[], list[Answer]]) -> list[Answer]:
        start.wait()
        started = time.perf_counter()
        try:
            return job()
        except httpx.HTTPError as exc:  # the request it failed on, and how
            where = f"{exc.request.method} {urlsplit(str(exc.request.url)).path}"
            return [Answer(f"no answer to {where}: {exc!r}", 0, time.perf_counter() - started)]

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return [answer for done in pool.map(run, jobs) for answer in done]
