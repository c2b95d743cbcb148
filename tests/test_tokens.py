"""Link tokens: opaque, bound to one purpose, list, reader (and item), expiring where needed."""

from __future__ import annotations

import base64
import time
import warnings
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette prefers httpx2 for its TestClient; httpx works
    from starlette.testclient import TestClient

from newsletter.errors import ConfigError
from newsletter.mail.tokens import (
    CONFIRM_TTL,
    LINK_PURPOSES,
    Purpose,
    TokenSigner,
    make_legacy_token,
    unsubscribe_link,
    unsubscribe_url,
    verify_legacy_token,
    verify_unsubscribe,
)
from newsletter.settings import Settings
from newsletter.subscribers import open_list
from newsletter.subscribers.mailrequests import apply_mail_requests
from newsletter.web.app import create_app

SECRET = "test-secret-0123456789-test-secret-0123456789"
OTHER = "another-secret-9876543210-another-secret-98765"
SIGNER = TokenSigner(SECRET)


def test_token_opens_to_its_list_and_address_for_its_purpose() -> None:
    token = SIGNER.sign(Purpose.MANAGE, "example", "Alice@Example.org")
    claims = SIGNER.verify(token, Purpose.MANAGE)
    assert claims is not None
    assert (claims.purpose, claims.list_name, claims.email, claims.expires) == (
        Purpose.MANAGE,
        "example",
        "alice@example.org",
        None,
    )


@pytest.mark.parametrize("minted", list(Purpose))
@pytest.mark.parametrize("used", list(Purpose))
def test_a_token_opens_for_no_other_purpose(minted: Purpose, used: Purpose) -> None:
    token = SIGNER.sign(minted, "example", "alice@example.org")
    assert (SIGNER.verify(token, used) is not None) == (minted == used)


def test_the_address_and_list_are_not_readable_in_the_token() -> None:
    token = SIGNER.sign(Purpose.UNSUBSCRIBE, "example", "alice@example.org")
    assert "alice" not in token.lower() and "@" not in token and "example" not in token.lower()
    url = unsubscribe_url("https://digest.example.org/", SECRET, "example", "a+b@example.org")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "digest.example.org", "/unsubscribe")
    assert list(parse_qs(parts.query)) == ["t"] and "a+b" not in url and "%40" not in url


def test_feedback_token_is_bound_to_its_paper() -> None:
    token = SIGNER.sign(Purpose.FEEDBACK, "example", "alice@example.org", item="2503.01234")
    claims = SIGNER.verify(token, Purpose.FEEDBACK)
    assert claims is not None and claims.item == "2503.01234"
    other = SIGNER.sign(Purpose.FEEDBACK, "example", "alice@example.org", item="2503.09999")
    assert other != token


def raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


READER = SIGNER.reader_links("example", "Alice@Example.org")


@pytest.mark.parametrize("minted", sorted(LINK_PURPOSES))
@pytest.mark.parametrize("used", list(Purpose))
def test_a_digest_link_token_opens_for_its_own_purpose_and_paper_only(minted: Purpose, used: Purpose) -> None:
    item = "2503.01234" if minted is Purpose.FEEDBACK else ""
    claims = SIGNER.verify(READER.token(minted, item), used)
    if minted != used:
        assert claims is None
    else:
        assert claims is not None
        assert (claims.list_name, claims.email, claims.item, claims.expires) == (
            "example",
            "alice@example.org",
            item,
            None,
        )


def test_every_changed_byte_of_a_digest_link_token_is_refused() -> None:
    token = raw(READER.token(Purpose.FEEDBACK, "2503.01234"))
    for at in range(len(token)):
        changed = token[:at] + bytes([token[at] ^ 0x01]) + token[at + 1 :]
        assert all(SIGNER.verify(b64(changed), purpose) is None for purpose in Purpose), at
    assert SIGNER.verify(b64(token[:-1]), Purpose.FEEDBACK) is None
    assert TokenSigner(OTHER).verify(b64(token), Purpose.FEEDBACK) is None


