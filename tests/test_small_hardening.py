"""Smaller holes: a non-ASCII DKIM key, bidi controls in headers, and 405 answers that lie."""

from __future__ import annotations

import email
import email.policy
import warnings
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.smtp_servers import write_config

from newsletter.cli.app import main
from newsletter.errors import ConfigError
from newsletter.mail.compose import MessageComposer
from newsletter.mail.dkim import DkimSigner
from newsletter.models import IssueInfo, Subscriber
from newsletter.render.digest import RenderedDigest
from newsletter.settings import DkimSettings, Settings, load_settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's TestClient prefers httpx2; httpx works
    from starlette.applications import Starlette
    from starlette.routing import Route
    from starlette.testclient import TestClient

from newsletter.web.app import create_app

BIDI = "\u202e\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


def rsa_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def dkim_settings(**values: object) -> DkimSettings:
    return DkimSettings.model_validate({"selector": "news", "domain": "example.org", **values})


def test_a_non_ascii_dkim_key_in_the_environment_is_one_line_naming_where(tmp_path: Path) -> None:
    pem = rsa_pem().replace("\n", "\u00e9\n", 2)
    with pytest.raises(ConfigError) as refused:
        DkimSigner.from_settings(dkim_settings(private_key=pem))
    message = refused.value.message
    assert "\n" not in message
    assert "non-ASCII character at line 1, column 28" in message and "NEWSLETTER_DKIM__PRIVATE_KEY" in message


def test_a_non_ascii_dkim_key_file_is_one_line_naming_the_file(tmp_path: Path) -> None:
    key = tmp_path / "dkim.pem"
    key.write_bytes(rsa_pem().encode("ascii") + "caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as refused:
        DkimSigner.from_settings(dkim_settings(private_key_path=key))
    assert str(key) in refused.value.message and "non-ASCII" in refused.value.message


def test_a_key_that_does_not_parse_is_still_one_line(tmp_path: Path) -> None:
    garbage = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ConfigError) as refused:
        DkimSigner.from_settings(dkim_settings(private_key=garbage))
    assert "\n" not in refused.value.message and "cannot sign" in refused.value.message


def test_a_non_ascii_selector_is_one_line_and_an_idn_domain_signs_as_its_xn_form() -> None:
    with pytest.raises(ConfigError, match=r"dkim\.selector"):
        DkimSigner.from_settings(dkim_settings(selector="n\u00e9ws", private_key=rsa_pem()))
    signer = DkimSigner.from_settings(dkim_settings(domain="b\u00fccher.example", private_key=rsa_pem()))
    assert signer is not None and signer.domain == b"xn--bcher-kva.example"


def test_send_with_a_non_ascii_key_is_an_error_line_not_a_traceback(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_DKIM__SELECTOR", "news")
    monkeypatch.setenv("NEWSLETTER_DKIM__DOMAIN", "example.org")
    monkeypatch.setenv("NEWSLETTER_DKIM__PRIVATE_KEY", rsa_pem().replace("-----\n", "-----\u20ac\n", 1))
    result = CliRunner().invoke(main, ["send"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    # (a slow papers server on a busy machine may add a retry warning: only the error is at stake)
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("Warning: ")]
    assert len(lines) == 1 and lines[0].startswith("Error: the DKIM private key has a non-ASCII character")


def test_bidi_controls_never_reach_subject_or_display_names(tmp_path: Path) -> None:
    settings = load_settings(
        write_config(tmp_path), sender={"name": f"Digest{BIDI}Team", "address": "digest@example.org"}
    )
    issue = IssueInfo(
        issue_id="2024-W11",
        issue_date=date(2024, 3, 14),
        list_name="test",
        title="Test",
        window_start=date(2024, 3, 8),
    )
    composer = MessageComposer(settings, issue, "secret")
    digest = RenderedDigest(subject=f"Digest: txt.{BIDI}exe paper", html="<p>x</p>", text="x")
    reader = Subscriber(email="eve@example.org", name="Eve\u202eKCATTA")
    data = composer.compose(reader, digest, "https://papers.example.org/unsubscribe?t=x").data
    message = email.message_from_bytes(data, policy=email.policy.default)
    subject, sender, to = str(message["subject"]), str(message["from"]), str(message["to"])
    for value in (subject, sender, to):
        assert not any(char in value for char in BIDI), ascii(value)
    assert subject == "Digest: txt.exe paper"
    assert sender == "DigestTeam <digest@example.org>" and to == "EveKCATTA <eve@example.org>"


METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"]


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    (tmp_path / "subscribers").mkdir()
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "index.html").write_text("<p>archive</p>")
    settings = Settings(
        secret="allow-test-secret-Zq7mW4xR8vB1nT6kP3yH",
        subscribers_dir=tmp_path / "subscribers",
        archive_dir=tmp_path / "archive",
        config_dir=tmp_path,
    )
    return TestClient(create_app(settings), follow_redirects=False)


def taken(client: TestClient, path: str) -> tuple[set[str], dict[str, set[str]]]:
    """Which methods the path takes (anything but 405), and the Allow header of each 405."""
    accepted, allowed = set(), {}
    for method in METHODS:
        response = client.request(method, path)
        if response.status_code == 405:
            allowed[method] = {m.strip() for m in response.headers.get("allow", "").split(",") if m.strip()}
        else:
            accepted.add(method)
    return accepted, allowed


def test_a_405_on_unsubscribe_lists_post_too(client: TestClient) -> None:
    response = client.put("/unsubscribe")
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} == {"GET", "HEAD", "POST"}


def test_every_route_answers_405_with_exactly_the_methods_it_takes(client: TestClient) -> None:
    assert isinstance(client.app, Starlette)  # as create_app made it
    paths = [route.path for route in client.app.routes if isinstance(route, Route)]
    assert "/unsubscribe" in paths
    for path in [*paths, "/archive/", "/archive/index.html"]:
        accepted, allowed = taken(client, path)
        assert allowed, f"{path} takes every method?"
        for method, allow in allowed.items():
            assert allow == accepted, f"{method} {path}: Allow {sorted(allow)}, takes {sorted(accepted)}"
