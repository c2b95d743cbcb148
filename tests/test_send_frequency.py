"""Daily and weekly readers get only their own issues; a pause skips issues; pending get nothing."""

from __future__ import annotations

import email
import json
import mailbox
import re
from email.policy import default
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from helpers.lists import store_of

from newsletter.cli.app import main
from newsletter.statuses import Frequency, SubscriberStatus
from newsletter.store.subscribers import SubscriberStore


def send(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["send", "--json", *args])
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def delivered(project: Path) -> list[email.message.EmailMessage]:
    box = mailbox.Maildir(project / "outbox", factory=None, create=False)
    return [email.message_from_bytes(box.get_bytes(k), policy=default) for k in box.iterkeys()]


def prepare(project: Path) -> SubscriberStore:
    """alice reads daily, ada paused past the issue, bob only signed up (pending)."""
    path = project / "subscribers" / "example.csv"
    text = path.read_text(encoding="utf-8").splitlines()
    text[0] += ",frequency,pause_until"
    text = [text[0]] + [line + ",," for line in text[1:]]
    text[1] = text[1][:-2] + ",daily,"
    text[2] = text[2][:-2] + ",,2024-03-20"
    text[3] = text[3].replace(",active,", ",pending,")
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return store_of(path)


def test_weekly_and_daily_issues_reach_only_their_readers(project: Path) -> None:
    store = prepare(project)
    readers = {s.email: s for s in store.read()}
    assert readers["alice@example.org"].frequency is Frequency.DAILY
    assert readers["bob@example.com"].status is SubscriberStatus.PENDING

    weekly = send()
    to = {m["To"].addresses[0].addr_spec for m in delivered(project)}
    assert weekly["issue"] == "2024-W11" and weekly["paused"] == 1
    assert not to & {"alice@example.org", "ada.lovelace@example.com", "bob@example.com"}
    active_weekly = [s for s in readers.values() if s.is_active and s.email not in {"alice@example.org"}]
    assert weekly["sent"] + weekly["empty"] + weekly["paused"] == len(active_weekly)

    daily = send("--frequency", "daily")
    assert daily["issue"] == "2024-03-14" and daily["sent"] == 1
    new = {m["To"].addresses[0].addr_spec for m in delivered(project)} - to
    assert new == {"alice@example.org"}


def test_no_link_or_header_carries_an_address_and_the_footer_links_to_manage(project: Path) -> None:
    send()
    messages = delivered(project)
    assert messages
    for message in messages:
        address = message["To"].addresses[0].addr_spec
        raw = message.as_string()
        urls = re.findall(r"(?:https?|mailto):[^\s\"'<>]+", raw)
        assert urls and not [u for u in urls if address.lower() in u.lower() or "%40" in u.split("?")[-1]]
        assert "email=" not in raw
        body = message.get_body(preferencelist=("plain",))
        assert body is not None
        text = body.get_content()
        assert "/manage?t=" in text and "/unsubscribe?t=" in text


def test_a_weekly_run_says_which_daily_readers_no_daily_run_serves(project: Path) -> None:
    prepare(project)
    runner = CliRunner()

    weekly = runner.invoke(main, ["send", "--json"])
    warning = (
        "1 active reader(s) of list 'example' chose the daily digest, which no run sent in the 2 days "
        "up to 2024-03-14: schedule `newsletter send --frequency daily --list example`"
    )
    assert weekly.exit_code == 0, weekly.output
    assert json.loads(weekly.stdout)["left_out"] == warning
    assert f"Warning: {warning}" in weekly.stderr.splitlines()

    send("--frequency", "daily")
    again = runner.invoke(main, ["send", "--json"])
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert (report["other_frequency"], report["left_out"]) == (1, None)
    assert "daily digest" not in again.stderr