def test_a_digest_link_token_cannot_be_moved_to_another_paper_or_purpose() -> None:
    token = raw(READER.token(Purpose.FEEDBACK, "2503.01234"))
    other = raw(READER.token(Purpose.FEEDBACK, "2503.09999"))
    # Another paper's id with this link's tag, and this tag re-labelled as an unsubscribe.
    moved = other[:-12] + token[-12:]
    assert SIGNER.verify(b64(moved), Purpose.FEEDBACK) is None
    unsubscribe = raw(READER.token(Purpose.UNSUBSCRIBE))
    assert SIGNER.verify(b64(unsubscribe[:-12] + token[-12:]), Purpose.UNSUBSCRIBE) is None


def test_the_sealed_part_of_a_digest_link_is_no_token_of_the_first_kind() -> None:
    sealed = raw(READER.token(Purpose.MANAGE))[1:-13]
    assert all(SIGNER.verify(b64(bytes([1]) + sealed), purpose) is None for purpose in Purpose)


def test_digest_links_of_the_previous_secret_verify_while_it_rotates_out() -> None:
    old = TokenSigner(OTHER).reader_links("example", "alice@example.org").token(Purpose.MANAGE)
    assert TokenSigner(SECRET, [OTHER]).verify(old, Purpose.MANAGE) is not None
    assert SIGNER.verify(old, Purpose.MANAGE) is None


def test_confirm_and_bounce_tokens_are_never_digest_links() -> None:
    for purpose in (Purpose.CONFIRM, Purpose.BOUNCE):
        with pytest.raises(ValueError):
            READER.token(purpose)


def test_confirm_token_expires() -> None:
    now = time.time()
    token = SIGNER.sign(Purpose.CONFIRM, "example", "alice@example.org", expires=CONFIRM_TTL, now=now)
    assert SIGNER.verify(token, Purpose.CONFIRM, now=now + CONFIRM_TTL.total_seconds() - 60) is not None
    assert SIGNER.verify(token, Purpose.CONFIRM, now=now + CONFIRM_TTL.total_seconds() + 60) is None
    past = SIGNER.sign(Purpose.CONFIRM, "example", "alice@example.org", expires=timedelta(seconds=-1))
    assert SIGNER.verify(past, Purpose.CONFIRM) is None


def test_tokens_are_stable_for_the_same_reader() -> None:
    first = SIGNER.sign(Purpose.UNSUBSCRIBE, "example", "alice@example.org")
    assert TokenSigner(SECRET).sign(Purpose.UNSUBSCRIBE, "example", "ALICE@example.org") == first


def test_rotation_accepts_the_previous_secret_and_mints_with_the_new_one() -> None:
    old_token = TokenSigner(OTHER).sign(Purpose.UNSUBSCRIBE, "example", "alice@example.org")
    rotating = TokenSigner(SECRET, [OTHER])
    assert rotating.verify(old_token, Purpose.UNSUBSCRIBE) is not None
    fresh = rotating.sign(Purpose.UNSUBSCRIBE, "example", "alice@example.org")
    assert SIGNER.verify(fresh, Purpose.UNSUBSCRIBE) is not None
    assert TokenSigner(OTHER).verify(fresh, Purpose.UNSUBSCRIBE) is None
    assert SIGNER.verify(old_token, Purpose.UNSUBSCRIBE) is None  # once the old secret is dropped


def test_settings_carry_the_previous_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_PREVIOUS", OTHER)
    settings = Settings(secret=SECRET)
    old_token = TokenSigner(OTHER).sign(Purpose.MANAGE, "example", "alice@example.org")
    assert TokenSigner.from_settings(settings).verify(old_token, Purpose.MANAGE) is not None


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1],
        lambda t: t + "A",
        lambda t: t.upper(),
        lambda t: "",
        lambda t: "é" + t[1:],
        lambda t: t[:10] + ("A" if t[10] != "A" else "B") + t[11:],
        lambda t: "A" * 5000,
        lambda t: "!!!" + t,
    ],
)
def test_mangled_token_is_refused(mangle: Callable[[str], str]) -> None:
    token = SIGNER.sign(Purpose.UNSUBSCRIBE, "example", "alice@example.org")
    assert SIGNER.verify(mangle(token), Purpose.UNSUBSCRIBE) is None
    assert TokenSigner(OTHER).verify(token, Purpose.UNSUBSCRIBE) is None


