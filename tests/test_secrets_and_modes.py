"""NEWSLETTER_SECRET must be a real key wherever links go public, and private files stay private."""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from helpers.deliveries import database
from helpers.smtp_servers import LoopbackServer, write_config, write_subscribers
from helpers.uvicorn_thread import serving
from helpers.web_reader import sign_up_and_confirm

import newsletter
from newsletter.cli.app import main
from newsletter.errors import ConfigError
from newsletter.safety.secretkey import require_strong_secret, secret_weakness
from newsletter.settings import Settings, load_settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's TestClient prefers httpx2; httpx works
    from newsletter.web.app import create_app

STRONG = "Zq7-mW4xR8vB1nT6kP3yH-secret-for-tests"
WEAK = [
    "",
    "x",
    " " * 40,
    "a" * 40,
    "ab" * 20,
    "short-but-random-Zq7mW4",
    "a b c d e f g h i j k l m n o p q",
]


@pytest.mark.parametrize("secret", WEAK)
def test_weak_secrets_are_refused_in_one_line_saying_why(secret: str) -> None:
    assert secret_weakness(secret) is not None
    with pytest.raises(ConfigError) as refused:
        require_strong_secret(secret, "`newsletter serve`", "newsletter.toml")
    message = refused.value.message
    assert "\n" not in message and "NEWSLETTER_SECRET" in message and "secrets.token_urlsafe(32)" in message


def test_generated_secrets_pass() -> None:
    import secrets

    for _ in range(200):
        assert secret_weakness(secrets.token_urlsafe(32)) is None
        assert secret_weakness(secrets.token_hex(16)) is None
    assert secret_weakness(STRONG) is None


@pytest.mark.parametrize("secret", ["", "x"])
def test_serve_refuses_a_weak_secret(tmp_path: Path, secret: str) -> None:
    with pytest.raises(ConfigError, match="too weak for `newsletter serve`"):
        create_app(Settings(secret=secret, config_dir=tmp_path))


def remote_config(folder: Path, secret: str, host: str = "smtp.invalid", port: int = 587) -> Path:
    """By default a server elsewhere; nothing listens there, and the secret check comes first."""
    write_subscribers(folder / "subscribers" / "test.csv", 2)
    config = write_config(folder, host=host, port=port)
    text = config.read_text()
    config.write_text(re.sub(r'(?m)^secret = ".*"$', f'secret = "{secret}"', text, count=1))
    return config


@pytest.mark.parametrize("command", [["send"], ["send", "--to", "me@example.org"]])
def test_send_to_a_remote_server_refuses_a_weak_secret_before_connecting(
    tmp_path: Path, command: list[str]
) -> None:
    config = remote_config(tmp_path, "x")
    result = CliRunner().invoke(main, ["--config", str(config), *command])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: NEWSLETTER_SECRET has 1 characters"), result.output
    assert "mail to smtp.invalid:587" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "newsletter.db").exists()


def test_a_local_trial_needs_no_strong_secret(tmp_path: Path) -> None:
    write_subscribers(tmp_path / "subscribers" / "test.csv", 2)
    with LoopbackServer() as server:
        config = remote_config(tmp_path, "short-secret", host="127.0.0.1", port=server.port)
        result = CliRunner().invoke(main, ["--config", str(config), "send"])
    assert result.exit_code == 0, result.output
    assert len(server.handler.recipients()) == 2


def test_doctor_fails_a_weak_secret_for_a_remote_server(tmp_path: Path) -> None:
    config = remote_config(tmp_path, "a" * 40)
    result = CliRunner().invoke(main, ["--config", str(config), "doctor"])
    assert result.exit_code == 1
    line = next(line for line in result.stdout.splitlines() if line[5:].startswith("secret:"))
    assert line.startswith("FAIL secret: NEWSLETTER_SECRET uses only 1 different characters")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("previous", ["x", "a" * 40])
