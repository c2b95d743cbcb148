"""The SMTP login never crosses the network in clear: STARTTLS by default, certificates verified.

The servers are real aiosmtpd sessions on loopback that offer STARTTLS and AUTH (AUTH even
before TLS, as a careless relay does) and record whether AUTH came before or after TLS.

Loopback is "this machine", where a plaintext login is allowed by default. To exercise the
refusal a remote server gets, the tests set `allow_plaintext_auth = false`, the documented
setting that refuses plaintext logins everywhere, loopback included: the same code path as a
remote host, decided before a byte of the login is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

import pytest
from click.testing import CliRunner
from helpers.smtp_servers import TestCertificate as Certificate
from helpers.smtp_servers import TlsAuthServer, make_certificate, write_config, write_subscribers

from newsletter.cli.app import main
from newsletter.delivery import ServerFailure
from newsletter.delivery.smtp import PlaintextAuthRefused
from newsletter.pipeline.send import SendOptions, SendReport, run_send
from newsletter.settings import SmtpSecurity, SmtpSettings, load_settings


class Login(TypedDict):
    """The login keys of [smtp]; typed so that `**LOGIN` can fill no other parameter."""

    username: str
    password: str


LOGIN: Login = {"username": "mailer", "password": "s3cret"}


@pytest.fixture
def cert(tmp_path: Path) -> Certificate:
    return make_certificate(tmp_path)


def send(folder: Path, port: int, **smtp: Any) -> SendReport:
    write_subscribers(folder / "subscribers" / "test.csv", 2)
    return run_send(load_settings(write_config(folder, port=port, **smtp)), SendOptions())


def test_the_default_is_auto() -> None:
    assert SmtpSettings().security is SmtpSecurity.AUTO


def test_by_default_the_login_goes_after_starttls_when_the_server_offers_it(
    tmp_path: Path, cert: Certificate
) -> None:
    with TlsAuthServer(cert) as server:
        report = send(tmp_path, server.port, ca_file=str(cert.cert_path), **LOGIN)
    assert server.orders() == {("STARTTLS", "AUTH over TLS")}
    assert report.sent == 2


def test_security_none_never_upgrades_and_a_refused_plaintext_login_sends_nothing(
    tmp_path: Path, cert: Certificate
) -> None:
    with TlsAuthServer(cert) as server, pytest.raises(PlaintextAuthRefused) as refused:
        send(tmp_path, server.port, security="none", allow_plaintext_auth=False, **LOGIN)
    assert server.orders() <= {()}  # neither STARTTLS nor a single byte of the login
    assert server.handler.recipients() == []
    message = refused.value.message
    assert "\n" not in message
    assert f"127.0.0.1:{server.port}" in message
    assert "offers STARTTLS" in message and "allow_plaintext_auth" in message


def test_auto_against_a_server_without_starttls_refuses_to_log_in_in_clear(tmp_path: Path) -> None:
    with TlsAuthServer(None) as server, pytest.raises(PlaintextAuthRefused) as refused:
        send(tmp_path, server.port, allow_plaintext_auth=False, **LOGIN)
    assert server.orders() <= {()}
    assert "unencrypted" in refused.value.message


def test_a_server_on_this_machine_may_take_a_plaintext_login(tmp_path: Path) -> None:
    with TlsAuthServer(None) as server:
        report = send(tmp_path, server.port, **LOGIN)
    assert server.orders() == {("AUTH in clear",)}
    assert report.sent == 2


def test_allow_plaintext_auth_is_the_way_out(tmp_path: Path, cert: Certificate) -> None:
    with TlsAuthServer(cert) as server:
        report = send(tmp_path, server.port, security="none", allow_plaintext_auth=True, **LOGIN)
    assert server.orders() == {("AUTH in clear",)}
    assert report.sent == 2


@pytest.mark.parametrize("security", ["auto", "starttls"])
def test_an_untrusted_certificate_stops_before_the_login_naming_host_and_ca_file(
    tmp_path: Path, cert: Certificate, security: str
) -> None:
    with TlsAuthServer(cert) as server, pytest.raises(ServerFailure) as failure:
        send(tmp_path, server.port, security=security, **LOGIN)  # no ca_file: the CA is unknown
    assert server.orders() == {("STARTTLS",)}  # the handshake failed, so no AUTH followed
    message = failure.value.message
    assert "\n" not in message
    assert "not trusted" in message and f"127.0.0.1:{server.port}" in message and "smtp.ca_file" in message


def test_starttls_required_but_not_offered_is_one_line(tmp_path: Path) -> None:
    with TlsAuthServer(None) as server, pytest.raises(ServerFailure) as failure:
        send(tmp_path, server.port, security="starttls", **LOGIN)
    assert server.orders() <= {()}
    assert "does not offer STARTTLS" in failure.value.message


def test_send_from_the_command_line_refuses_in_one_line(
    tmp_path: Path, cert: Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 2)
    with TlsAuthServer(cert) as server:
        config = write_config(tmp_path, port=server.port, security="none", allow_plaintext_auth=False)
        monkeypatch.setenv("NEWSLETTER_SMTP__USERNAME", "mailer")
        monkeypatch.setenv("NEWSLETTER_SMTP__PASSWORD", "s3cret")
        result = CliRunner().invoke(main, ["--config", str(config), "send"])
    assert result.exit_code == 1
    assert server.orders() <= {()}
    error = result.stderr.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("Error: refusing to send the SMTP login"), result.output
    assert "Traceback" not in result.output


def test_doctor_fails_on_a_plaintext_login(
    tmp_path: Path, cert: Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 2)
    with TlsAuthServer(cert) as server:
        config = write_config(
            tmp_path, port=server.port, security="none", allow_plaintext_auth=False, **LOGIN
        )
        result = CliRunner().invoke(main, ["--config", str(config), "doctor"])
    assert result.exit_code == 1
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and failed[0].startswith("FAIL smtp AUTH: "), result.output
    assert "unencrypted" in failed[0] and "allow_plaintext_auth" in failed[0]
    assert server.orders() <= {()}


def test_doctor_shows_the_upgrade_and_the_login_over_tls(
    tmp_path: Path, cert: Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 2)
    with TlsAuthServer(cert) as server:
        config = write_config(tmp_path, port=server.port, ca_file=str(cert.cert_path), **LOGIN)
        result = CliRunner().invoke(main, ["--config", str(config), "doctor"])
    assert "ok   smtp STARTTLS: TLS established" in result.stdout, result.output
    assert "ok   smtp AUTH: logged in as mailer\n" in result.stdout
    assert server.orders() == {("STARTTLS", "AUTH over TLS")}