def test_token_is_url_safe() -> None:
    for i in range(200):
        token = SIGNER.sign(Purpose.UNSUBSCRIBE, "example", f"user{i}@example.org")
        assert token.replace("-", "").replace("_", "").isalnum()


def test_links_from_before_opaque_tokens_still_verify() -> None:
    token = make_legacy_token(SECRET, "example", "Alice@Example.org")
    assert verify_legacy_token([SECRET], "example", "alice@example.ORG", token)
    assert verify_legacy_token(["", OTHER, SECRET], "example", "alice@example.org", token)
    assert not verify_legacy_token([SECRET], "example", "bob@example.org", token)
    assert not verify_legacy_token([SECRET], "other", "alice@example.org", token)
    assert not verify_legacy_token([OTHER], "example", "alice@example.org", token)


def test_link_without_secret_is_refused_with_the_variable_to_set() -> None:
    settings = Settings(base_url="https://digest.example.org")
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET"):
        unsubscribe_link(settings, "example", "a@example.org")


def site(root: Path) -> Settings:
    (root / "subscribers").mkdir(parents=True)
    (root / "subscribers" / "news.csv").write_text("email,status\nann@example.org,active\n", encoding="utf-8")
    return Settings(secret=SECRET, subscribers_dir=root / "subscribers", config_dir=root)


def mail(subject: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    return message


ANN = ("news", "ann@example.org")
OPAQUE = SIGNER.sign(Purpose.UNSUBSCRIBE, "news", "ann@example.org")
LEGACY = make_legacy_token(SECRET, "news", "ann@example.org")
MANAGE = SIGNER.sign(Purpose.MANAGE, "news", "ann@example.org")
ANNS_DIGEST = SIGNER.reader_links("news", "ann@example.org")


@pytest.mark.parametrize(
    ("token", "list_name", "email", "expected"),
    [
        (OPAQUE, "", "", ANN),
        (LEGACY, "news", "ann@example.org", ANN),
        (LEGACY, "news", "Ann@Example.org", ANN),
        (MANAGE, "", "", None),
        (make_legacy_token(SECRET, "../news", "ann@example.org"), "../news", "ann@example.org", None),
        (ANNS_DIGEST.token(Purpose.UNSUBSCRIBE), "", "", ANN),
        (ANNS_DIGEST.token(Purpose.MANAGE), "", "", None),
        (ANNS_DIGEST.token(Purpose.FEEDBACK, "2503.01234"), "", "", None),
    ],
    ids=[
        "new-token",
        "legacy-link",
        "legacy-link-in-capitals",
        "manage-token",
        "legacy-path-as-list",
        "digest-link",
        "digest-manage-link",
        "digest-feedback-link",
    ],
)
def test_the_web_link_and_the_mail_request_read_an_unsubscribe_token_alike(
    tmp_path: Path, token: str, list_name: str, email: str, expected: tuple[str, str] | None
) -> None:
    assert verify_unsubscribe(SIGNER, token, list_name, email) == expected
    legacy = {"list": list_name, "email": email, "token": token}
    web, by_mail = site(tmp_path / "web"), site(tmp_path / "mail")
    query = urlencode(legacy if list_name else {"t": token})
    answer = TestClient(create_app(web)).post(f"/unsubscribe?{query}")
    report = apply_mail_requests(by_mail, [mail(" ".join(["unsubscribe", list_name, email, token]))])
    for settings in (web, by_mail):
        still = open_list(settings.places, "news").is_active("ann@example.org")
        assert still is (expected is None)
    assert answer.status_code == (200 if expected else 403)
    assert report.unsubscribed == (["ann@example.org (news)"] if expected else [])
