"""Checks a deployment before cron relies on it: settings, templates, lists, secret, SMTP."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import jinja2

from . import preflight
from .delivery import EmbeddedServer, SmtpTarget
from .delivery.smtp import ServerFailure, Step, close_connection, open_connection
from .errors import NewsletterError
from .render.digest import make_environment, template_dirs
from .safety.secretkey import (
    HOW_TO_MAKE,
    MIN_LENGTH,
    PREVIOUS_FIX,
    PREVIOUS_NAME,
    previous_weakness,
    secret_weakness,
)
from .settings import Settings
from .statuses import Frequency
from .store import SCHEMA_VERSION
from .store.status import database_health
from .subscribers.rows import RowProblem, read_subscribers

REQUIRED_TEMPLATES = (
    "digest.html",
    "digest.txt",
    "paper.html",
    "paper.txt",
    "style.css",
    "archive/base.html",
    "archive/issue.html",
    "archive/index.html",
)


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"
        return text if self.ok or not self.fix else f"{text} (fix: {self.fix})"


def run_checks(settings: Settings, dns_lookup: preflight.TxtLookup | None = None) -> Iterator[Check]:
    """Every check in order; SMTP last because it is the slowest. No DNS lookup without `dns_lookup`."""
    yield Check("settings", True, str(settings.config_file or "defaults and environment only"))
    template_checks = list(check_templates(settings))
    yield from template_checks
    yield from check_lists(settings)
    yield from check_links(settings)
    yield check_return_path(settings)
    yield check_database(settings)
    yield from _checks(preflight.check_sources(settings))
    found, issue = preflight.check_next_issue(settings)
    yield from _checks([found])
    if all(check.ok for check in template_checks):  # a template that does not load cannot render
        yield from _checks(preflight.check_rendering(settings, issue))
    yield from _checks(preflight.check_dkim(settings, dns_lookup))
    yield from check_smtp(settings)


def _checks(findings: Iterable[preflight.Finding]) -> Iterator[Check]:
    for finding in findings:
        yield Check(finding.name, finding.ok, finding.detail, finding.fix)


def check_templates(settings: Settings) -> Iterator[Check]:
    dirs = template_dirs(settings)
    env = make_environment(dirs)
    broken = False
    for name in REQUIRED_TEMPLATES:
        try:
            env.get_template(name)
        except jinja2.TemplateNotFound:
            yield Check(
                f"template {name}",
                False,
                "not found in " + ", ".join(map(str, dirs)),
                "restore it, or delete your override folder's copy",
            )
            broken = True
        except jinja2.TemplateSyntaxError as exc:
            yield Check(
                f"template {name}",
                False,
                f"{exc.filename}:{exc.lineno}: {exc.message}",
                "fix the Jinja syntax at that line",
            )
            broken = True
    if not broken:
        yield Check("templates", True, "found in " + ", ".join(map(str, dirs)))


def check_lists(settings: Settings) -> Iterator[Check]:
    folder = settings.path(settings.subscribers_dir)
    paths = sorted(folder.glob("*.csv"))
    if not paths:
        yield Check(
            "subscriber lists",
            False,
            f"no *.csv in {folder}",
            "create one with `newsletter subscribers add EMAIL --list NAME`",
        )
    for path in paths:
        try:
            problems: list[RowProblem] = []  # the file as the next command reads it; no database written
            read = read_subscribers(path, on_problem=problems.append)
            readers = Counter(subscriber.frequency for _, subscriber in read if subscriber.is_active)
            active = sum(readers.values())
        except NewsletterError as exc:
            yield Check(f"list {path.stem}", False, exc.message)
            continue
        if problems:
            first = problems[0]
            yield Check(
                f"list {path.stem}",
                False,
                f"{len(problems)} bad row(s), first {first}",
                f"see all with `newsletter subscribers validate --list {path.stem}`",
            )
        else:
            yield Check(f"list {path.stem}", True, f"{active} active subscriber(s) in {path}")
        yield from check_schedules(settings, path.stem, readers)


def check_schedules(settings: Settings, list_name: str, readers: Mapping[Frequency, int]) -> Iterator[Check]:
    """Readers of a frequency no run serves, while another schedule evidently runs (the ledger)."""
    from .delivery import channel_for
    from .pipeline.schedules import LeftOut, send_command, served_recently
    from .store.opening import existing_database

    wanted = {frequency: count for frequency, count in readers.items() if count}
    if set(wanted) <= {Frequency.WEEKLY}:
        return  # the weekly job every setup has is the only one these readers need
    day = settings.issue_date or date.today()
    db = existing_database(settings.places.database())
    channel = channel_for(settings.smtp)
    running = {f for f in Frequency if served_recently(db, list_name, channel, f, day)}
    missing = [LeftOut(list_name, f, count, day) for f, count in wanted.items() if f not in running]
    name = f"schedule {list_name}"
    if missing and running:
        yield Check(
            name,
            False,
            "; ".join(map(str, missing)),
            "add that command to cron, see README, Weekly and daily",
        )
        return
    commands = " and ".join(f"`{send_command(f, list_name)}`" for f in Frequency if f in wanted)
    counts = ", ".join(f"{wanted[f]} {f.value}" for f in Frequency if f in wanted)
    yield Check(name, True, f"{counts} reader(s): each frequency needs its own run, {commands}")


def check_links(settings: Settings) -> Iterator[Check]:
    local = settings.smtp.is_embedded
    weakness = secret_weakness(settings.secret)
    if weakness is None:
        yield Check("secret", True, f"NEWSLETTER_SECRET is set ({len(settings.secret or '')} characters)")
    else:
        # `serve` refuses a weak secret too, and base_url is where serve answers.
        needed = not local or bool(settings.base_url)
        yield Check(
            "secret",
            not needed,
            f"NEWSLETTER_SECRET {weakness}" + ("" if needed else " (fine for the embedded outbox)"),
            f"set it to at least {MIN_LENGTH} random characters, e.g. `{HOW_TO_MAKE}`",
        )
    if settings.secret_previous:
        # Every command that checks links refuses a weak one (mail/tokens.py), local trials too.
        weak = previous_weakness(settings.secret_previous)
        detail = f"{PREVIOUS_NAME} {weak}" if weak else f"{PREVIOUS_NAME} is set (links it signed still work)"
        yield Check("secret_previous", weak is None, detail, PREVIOUS_FIX)
    if settings.base_url and not settings.base_url.startswith("https://") and not local:
        yield Check(
            "base_url",
            False,
            f"{settings.base_url} is not https",
            "mail clients only trust one-click unsubscribe over https",
        )
    elif settings.base_url:
        yield Check("base_url", True, settings.base_url)
    else:
        yield Check(
            "base_url",
            local,
            "not set" + (" (fine for the embedded outbox)" if local else ""),
            "set NEWSLETTER_BASE_URL to where `newsletter serve` is reachable",
        )


def check_return_path(settings: Settings) -> Check:
    """Where bounces go, and whether a report that quotes nothing of the message can still count."""
    from .errors import ConfigError
    from .mail.tokens import TokenSigner
    from .mail.verp import ReturnPath

    sender = settings.sender
    if not sender.uses_verp:
        return Check(
            "bounces",
            True,
            f"MAIL FROM {sender.envelope_sender} (no VERP: only reports that quote the Message-ID count)",
        )
    try:
        path = ReturnPath(TokenSigner(settings.secret or "-"), sender.envelope_sender)
    except ConfigError as exc:
        return Check("bounces", False, exc.what, exc.fix or "")
    return Check("bounces", True, f"MAIL FROM {path.local}+b-<signed token>@{path.domain}, one per message")


def check_database(settings: Settings) -> Check:
    """The database every command uses: reachable, of a schema this release can use, really
    written to (rolled back), and on SQLite a file only its owner can read. Nothing is upgraded."""
    place = settings.places.database()
    health = database_health(place)
    if health.problem is not None:
        return Check("database", False, f"{place.shown}: {health.problem.what}", health.problem.fix or "")
    if health.version is None:
        return Check("database", True, f"{place.shown} (SQLite, created by the first command that needs it)")
    if health.mode is not None and health.mode & 0o077:
        return Check(
            "database",
            False,
            f"{place.shown} can be read by other users (mode {health.mode:o}): it holds addresses",
            f"chmod 600 {place.shown}",
        )
    state = f"schema version {health.version}"
    if health.version == 0:
        state = "empty, set up by `newsletter db upgrade` or the next command"
    elif health.version < SCHEMA_VERSION:
        state += f", upgraded to {SCHEMA_VERSION} by `newsletter db upgrade` or the next command"
    return Check("database", True, f"{place.engine_name} {place.shown} ({state}), a test write rolled back")


def check_smtp(settings: Settings) -> Iterator[Check]:
    """Connect, EHLO, STARTTLS and AUTH exactly as `send` does, and send nothing."""
    if settings.smtp.is_embedded:
        with EmbeddedServer(settings.path(settings.smtp.outbox)) as server:
            target = SmtpTarget.embedded(server.host, server.port, settings.smtp.timeout)
            yield from asyncio.run(_probe(target, "smtp (embedded)"))
        return
    try:
        target = SmtpTarget.from_settings(settings.smtp)
    except NewsletterError as exc:
        yield Check("smtp ca_file", False, exc.message)
        return
    yield from asyncio.run(_probe(target, "smtp"))


async def _probe(target: SmtpTarget, label: str) -> list[Check]:
    checks: list[Check] = []

    def passed(step: Step, detail: str) -> None:
        checks.append(Check(f"{label} {step}", True, detail))

    try:
        client = await open_connection(target, passed)
    except ServerFailure as exc:
        step = exc.step or Step.CONNECT
        checks.append(Check(f"{label} {step}", False, f"{target.where}: {exc.what}", exc.fix or ""))
        return checks
    await close_connection(client)
    return checks


def ok(checks: list[Check]) -> bool:
    return all(c.ok for c in checks)


__all__ = ["Check", "Path", "ok", "run_checks"]
