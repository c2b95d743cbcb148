"""`newsletter doctor` against the shipped config and real SMTP servers on loopback."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from click.testing import CliRunner, Result
from helpers.databases import database_at_version
from helpers.smtp_servers import make_certificate
from sqlalchemy import text

from newsletter.cli import main
from newsletter.doctor import check_database
from newsletter.settings import load_settings
from newsletter.store import SCHEMA_VERSION, Database, open_database, place_of

# aiosmtpd warns when AUTH is allowed without TLS; these servers only ever listen on loopback.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
USER, PASSWORD = "digest", "correct horse"


class RecordingHandler:
    """Remembers any message it is given: the doctor must never give it one."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)  # aiosmtpd decodes nothing unless asked (decode_data)
        self.messages.append(content)
        return "250 OK"


def accept_only(user: str, password: str) -> Callable[..., AuthResult]:
    def authenticator(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)

    return authenticator


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# Starts an aiosmtpd server with the given SMTP options (authenticator, tls_context, ...).
StartServer = Callable[..., tuple[Controller, RecordingHandler]]


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Start aiosmtpd servers on loopback with the given SMTP options; stop them afterwards."""
    started: list[Controller] = []

    def start(**smtp_options: Any) -> tuple[Controller, RecordingHandler]:
        handler = RecordingHandler()
        controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **smtp_options)
        controller.start()
        started.append(controller)
        return controller, handler

    yield start
    for controller in started:
        controller.stop()


def point_at(
    monkeypatch: pytest.MonkeyPatch,
    port: int,
    *,
    secret: bool = True,
    base_url: str | None = "https://papers.example.org",
    **smtp: str,
) -> None:
    """Configure a real server the way the README says: environment variables."""
    monkeypatch.setenv("NEWSLETTER_SMTP__HOST", "127.0.0.1")
    monkeypatch.setenv("NEWSLETTER_SMTP__PORT", str(port))
    monkeypatch.setenv("NEWSLETTER_SMTP__TIMEOUT", "10")
    for key, value in smtp.items():
        monkeypatch.setenv(f"NEWSLETTER_SMTP__{key.upper()}", value)
    if secret:
        monkeypatch.setenv("NEWSLETTER_SECRET", "a-long-random-test-secret-0123456789")
    if base_url:
        monkeypatch.setenv("NEWSLETTER_BASE_URL", base_url)


def doctor() -> Result:
    return CliRunner().invoke(main, ["doctor"])


def lines(result: Result) -> list[str]:
    return result.stdout.splitlines()


def failures(result: Result) -> list[str]:
    return [line for line in lines(result) if line.startswith("FAIL")]


def line_for(result: Result, check: str) -> str:
    found = [line for line in lines(result) if line[5:].startswith(check + ":")]
    assert len(found) == 1, f"no single line for {check!r} in:\n{result.output}"
    return found[0]


def test_shipped_config_with_embedded_server_passes_every_check(project: Path) -> None:
    result = doctor()

    assert result.exit_code == 0, result.output
    check_lines = lines(result)[:-1]
    assert check_lines and all(line.startswith("ok   ") for line in check_lines), result.output
    for check in (
        "settings",
        "templates",
        "list example",
        "secret",
        "base_url",
        "database",
        "smtp (embedded) connect",
        "smtp (embedded) EHLO",
    ):
        line_for(result, check)
    assert "12 active subscriber(s)" in line_for(result, "list example")
    assert lines(result)[-1] == "All checks passed."


def test_real_server_with_login_passes_and_receives_no_mail(
    project: Path,
    start_server: StartServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    controller, handler = start_server(
        authenticator=accept_only(USER, PASSWORD), auth_require_tls=False, auth_required=True
    )
    point_at(monkeypatch, controller.port, username=USER, password=PASSWORD)

    result = doctor()

    assert result.exit_code == 0, result.output
    assert f"127.0.0.1:{controller.port} greeted us" in line_for(result, "smtp connect")
    assert line_for(result, "smtp AUTH").startswith("ok   ")
    assert f"logged in as {USER}" in line_for(result, "smtp AUTH")
    assert handler.messages == []


def test_closed_port_fails_connect_naming_host_and_port(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()  # nothing listens there once the probe socket is closed
    point_at(monkeypatch, port)

    result = doctor()

    assert result.exit_code == 1
    line = line_for(result, "smtp connect")
    assert line.startswith("FAIL")
    assert f"127.0.0.1:{port}" in line
    assert "fix: check smtp.host, smtp.port" in line
    assert failures(result) == [line]
    assert "1 check(s) failed." in result.stderr


def test_wrong_password_fails_at_auth_with_the_fix(
    project: Path,
    start_server: StartServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    controller, handler = start_server(
        authenticator=accept_only(USER, PASSWORD), auth_require_tls=False, auth_required=True
    )
    point_at(monkeypatch, controller.port, username=USER, password="wrong")

    result = doctor()

    assert result.exit_code == 1
    assert line_for(result, "smtp connect").startswith("ok   ")
    assert line_for(result, "smtp EHLO").startswith("ok   ")
    line = line_for(result, "smtp AUTH")
    assert line.startswith("FAIL")
    assert f"127.0.0.1:{controller.port}" in line
    assert "NEWSLETTER_SMTP__PASSWORD" in line
    assert failures(result) == [line]
    assert handler.messages == []


def test_starttls_configured_but_not_offered_fails_at_starttls(
    project: Path,
    start_server: StartServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    controller, _ = start_server()  # no tls_context: the server does not offer STARTTLS
    point_at(monkeypatch, controller.port, security="starttls")

    result = doctor()

    assert result.exit_code == 1
    line = line_for(result, "smtp STARTTLS")
    assert line.startswith("FAIL")
    assert "STARTTLS" in line and 'security = "tls"' in line
    assert failures(result) == [line]


def test_starttls_to_a_relay_with_a_private_ca_passes_when_ca_file_names_it(
    project: Path,
    start_server: StartServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `send` trusts smtp.ca_file; the doctor must test the same connection send will make.
    certificate = make_certificate(project)  # for 127.0.0.1, its own CA: a private relay's in miniature
    cert = certificate.cert_path
    controller, _ = start_server(tls_context=certificate.server_context(), require_starttls=True)
    point_at(monkeypatch, controller.port, security="starttls", ca_file=str(cert))

    result = doctor()

    assert result.exit_code == 0, result.output
    assert line_for(result, "smtp STARTTLS").startswith("ok   ")


def test_starttls_to_a_server_with_an_untrusted_certificate_says_to_set_ca_file(
    project: Path,
    start_server: StartServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    certificate = make_certificate(project)  # for 127.0.0.1, its own CA: a private relay's in miniature
    controller, _ = start_server(tls_context=certificate.server_context(), require_starttls=True)
    point_at(monkeypatch, controller.port, security="starttls")  # no ca_file

    result = doctor()

    assert result.exit_code == 1
    line = line_for(result, "smtp STARTTLS")
    assert line.startswith("FAIL") and "CERTIFICATE_VERIFY_FAILED" in line
    assert "smtp.ca_file" in line and "does not offer STARTTLS" not in line


def test_broken_template_override_fails_naming_file_and_line(project: Path) -> None:
    (project / "templates" / "digest.html").write_text(
        "<html>\n<body>\n{% if %}\n</body>\n</html>\n", encoding="utf-8"
    )

    result = doctor()

    assert result.exit_code == 1
    line = line_for(result, "template digest.html")
    assert line.startswith("FAIL")
    assert f"{project / 'templates' / 'digest.html'}:3:" in line
    assert "fix the Jinja syntax" in line
    assert failures(result) == [line]
    assert not any(line.startswith("ok   templates:") for line in lines(result)), (
        "a broken template is not 'ok'"
    )


def test_subscriber_list_with_a_bad_row_fails_naming_file_line_and_address(project: Path) -> None:
    csv_path = project / "subscribers" / "example.csv"
    row_number = len(csv_path.read_text(encoding="utf-8").splitlines()) + 1
    with csv_path.open("a", encoding="utf-8") as handle:
        handle.write("not-an-email,Bob,,active,2026-10-02T09:15:00+00:00,\n")

    result = doctor()

    assert result.exit_code == 1
    line = line_for(result, "list example")
    assert line.startswith("FAIL")
    assert f"{csv_path}:{row_number}" in line
    assert "not-an-email" in line
    assert "newsletter subscribers validate --list example" in line


def test_no_subscriber_list_at_all_fails_with_how_to_create_one(project: Path) -> None:
    shutil.rmtree(project / "subscribers")

    result = doctor()

    assert result.exit_code == 1
    line = line_for(result, "subscriber lists")
    assert line.startswith("FAIL") and "newsletter subscribers add" in line


def test_real_server_without_secret_fails_the_secret_check(
    project: Path,
    start_server: StartServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    controller, _ = start_server()
    point_at(monkeypatch, controller.port, secret=False)

    result = doctor()

    assert result.exit_code == 1
    line = line_for(result, "secret")
    assert line.startswith("FAIL") and "NEWSLETTER_SECRET" in line
    assert failures(result) == [line]


def test_real_server_with_plain_http_base_url_fails_the_base_url_check(
    project: Path,
    start_server: StartServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    controller, _ = start_server()
    point_at(monkeypatch, controller.port, base_url="http://127.0.0.1:8025")

    result = doctor()

    assert result.exit_code == 1
    line = line_for(result, "base_url")
    assert line.startswith("FAIL") and "http://127.0.0.1:8025 is not https" in line
    assert failures(result) == [line]


@pytest.mark.parametrize(
    "base_url",
    [
        "papers.example.org",
        "//papers.example.org",
        "http://papers.example.org",
        "ftp://papers.example.org",
        "https://papers example.org",
        "https://papers.example.org:port",
        "https://papers.example.org/?list=x",
    ],
)
def test_doctor_fails_on_a_base_url_links_cannot_use(
    project: Path, monkeypatch: pytest.MonkeyPatch, base_url: str
) -> None:
    monkeypatch.setenv("NEWSLETTER_BASE_URL", base_url)

    result = doctor()

    assert result.exit_code == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: NEWSLETTER_BASE_URL (setting 'base_url') is invalid: ")
    assert "https://papers.example.org" in line and "correct or unset NEWSLETTER_BASE_URL" in line


def test_base_url_in_the_file_is_refused_naming_the_file(project: Path) -> None:
    config = project / "newsletter.toml"
    config.write_text('base_url = "papers.example.org"\n' + config.read_text(encoding="utf-8"))

    result = doctor()

    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: setting 'base_url' is invalid: 'papers.example.org': it is not an")
    assert f", in {config}, correct it in the file" in line


def test_spaces_around_the_base_url_are_dropped(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "  https://papers.example.org/ \n")
    monkeypatch.setenv("NEWSLETTER_SECRET", "a-long-random-test-secret-0123456789")

    result = doctor()

    assert line_for(result, "base_url") == "ok   base_url: https://papers.example.org/"


def test_plain_http_base_url_is_fine_for_the_embedded_outbox(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "http://127.0.0.1:8025")
    monkeypatch.setenv("NEWSLETTER_SECRET", "a-long-random-test-secret-0123456789")  # serve needs it

    result = doctor()

    assert result.exit_code == 0, result.output
    assert line_for(result, "base_url").startswith("ok   ")


def test_invalid_setting_is_a_one_line_error_naming_the_key(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEWSLETTER_SMTP__PORT", "not-a-port")

    result = doctor()

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and "smtp.port" in error_lines[0]


def make_database(path: Path, content: str | None) -> None:
    """The SQLite database as a past release, this one, a newer one or a broken disk left it."""
    if content == "garbage":
        path.write_bytes(b"not a database" * 100)
    elif content == "older":
        database_at_version(f"sqlite:///{path}", 3)
    elif content is not None:
        database_at_version(f"sqlite:///{path}", SCHEMA_VERSION)
        if content == "newer":
            db = Database(place_of(f"sqlite:///{path}", path))
            with db.write() as conn:
                conn.execute(
                    text("INSERT INTO schema_migrations VALUES (:v, 'future', 'later')"),
                    {"v": SCHEMA_VERSION + 1},
                )
            db.dispose()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "newsletter.db (SQLite, created by the first command that needs it)"),
        ("current", f"newsletter.db (schema version {SCHEMA_VERSION}), a test write rolled back"),
        ("older", f"(schema version 3, upgraded to {SCHEMA_VERSION} by `newsletter db upgrade` or the next"),
        ("newer", f"newsletter.db: the database has schema version {SCHEMA_VERSION + 1}, newer than"),
        ("garbage", "damaged"),  # the wording is the store's (database.py)
    ],
)
def test_the_database_check_reads_the_version_and_changes_nothing(
    project: Path, content: str | None, expected: str
) -> None:
    path = project / "newsletter.db"
    make_database(path, content)
    before = path.read_bytes() if path.exists() else None

    check = check_database(load_settings())

    assert expected in check.line()
    assert check.ok is (content in (None, "current", "older"))
    assert (path.read_bytes() if path.exists() else None) == before
    assert sorted(p.name for p in project.glob("newsletter.db*")) == (["newsletter.db"] if before else [])


def test_doctor_reaches_the_database_of_either_engine(
    project: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", database_url)
    place = place_of(database_url, project / "unused.db")
    open_database(place)  # made and brought up to date, as any command does

    line = line_for(doctor(), "database")

    shown = f"{place.engine_name} {place.shown}"
    assert line == f"ok   database: {shown} (schema version {SCHEMA_VERSION}), a test write rolled back"


def test_a_database_file_others_can_read_fails_the_check(project: Path) -> None:
    path = project / "newsletter.db"
    make_database(path, "current")
    path.chmod(0o644)
    check = check_database(load_settings())
    assert not check.ok and "can be read by other users (mode 644)" in check.line()
    assert check.fix == f"chmod 600 {path}"


def test_an_unreachable_postgresql_fails_the_check_naming_it_without_the_password(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("psycopg")
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"postgresql://digest:hunter2@/newsletter?host={project}")
    check = check_database(load_settings())
    assert not check.ok and "cannot reach the PostgreSQL server" in check.line()
    assert str(project) in check.line() and "hunter2" not in check.line()


def test_doctor_fails_when_daily_readers_get_nothing_while_the_weekly_job_runs(project: Path) -> None:
    path = project / "subscribers" / "example.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines = [lines[0] + ",frequency", lines[1] + ",daily", *(line + "," for line in lines[2:])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    commands = "`newsletter send --list example` and `newsletter send --frequency daily --list example`"

    before = doctor()
    assert line_for(before, "schedule example") == (
        f"ok   schedule example: 11 weekly, 1 daily reader(s): each frequency needs its own run, {commands}"
    )

    assert CliRunner().invoke(main, ["send"]).exit_code == 0
    weekly_only = doctor()
    assert weekly_only.exit_code == 1
    assert failures(weekly_only) == [
        "FAIL schedule example: 1 active reader(s) of list 'example' chose the daily digest, which no run "
        "sent in the 2 days up to 2024-03-14: schedule `newsletter send --frequency daily --list example` "
        "(fix: add that command to cron, see README, Weekly and daily)"
    ]

    assert CliRunner().invoke(main, ["send", "--frequency", "daily"]).exit_code == 0
    both = doctor()
    assert both.exit_code == 0, both.output
    assert line_for(both, "schedule example").startswith("ok   schedule example: 11 weekly, 1 daily")