def test_serve_refuses_a_weak_previous_secret_before_answering_any_link(project: Path, previous: str) -> None:
    # Before: links forged with NEWSLETTER_SECRET_PREVIOUS=x unsubscribed readers and opened /manage.
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env |= {"NEWSLETTER_SECRET": STRONG, "NEWSLETTER_SECRET_PREVIOUS": previous}
    env["PYTHONPATH"] = str(Path(newsletter.__file__).resolve().parents[1])  # this checkout's code
    command = [sys.executable, "-m", "newsletter", "serve", "--port", str(free_port())]
    # An old serve would run until killed: the timeout only ends that failure.
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("Error: NEWSLETTER_SECRET_PREVIOUS "), done.stderr
    assert "too weak to check links with" in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("previous", "verdict"), [("x", "FAIL"), ("a" * 40, "FAIL"), (STRONG[::-1], "ok  ")])
def test_doctor_checks_the_previous_secret_like_the_secret(
    project: Path, monkeypatch: pytest.MonkeyPatch, previous: str, verdict: str
) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", STRONG)
    monkeypatch.setenv("NEWSLETTER_SECRET_PREVIOUS", previous)
    result = CliRunner().invoke(main, ["doctor"])
    line = next(line for line in result.stdout.splitlines() if line[5:].startswith("secret_previous:"))
    assert line.startswith(f"{verdict} secret_previous: NEWSLETTER_SECRET_PREVIOUS"), line
    assert result.exit_code == (1 if verdict == "FAIL" else 0), result.output


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> object:
    """The umask many servers run with (022): the files must be private anyway."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_the_database_and_its_wal_and_shm_are_owner_only(tmp_path: Path, open_umask: object) -> None:
    path = tmp_path / "state" / "newsletter.db"
    with database(f"sqlite:///{path}").read():
        wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
        assert wal.exists() and shm.exists()
        assert [mode(p) for p in (path, wal, shm)] == [0o600] * 3
        assert mode(path.parent) == 0o700
    with sqlite3.connect(path) as db:  # still an ordinary database
        assert db.execute("SELECT count(*) FROM deliveries").fetchone() == (0,)


def test_outbox_log_and_ledger_of_a_send_are_owner_only(project: Path, open_umask: object) -> None:
    config = project / "newsletter.toml"
    config.write_text('log_file = "logs/newsletter.log"\n' + config.read_text())
    result = CliRunner().invoke(main, ["send"])
    assert result.exit_code == 0, result.output
    messages = list((project / "outbox" / "new").iterdir())
    assert messages and {mode(p) for p in messages} == {0o600}
    assert {mode(project / "outbox" / sub) for sub in ("", "new", "cur", "tmp")} == {0o700}
    assert mode(project / "logs") == 0o700 and mode(project / "logs" / "newsletter.log") == 0o600
    assert mode(project / "newsletter.db") == 0o600
    assert (project / "logs" / "newsletter.log").read_text()  # and the log is written


def created_since(root: Path, before: set[Path]) -> dict[str, int]:
    return {str(p.relative_to(root)): mode(p) for p in sorted(root.rglob("*")) if p not in before}


def test_every_file_a_web_sign_up_a_send_an_export_and_a_preview_create_is_owner_only(
    project: Path, open_umask: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The list is started by its first web sign-up: no subscribers folder yet.
    shutil.rmtree(project / "subscribers")
    monkeypatch.setenv("NEWSLETTER_SECRET", STRONG)
    before = set(project.rglob("*"))
    settings = load_settings(project / "newsletter.toml")
    with serving(create_app(settings)) as base, httpx.Client(base_url=base) as browser:
        sign_up_and_confirm(browser, project, "new@example.org", "New", "diffusion")
    runner = CliRunner()
    assert "1 sent" in runner.invoke(main, ["send"]).output
    assert runner.invoke(main, ["subscribers", "export", "-o", "readers.csv"]).exit_code == 0
    assert runner.invoke(main, ["preview", "--subscriber", "new@example.org"]).exit_code == 0
    assert "new@example.org" in (project / "readers.csv").read_text()
    created = created_since(project, before)
    assert "newsletter.db" in created and "preview/new_example.org.eml" in created, created
    folders = {name for name in created if (project / name).is_dir()}
    assert {name: m for name, m in created.items() if m != (0o700 if name in folders else 0o600)} == {}
