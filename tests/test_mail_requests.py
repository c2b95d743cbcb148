"""Unsubscribing by email: the mailto: link in List-Unsubscribe must actually work."""

from __future__ import annotations

import mailbox
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.lists import store_of

from newsletter.cli import main
from newsletter.mail.tokens import TokenSigner, make_legacy_token, request_subject
from newsletter.subscribers.mailrequests import parse_request

SECRET = "test-secret"


def request(subject: str, sender: str = "someone@example.org") -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "digest@example.org"
    message["Subject"] = subject
    message.set_content("please")
    return message


def write_mbox(path: Path, messages: list[EmailMessage]) -> Path:
    box = mailbox.mbox(path)
    for message in messages:
        box.add(message)
    box.close()
    return path


def status(project: Path, email: str) -> str:
    found = store_of(project / "subscribers" / "example.csv").get(email)
    assert found is not None
    return found.status


@pytest.fixture
def with_secret(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEWSLETTER_SECRET", SECRET)
    return project


def first_active(project: Path, skip: int = 0) -> str:
    active = [s.email for s in store_of(project / "subscribers" / "example.csv").read() if s.is_active]
    return active[skip]


def test_request_with_our_token_unsubscribes_and_others_change_nothing(with_secret: Path) -> None:
    target, bystander = first_active(with_secret), first_active(with_secret, 1)
    forged = f"unsubscribe example {bystander} {'A' * 43}"
    mbox = write_mbox(
        with_secret / "requests.mbox",
        [
            request("Re: " + request_subject(TokenSigner(SECRET), "example", target)),
            request(forged),
            request("Thanks for the digest!"),
        ],
    )

    result = CliRunner().invoke(main, ["subscribers", "requests", "--mbox", str(mbox)])

    assert result.exit_code == 0, result.output
    assert status(with_secret, target) == "unsubscribed"
    assert status(with_secret, bystander) == "active"
    assert "3 messages: 1 unsubscribed, 0 already unsubscribed, 1 with a bad token" in result.output


def test_request_from_mail_sent_before_opaque_tokens_still_unsubscribes(with_secret: Path) -> None:
    target = first_active(with_secret)
    subject = f"unsubscribe example {target} {make_legacy_token(SECRET, 'example', target)}"
    mbox = write_mbox(with_secret / "requests.mbox", [request(subject)])

    result = CliRunner().invoke(main, ["subscribers", "requests", "--mbox", str(mbox)])

    assert result.exit_code == 0, result.output
    assert status(with_secret, target) == "unsubscribed"


def test_repeated_request_is_harmless(with_secret: Path) -> None:
    target = first_active(with_secret)
    subject = request_subject(TokenSigner(SECRET), "example", target)
    mbox = write_mbox(with_secret / "requests.mbox", [request(subject), request(subject)])

    result = CliRunner().invoke(main, ["subscribers", "requests", "--mbox", str(mbox)])

    assert result.exit_code == 0, result.output
    assert "1 unsubscribed, 1 already unsubscribed" in result.output


def test_requests_for_mail_sent_to_a_real_server_need_the_secret(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SMTP__HOST", "smtp.example.org")
    mbox = write_mbox(project / "requests.mbox", [request("unsubscribe")])

    result = CliRunner().invoke(main, ["subscribers", "requests", "--mbox", str(mbox)])

    assert result.exit_code == 1
    assert result.output.startswith("Error: NEWSLETTER_SECRET is not set")


def test_a_local_trial_honours_the_mailto_link_of_its_outbox_without_a_secret(project: Path) -> None:
    from email import message_from_bytes, policy
    from urllib.parse import parse_qs, urlsplit

    assert CliRunner().invoke(main, ["send"]).exit_code == 0
    box = mailbox.Maildir(project / "outbox", create=False)
    delivered = message_from_bytes(box.get_bytes(next(iter(box.keys()))), policy=policy.default)
    reader = delivered["To"].addresses[0].addr_spec
    mailto = next(p.strip(" <>") for p in str(delivered["List-Unsubscribe"]).split(",") if "mailto:" in p)
    subject = parse_qs(urlsplit(mailto).query)["subject"][0]
    mbox = write_mbox(project / "requests.mbox", [request(subject, sender=reader)])

    result = CliRunner().invoke(main, ["subscribers", "requests", "--mbox", str(mbox)])

    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("Warning: NEWSLETTER_SECRET is not set: honouring the requests of local")
    assert f"unsubscribed: {reader} (example)" in result.stdout.splitlines()
    assert status(project, reader) == "unsubscribed"


def test_subject_parsing_tolerates_client_prefixes_and_rejects_other_mail() -> None:
    subject = request_subject(TokenSigner(SECRET), "example", "Ada@Example.org")

    parsed = parse_request("Fwd: RE: " + subject)

    assert parsed is not None and parsed.token == subject.split()[-1]
    assert "@" not in subject and "ada" not in subject.lower()
    old_token = make_legacy_token(SECRET, "example", "ada@example.org")
    legacy = parse_request(f"Re: unsubscribe example Ada@Example.org {old_token}")
    assert legacy is not None and (legacy.list_name, legacy.email) == ("example", "ada@example.org")
    assert parse_request("unsubscribe me please") is None
    assert parse_request("Re: your digest") is None


def test_mailto_link_of_a_delivered_digest_unsubscribes_its_reader(with_secret: Path) -> None:
    from email import message_from_bytes, policy
    from urllib.parse import parse_qs, unquote, urlsplit

    assert CliRunner().invoke(main, ["send"]).exit_code == 0
    box = mailbox.Maildir(with_secret / "outbox", create=False)
    delivered = message_from_bytes(box.get_bytes(next(iter(box.keys()))), policy=policy.default)
    reader = delivered["To"].addresses[0].addr_spec
    mailto = next(
        part.strip(" <>") for part in str(delivered["List-Unsubscribe"]).split(",") if "mailto:" in part
    )
    link = urlsplit(mailto)
    subject = parse_qs(link.query)["subject"][0]
    mbox = write_mbox(with_secret / "requests.mbox", [request(subject, sender=reader)])
    assert unquote(link.path) == "digest@example.org"

    result = CliRunner().invoke(main, ["subscribers", "requests", "--mbox", str(mbox)])

    assert result.exit_code == 0, result.output
    assert status(with_secret, reader) == "unsubscribed"
